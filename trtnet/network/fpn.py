"""Feature pyramid, as YolactEdge splits it: phase 1 (laterals + top-down sums) and
phase 2 (3x3 pred convs + ReLU, then P6/P7 by stride-2 convs).

Upstream stores both ``lat_layers`` and ``pred_layers`` in reverse level order:
``lat_layers.0`` is the C5 lateral, ``lat_layers.2`` the C3 one; ``pred_layers.0`` makes P5.
The top-down path resizes to the next level's exact size (18 -> 35 -> 69: not x2).
"""

from __future__ import annotations

from typing import Any, Sequence

from trtnet import names
from trtnet.config import Config
from trtnet.network.layers import RELU, Graph, GraphError, add, conv, max_pool, resize_bilinear

COMPONENT = "fpn"


def build_fpn_phase_1(g: Graph, convouts: Sequence[Any], config: Config) -> tuple[list[Any], Any]:
    """[C3, C4, C5] -> ([P3, P4, P5] before the pred convs, C3 lateral).

    Named fpn_phase_1/P3..P5 and fpn_phase_1/lateral3 (the keyframe state of video models).
    """
    if config.fpn.interpolation_mode != "bilinear":
        raise GraphError(f"FPN interpolation {config.fpn.interpolation_mode!r} is not supported")
    n = len(convouts)
    outs: list[Any] = [None] * n
    laterals: list[Any] = [None] * n
    x = None
    for i in range(n):
        j = n - 1 - i  # lat_layers are stored top level first
        key = f"fpn_phase_1.lat_layers.{i}"
        lat = conv(g, convouts[j], key, padding=0, kernel=1, out_channels=config.fpn.num_features,
                   component=COMPONENT)
        laterals[j] = lat
        if j == 0:
            lat.name = names.FPN1_LATERAL3
        if x is None:
            x = lat  # upstream adds it to a zero scalar: the same values
        else:
            h, w = (int(d) for d in tuple(convouts[j].shape)[2:])
            up = resize_bilinear(g, x, (h, w), f"fpn_phase_1.upsample.{i}", component=COMPONENT)
            # the C3 lateral is also the keyframe state of video models: it cannot fuse there
            x = add(g, lat, up, f"fpn_phase_1.add.{i}", component=COMPONENT,
                    fuse_branch=not (j == 0 and config.is_video))
        x.name = names.FPN1[j]  # named before anything reads it (int8 scales go by name)
        outs[j] = x
    return outs, laterals[0]


def build_fpn_phase_2(g: Graph, phase1: Sequence[Any], config: Config) -> list[Any]:
    """[P3, P4, P5] of phase 1 -> [P3..P7] (fpn/P3..P7)."""
    spec = config.fpn
    n = len(phase1)
    outs = list(phase1)
    for i in range(n):
        j = n - 1 - i  # pred_layers are stored top level first
    if n + spec.num_downsample != len(names.FPN):
        raise GraphError(f"expected {len(names.FPN)} FPN levels (P3..P7), the config gives "
                         f"{n + spec.num_downsample}")
    for i in range(n):
        j = n - 1 - i  # pred_layers are stored top level first
        outs[j] = conv(g, outs[j], f"fpn_phase_2.pred_layers.{i}", padding=1 if spec.pad else 0,
                       kernel=3, out_channels=spec.num_features, act=RELU, component=COMPONENT,
                       out_name=names.FPN[j])
    for k in range(spec.num_downsample):
        label = names.FPN[n + k]
        if spec.use_conv_downsample:
            outs.append(conv(g, outs[-1], f"fpn_phase_2.downsample_layers.{k}", stride=2, padding=1,
                             kernel=3, out_channels=spec.num_features, component=COMPONENT,
                             out_name=label))
        else:  # upstream: max_pool2d(x, 1, stride=2), i.e. x[..., ::2, ::2]
            outs.append(max_pool(g, outs[-1], f"fpn_phase_2.downsample.{k}", kernel=1, stride=2,
                                 padding=0, component=COMPONENT))
            outs[-1].name = label
    return outs
