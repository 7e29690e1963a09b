"""YolactEdge networks: keyframe (image) and non-keyframe (video), frame -> detections + prototypes.

Keyframe:
    frame (uint8 [1,H,W,3] BGR) -> preprocess -> backbone C3..C5 -> FPN phase 1 -> phase 2
      P3 -> ProtoNet -> proto ; P3..P7 -> shared head -> loc, conf, mask
      decode(loc, priors) -> FastNMS -> det/count, boxes, scores, classes, coeffs
Non-keyframe (inputs: frame + the keyframe state key/fpn_phase_1/lateral3, P4, P5):
    frame -> preprocess -> partial backbone C3 -> lateral3 -> flow net (with the keyframe
      lateral) -> warp keyframe P4, P5 -> P3 = up(warped P4) + lateral3 -> SPA(P4, P5)
      -> the same FPN phase 2 .. FastNMS as the keyframe network

The same code builds on TensorRT (``trt`` = the tensorrt module, a strongly typed network)
and on trtnet's NumPy emulator (``trt`` = trtnet.emulator.trt).
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np

from trtnet import names
from trtnet.config import Config, get_config
from trtnet.network.backbones import build_backbone
from trtnet.network.detect import decode_boxes, fast_nms
from trtnet.network import flow as flow_net
from trtnet.network.fpn import build_fpn_phase_1, build_fpn_phase_2
from trtnet.network.head import build_head
from trtnet.network.layers import Graph
from trtnet.network.maskiou import build_maskiou
from trtnet.network.preprocess import add_frame_input, build_preprocess
from trtnet.network.priors import build_priors
from trtnet.network.protonet import build_protonet
from trtnet.precision import PlanLike
from trtnet.network.weights import WeightsSource

# Outputs of the keyframe engine; video models also export the state later frames need.
KEYFRAME_OUTPUTS = names.DETECTIONS + (names.PROTO,)
# Outputs of the non-keyframe engine: the keyframe's, plus the motion statistic that
# adaptive keyframe selection thresholds (trtnet.network.flow.motion_statistic).
NONKEYFRAME_OUTPUTS = KEYFRAME_OUTPUTS + (names.FLOW_MOTION,)
# YOLACT++ (Config.maskiou) engines also output the re-scored mask scores (trtnet.network.maskiou).
RESCORING_OUTPUTS = (names.MASK_SCORES,)
KEYFRAME_STATE = (names.FPN1_LATERAL3, names.FPN1_P4, names.FPN1_P5)
# Non-keyframe engine input fed by each exported keyframe state tensor ("key/" + its name).
STATE_INPUTS = {
    names.FPN1_LATERAL3: names.KEY_LATERAL3,
    names.FPN1_P4: names.KEY_FPN1_P4,
    names.FPN1_P5: names.KEY_FPN1_P5,
}

# Tensors of the non-keyframe network the reference files name otherwise (ours -> theirs).
NONKEY_REFERENCE_NAMES = {names.KEY_FPN1_P4: "warp/keyframe_P4", names.KEY_FPN1_P5: "warp/keyframe_P5"}


def keyframe_outputs(config: Union[Config, str]) -> tuple[str, ...]:
    """The detector outputs of ``config``'s keyframe engine (state exports aside): det/*, proto,
    and mask_scores when the config re-scores masks. The one list builder, runtime and tests share."""
    config = _as_config(config)
    return KEYFRAME_OUTPUTS + (RESCORING_OUTPUTS if config.maskiou is not None else ())


def nonkeyframe_outputs(config: Union[Config, str]) -> tuple[str, ...]:
    """The outputs of ``config``'s non-keyframe engine: the keyframe's detector outputs + flow/motion."""
    return keyframe_outputs(config) + (names.FLOW_MOTION,)


class NetworkTensors(dict):
    """Named tensors of a built network (name -> ITensor); also holds the WeightStore whose
    arrays TensorRT points at, so keep this object until the engine is built."""

    weights: Any = None


def _as_config(config: Union[Config, str]) -> Config:
    return get_config(config) if isinstance(config, str) else config


def _export_fp32(g: Graph, t: Any, label: str) -> Any:
    """Mark ``t`` as output ``label`` in float32 (a cast named ``label`` if it is fp16)."""
    if t.dtype != g.trt.DataType.FLOAT and t.dtype != g.trt.DataType.INT32:
        t.name = f"{label}.fp16"
        t = g.named(g.network.add_cast(t, g.trt.DataType.FLOAT), f"{label}.to_fp32", label)
    g.network.mark_output(t)
    return t


def build_predictions(g: Graph, phase1: Sequence[Any], config: Config) -> NetworkTensors:
    """Everything after FPN phase 1, shared by keyframe and non-keyframe networks.

    phase-1 [P3, P4, P5] -> FPN phase 2 (P3..P7) -> ProtoNet (proto) and the shared head
    (loc, conf, mask) -> decode against the priors -> FastNMS. Marks det/* and proto as
    outputs (proto in float32 whatever the plan) and returns the tensors by name.
    """
    levels = build_fpn_phase_2(g, phase1, config)
    proto = build_protonet(g, levels[config.proto.source], config)
    loc, conf, mask = build_head(g, levels, config)
    priors = build_priors(g, config, levels)
    boxes = decode_boxes(g, loc, priors, config)
    detections = fast_nms(g, boxes, conf, mask, config)
    tensors = NetworkTensors((t.name, t) for t in (*levels, loc, conf, mask, priors, boxes))
    tensors.update(detections)
    tensors[names.PROTO] = _export_fp32(g, proto, names.PROTO)
    for label in names.DETECTIONS:
        g.network.mark_output(detections[label])
    if config.maskiou is not None:  # YOLACT++: mask_scores output (trtnet.network.maskiou)
        tensors.update(build_maskiou(g, tensors[names.PROTO], detections, config))
        g.network.mark_output(tensors[names.MASK_SCORES])
    tensors.weights = g.weights
    return tensors


def build_keyframe(
    network: Any, trt: Any, weights: WeightsSource, config: Union[Config, str], *,
    plan: PlanLike = None, export_state: Optional[bool] = None,
) -> NetworkTensors:
    """Add the keyframe network to ``network``; return every named tensor (trtnet.names).

    Marked outputs: det/* and proto; with ``export_state`` (default: video configs) also
    fpn_phase_1/lateral3, P4, P5, which a non-keyframe engine takes as its keyframe state.
    ``weights`` is a WeightStore, a dict of arrays or a file; keep a WeightStore alive until
    TensorRT has built the engine (trt.Weights do not copy).
    """
    config = _as_config(config)
    g = Graph(network, trt, weights, plan)
    frame = add_frame_input(g)
    image = build_preprocess(g, frame, config)
    c3, c4, c5 = build_backbone(g, image, config)
    phase1, lateral3 = build_fpn_phase_1(g, [c3, c4, c5], config)
    tensors = build_predictions(g, phase1, config)
    tensors.update((t.name, t) for t in (frame, image, c3, c4, c5, lateral3, *phase1))
    tensors.update(g.published)
    if config.is_video if export_state is None else export_state:
        for label in KEYFRAME_STATE:
            tensors[label] = _export_fp32(g, tensors[label], label)
    return tensors


def build_nonkeyframe(
    network: Any, trt: Any, weights: WeightsSource, config: Union[Config, str], *,
    plan: PlanLike = None,
) -> NetworkTensors:
    """Add the non-keyframe (video) network to ``network``; return every named tensor.

    Inputs: the frame (``frame``) and the keyframe state a keyframe engine exports, float32:
    key/fpn_phase_1/lateral3 [1,F,h3,w3], key/fpn_phase_1/P4, key/fpn_phase_1/P5
    (see :data:`STATE_INPUTS` and :func:`keyframe_state`). Marked outputs: det/* and proto,
    as the keyframe network's, and flow/motion (:data:`NONKEYFRAME_OUTPUTS`). Video configs
    only (a flow net in the checkpoint).
    """
    config = _as_config(config)
    flow_net.check_flow_config(config)
    g = Graph(network, trt, weights, plan)
    frame = add_frame_input(g)
    image = build_preprocess(g, frame, config)
    (c3,) = build_backbone(g, image, config, partial=True)
    lateral = flow_net.lateral3(g, c3, config)
    key_lateral = g.network.add_input(names.KEY_LATERAL3, trt.DataType.FLOAT, tuple(lateral.shape))
    current = flow_net.pre_convs(g, lateral, config, "current", names.FLOW_PRECONV_CURRENT)
    keyframe = flow_net.pre_convs(g, key_lateral, config, "keyframe", names.FLOW_PRECONV_KEYFRAME)
    flows = flow_net.build_flow_net(g, current, keyframe, config)
    motion = flow_net.motion_statistic(g, current, keyframe)
    key_inputs, warped = [], []
    for level, label in zip(flow_net.WARP_LEVELS, (names.KEY_FPN1_P4, names.KEY_FPN1_P5)):
        flow, scale, bias = flows[level]
        _, _, h, w = (int(d) for d in tuple(flow.shape))
        feature = g.network.add_input(label, trt.DataType.FLOAT, (-1, config.fpn.num_features, h, w))
        key_inputs.append(feature)
        warped.append(flow_net.inverse_warp(g, feature, flow, scale, bias, level, config))
    p3 = flow_net.final_p3(g, warped[0], lateral)
    refined = warped
    if config.flow.use_spa:
        refined = flow_net.build_spa(g, lateral, warped, flow_net.WARP_LEVELS)
    tensors = build_predictions(g, [p3, *refined], config)
    tensors.update(g.published)
    tensors[names.FLOW_MOTION] = _export_fp32(g, motion, names.FLOW_MOTION)
    tensors.update((t.name, t) for t in (frame, image, c3, lateral, key_lateral, current, keyframe,
                                         *key_inputs, *warped, p3, *refined))
    for flow, scale, bias in flows.values():
        tensors.update((t.name, t) for t in (flow, scale, bias))
    return tensors


def keyframe_state(outputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The non-keyframe engine inputs (key/...) from a keyframe engine's outputs.

    Accepts the keyframe outputs by their own names (fpn_phase_1/lateral3, P4, P5) or already
    under the input names; a missing tensor is an error naming it.
    """
    state = {}
    for exported, input_name in STATE_INPUTS.items():
        if input_name in outputs:
            state[input_name] = np.asarray(outputs[input_name])
        elif exported in outputs:
            state[input_name] = np.asarray(outputs[exported])
        else:
            raise KeyError(f"keyframe state lacks {exported!r} (input {input_name!r} of the "
                           "non-keyframe network); build the keyframe network of a video config")
    return state


def _frame_batch(frame_bgr: Any) -> np.ndarray:
    """A frame HxWx3, a batch NxHxWx3 or a list of frames of one size -> uint8 [N,H,W,3]."""
    if isinstance(frame_bgr, (list, tuple)):
        frames = [np.asarray(f) for f in frame_bgr]
        sizes = sorted({f.shape for f in frames})
        if not frames or len(sizes) != 1 or frames[0].ndim != 3:
            raise ValueError(f"a batch needs one or more HxWx3 frames of one size, got shapes {sizes}")
        frame = np.stack(frames)
    else:
        frame = np.asarray(frame_bgr)
        if frame.ndim == 3:
            frame = frame[None]
    if frame.dtype != np.uint8 or frame.ndim != 4 or frame.shape[0] < 1 or frame.shape[3] != 3:
        raise ValueError(
            f"expected uint8 BGR frames HxWx3, NxHxWx3 or a list of HxWx3, got {frame.dtype} {frame.shape}"
        )
    return frame


def emulate_nonkeyframe(
    weights: WeightsSource, config: Union[Config, str], frame_bgr: np.ndarray,
    key_state: Mapping[str, np.ndarray], fetch: Optional[Sequence[str]] = None, *,
    plan: PlanLike = None,
) -> dict[str, np.ndarray]:
    """Run the non-keyframe network on trtnet's NumPy emulator.

    ``key_state``: the outputs of :func:`emulate_keyframe` (or a keyframe engine) on the
    keyframe, of which fpn_phase_1/lateral3, P4 and P5 are used. Returns the marked outputs
    plus any tensor named in ``fetch`` (e.g. trtnet.names.FLOW_P4).
    """
    from trtnet import emulator

    inputs = {names.INPUT: _frame_batch(frame_bgr)}
    inputs.update((k, np.ascontiguousarray(v, np.float32)) for k, v in keyframe_state(key_state).items())
    batches = {name: int(a.shape[0]) for name, a in inputs.items()}
    if len(set(batches.values())) != 1:
        raise ValueError(f"the frames and the keyframe state must have one batch size (one keyframe state per "
                         f"camera), got {batches}")
    net = emulator.Network()
    build_nonkeyframe(net, emulator.trt, weights, config, plan=plan)
    return emulator.run(net, inputs, fetch=list(fetch) if fetch else None)


def emulate_keyframe(
    weights: WeightsSource, config: Union[Config, str], frame_bgr: np.ndarray,
    fetch: Optional[Sequence[str]] = None, *, plan: PlanLike = None,
) -> dict[str, np.ndarray]:
    """Run the keyframe network on trtnet's NumPy emulator (slow, exact reference).

    ``frame_bgr`` is uint8 HxWx3 (or 1xHxWx3) BGR like cv2.imread; returns the marked
    outputs plus any tensor named in ``fetch`` (e.g. trtnet.names.C3).
    """
    from trtnet import emulator

    frame = _frame_batch(frame_bgr)
    net = emulator.Network()
    build_keyframe(net, emulator.trt, weights, config, plan=plan)
    return emulator.run(net, {names.INPUT: frame}, fetch=list(fetch) if fetch else None)
