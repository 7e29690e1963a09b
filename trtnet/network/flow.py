"""The non-keyframe path of YolactEdge: FeatFlowNet "mini", feature warp, P3 and SPA.

    lateral (current) ─ pre-convs ─┐
    lateral (keyframe) ─ pre-convs ┴ cat ─ conv1 ─ conv2 ─ conv3 ─ pred3 ─> flow, scale, bias (P5)
                                                     │       └ up ─ upfeat3 ┐
                                                     └──────────────────────┴ cat(+ up ─ upflow3 of
                                                                    flow3) ─ pred2 ─> (P4)
    keyframe P4/P5 ─ InverseWarp(flow, scale, bias) ─> warped P4/P5
    P3 = bilinear up(warped P4) + current lateral ;  SPA(current lateral, warped P4, P5)
    pre-convs (current, keyframe) ─ avg pool 4x4 ─ mean|cur - key| / mean|key| ─> flow/motion

Upstream evaluates the TensorRT variant of the flow net (FlowNetMiniTRT): only flow levels
2 (P4) and 3 (P5) are computed, so ``pred1``/``upfeat2``/``upflow2`` of a checkpoint are
never read. Every conv is 3x3 pad 1 + LeakyReLU(0.1), except the prediction layers
(offset: 3x3 without bias, scale/bias: 1x1) and upfeat3/upflow3 (3x3 without bias).
UPSTREAM_NOTES items 13-16.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from trtnet import names
from trtnet.config import Config
from trtnet.network.layers import (
    LRELU_01, Graph, GraphError, add, concat, conv, elementwise, resize_bilinear, unary,
)
from trtnet.plugins.specs import INVERSE_WARP

COMPONENT = "flow"
FPN_COMPONENT = "fpn"
WARP_LEVELS = ("P4", "P5")  # upstream's warp_layers 'P4P5' (flows[1:])
FLOW_NAMES = {"P4": names.FLOW_P4, "P5": names.FLOW_P5}
SCALE_NAMES = {"P4": names.FLOW_SCALE_P4, "P5": names.FLOW_SCALE_P5}
BIAS_NAMES = {"P4": names.FLOW_BIAS_P4, "P5": names.FLOW_BIAS_P5}
WARPED_NAMES = {"P4": names.WARPED_P4, "P5": names.WARPED_P5}
SPA_NAMES = {"P4": names.SPA_P4, "P5": names.SPA_P5}
MOTION_POOL = 4        # feature cells averaged before comparing: sub-cell jitter is not motion
MOTION_EPSILON = 1e-6  # keeps the ratio finite for an all-zero keyframe feature map


def check_flow_config(config: Config) -> None:
    """Refuse video settings upstream has no released config for (clear error, no guessing)."""
    flow = config.flow
    if flow is None or flow.warp_mode != "flow":
        raise GraphError(f"config {config.name} has no flow net (warp_mode must be 'flow'); "
                         "it has no non-keyframe network")
    if flow.model != "mini":
        raise GraphError(f"flow model {flow.model!r} is not supported (upstream: 'mini' only)")
    if tuple(flow.warp_layers) != WARP_LEVELS:
        raise GraphError(f"warp layers {tuple(flow.warp_layers)} are not supported (only P4, P5)")
    if len(config.backbone.selected_layers) != 3:
        raise GraphError("the non-keyframe network needs exactly 3 FPN input levels (C3, C4, C5)")


def lateral3(g: Graph, c3: Any, config: Config) -> Any:
    """The C3 lateral of the current frame (``fpn_phase_1.lat_layers[-1]``), named lateral3."""
    key = f"fpn_phase_1.lat_layers.{len(config.backbone.selected_layers) - 1}"
    return conv(g, c3, key, padding=0, kernel=1, out_channels=config.fpn.num_features,
                component=FPN_COMPONENT, name=f"{key}@current", out_name=names.LATERAL3)


def pre_convs(g: Graph, x: Any, config: Config, which: str, out_name: str) -> Any:
    """``flow_net_pre_convs``: conv3x3 + LeakyReLU per reduce channel (shared by both frames)."""
    channels = tuple(config.flow.reduce_channels)
    for i, out_ch in enumerate(channels):
        key = f"flow_net_pre_convs.convs.{i}.0"
        x = conv(g, x, key, kernel=3, padding=1, out_channels=out_ch, act=LRELU_01,
                 component=COMPONENT, name=f"{key}@{which}",
                 out_name=out_name if i == len(channels) - 1 else None)
    return x


def _encoder_stage(g: Graph, x: Any, stage: int, config: Config) -> Any:
    """``flow_net.conv{stage}``: conv3x3 + LeakyReLU blocks (stride 2 on the first of conv2/3).

    The number of blocks is upstream's encode_layers (each released config: 2 per stage);
    it is read from the checkpoint, whose shapes also check every channel count.
    """
    count = 0
    while f"flow_net.conv{stage}.{count}.0.weight" in g.weights:
        count += 1
    if count == 0:
        raise GraphError(f"the checkpoint has no flow_net.conv{stage}.* (is it a video model?)")
    for i in range(count):
        groups = config.flow.num_groups if (stage == 1 and i < count - 1) else 1
        x = conv(g, x, f"flow_net.conv{stage}.{i}.0", stride=2 if (stage > 1 and i == 0) else 1,
                 padding=1, kernel=3, groups=groups, act=LRELU_01, component=COMPONENT)
    return x


def _predict(g: Graph, x: Any, key: str, level: str, features: int) -> tuple[Any, Any, Any]:
    """FlowNetMiniPredLayer: (flow [1,2,h,w], scale [1,F,h,w], bias [1,F,h,w])."""
    flow = conv(g, x, f"{key}.conv", kernel=3, padding=1, bias=False, out_channels=2,
                component=COMPONENT, out_name=FLOW_NAMES[level])
    scale = conv(g, x, f"{key}.scale", kernel=1, padding=0, out_channels=features,
                 component=COMPONENT, out_name=SCALE_NAMES[level])
    bias = conv(g, x, f"{key}.bias", kernel=1, padding=0, out_channels=features,
                component=COMPONENT, out_name=BIAS_NAMES[level])
    return flow, scale, bias


def build_flow_net(g: Graph, current: Any, keyframe: Any, config: Config) -> dict[str, tuple[Any, Any, Any]]:
    """FlowNetMiniTRT on cat(current, keyframe) -> {'P4': (flow, scale, bias), 'P5': (...)}."""
    features = config.fpn.num_features
    x = concat(g, [g.into(current, COMPONENT), g.into(keyframe, COMPONENT)], 1, "flow_net.concat0")
    out1 = _encoder_stage(g, x, 1, config)
    out2 = _encoder_stage(g, out1, 2, config)
    out3 = _encoder_stage(g, out2, 3, config)
    flow3, scale3, bias3 = _predict(g, out3, "flow_net.pred3", "P5", features)
    size2 = tuple(int(d) for d in tuple(out2.shape)[2:])
    upfeat = resize_bilinear(g, out3, size2, "flow_net.upsample_feat3", component=COMPONENT)
    upfeat = conv(g, upfeat, "flow_net.upfeat3", kernel=3, padding=1, bias=False, component=COMPONENT)
    upflow = resize_bilinear(g, flow3, size2, "flow_net.upsample_flow3", component=COMPONENT)
    upflow = conv(g, upflow, "flow_net.upflow3", kernel=3, padding=1, bias=False, out_channels=2,
                  component=COMPONENT)
    concat2 = concat(g, [out2, upfeat, upflow], 1, "flow_net.concat2")
    flow2, scale2, bias2 = _predict(g, concat2, "flow_net.pred2", "P4", features)
    return {"P4": (flow2, scale2, bias2), "P5": (flow3, scale3, bias3)}


def inverse_warp(g: Graph, feature: Any, flow: Any, scale: Any, bias: Any, level: str, config: Config) -> Any:
    """Keyframe feature warped by ``flow`` (trtnet InverseWarp plugin), then ``* scale + bias``
    as the config says (use_scale_factor / use_scale_bias); named warp/warped_<level>."""
    spec = config.flow
    registry = g.trt.get_plugin_registry()
    creator = registry.get_creator(INVERSE_WARP.name, INVERSE_WARP.version, INVERSE_WARP.namespace)
    if creator is None:
        raise GraphError(
            f"TensorRT plugin {INVERSE_WARP.namespace}::{INVERSE_WARP.name} v{INVERSE_WARP.version} is "
            "not registered: load trtnet's plugin library first (trtnet.plugins.load())"
        )
    fused = spec.use_scale_factor and spec.use_scale_bias  # the plugin takes both or neither
    inputs = [feature, flow, scale, bias] if fused else [feature, flow]
    plugin = INVERSE_WARP.create_plugin(g.trt, creator, f"inverse_warp@{level}", flow_divisor=spec.flow_divisor,
                                        num_inputs=len(inputs))
    if plugin is None:
        raise GraphError(f"creating the {INVERSE_WARP.name} plugin failed (fields: {INVERSE_WARP.field_names})")
    layer = g.network.add_plugin_v3([g.into(t, COMPONENT) for t in inputs], [], plugin)
    layer.name = f"inverse_warp@{level}"
    out = layer.get_output(0)
    label = WARPED_NAMES[level]
    if fused:
        out.name = label
        return out
    out.name = f"warp/deformed_{level}"
    if spec.use_scale_factor:
        out = elementwise(g, out, g.into(scale, COMPONENT), "PROD", f"warp.scale@{level}")
    if spec.use_scale_bias:
        out = elementwise(g, out, g.into(bias, COMPONENT), "SUM", f"warp.bias@{level}")
    out.name = label
    return out


def final_p3(g: Graph, warped_p4: Any, lateral: Any) -> Any:
    """P3 of a non-keyframe: bilinear upsample of warped P4 to the lateral's size + lateral."""
    size = tuple(int(d) for d in tuple(lateral.shape)[2:])
    up = resize_bilinear(g, warped_p4, size, "fpn_phase_1_final.upsample_P4", component=FPN_COMPONENT)
    # the lateral also feeds the flow net and SPA: it cannot fuse into the add
    return add(g, lateral, up, "fpn_phase_1_final.add_P3", component=FPN_COMPONENT, fuse_branch=False,
               out_name=names.FPN1_FINAL_P3)


def build_spa(g: Graph, lateral: Any, levels: Sequence[Any], level_names: Sequence[str]) -> list[Any]:
    """SPA: x + conv_lrelu(cat(x, c3)) per level, c3 = the current lateral resized to each
    level in turn (69 -> 35, then that 35 map -> 18, as upstream reassigns it)."""
    c3 = lateral
    outs = []
    for i, (x, level) in enumerate(zip(levels, level_names)):
        size = tuple(int(d) for d in tuple(x.shape)[2:])
        c3 = resize_bilinear(g, c3, size, f"spa.resize_c3@{level}", component=COMPONENT)
        both = concat(g, [g.into(x, COMPONENT), c3], 1, f"spa.concat@{level}")
        refined = conv(g, both, f"spa.refine_convs.{i}.0", kernel=3, padding=1, act=LRELU_01,
                       component=COMPONENT)
        outs.append(add(g, refined, x, f"spa.add@{level}", component=COMPONENT, out_name=SPA_NAMES[level]))
    return outs


def motion_statistic(g: Graph, current: Any, keyframe: Any) -> Any:
    """How far the frame has moved from its keyframe, float32 [N]: the relative L1 change of
    the flow net's own input features (the pre-convs of both laterals), average-pooled
    MOTION_POOL x MOTION_POOL: ``mean|pool(current) - pool(keyframe)| / mean|pool(keyframe)|``.

    0 on the keyframe's own frame, growing with the displacement. It reads the two maps the
    flow net compares rather than the flow's magnitude, which only a trained flow net makes
    follow motion (with the random reference weights |flow| stays ~1 cell whether the frame
    moved 0 or 32 pixels, while this statistic grows monotonically). A handful of pooling,
    elementwise and reduce layers on P3/4-sized maps: negligible next to the flow net.
    """
    pooled = []
    for x, which in ((current, "current"), (keyframe, "keyframe")):
        layer = g.network.add_pooling_nd(x, g.trt.PoolingType.AVERAGE, (MOTION_POOL, MOTION_POOL))
        layer.stride_nd = (MOTION_POOL, MOTION_POOL)
        pooled.append(g.cast(g.named(layer, f"flow.motion.pool@{which}"), g.trt.DataType.FLOAT))
    every = 0b1110  # C, H, W: one value per frame of the batch

    def mean_abs(x: Any, name: str) -> Any:
        magnitude = unary(g, x, "ABS", f"{name}.abs")
        return g.named(g.network.add_reduce(magnitude, g.trt.ReduceOperation.AVG, every, False), name)

    change = mean_abs(elementwise(g, pooled[0], pooled[1], "SUB", "flow.motion.change"), "flow.motion.mean_change")
    scale = mean_abs(pooled[1], "flow.motion.mean_keyframe")
    eps = g.constant(np.full((1,), MOTION_EPSILON, np.float32), "flow.motion.epsilon")
    scale = elementwise(g, scale, eps, "SUM", "flow.motion.scale")
    ratio = elementwise(g, change, scale, "DIV", "flow.motion.ratio")
    ratio.name = names.FLOW_MOTION
    return ratio
