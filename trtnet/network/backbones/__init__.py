"""Backbones, one module per family: ResNet-50/101 (:mod:`.resnet`), MobileNetV2
(:mod:`.mobilenetv2`), DarkNet-53 (:mod:`.darknet`). :func:`build_backbone` picks the
config's family.

Layer names are upstream's checkpoint keys (``backbone.layers.2.5.conv2``); BatchNorm is
folded into each conv. The stages selected by the config are renamed to
``backbone/C3..C5`` (trtnet.names). Modules here import trtnet.config, trtnet.names and
trtnet.network.layers only.
"""

from __future__ import annotations

from typing import Any, Optional

from trtnet import names
from trtnet.config import Config
from trtnet.network.backbones.common import COMPONENT
from trtnet.network.backbones.darknet import darknet, darknet_channels
from trtnet.network.backbones.mobilenetv2 import MOBILENETV2_LAST, MOBILENETV2_STEM, make_divisible, mobilenetv2
from trtnet.network.backbones.resnet import BOTTLENECK_EXPANSION, RESNET_PLANES, resnet
from trtnet.network.layers import Graph, GraphError

__all__ = ["COMPONENT", "build_backbone", "backbone_channels"]

_FAMILIES = {"resnet": resnet, "mobilenetv2": mobilenetv2, "darknet": darknet}


def build_backbone(g: Graph, x: Any, config: Config, *, partial: bool = False) -> list[Any]:
    """Backbone on the preprocessed image ``x`` [1,3,S,S].

    Full: every stage upstream runs (MobileNetV2: all 9, incl. the 320/1280-channel ones
    whose outputs feed nothing; TensorRT and the emulator skip such dead layers), returns
    [C3, C4, C5] (the config's selected stages, named backbone/C3..C5).
    Partial (non-keyframes): only up to the first selected stage; returns [C3] (named
    partial_backbone/C3).
    """
    spec = config.backbone
    try:
        family = _FAMILIES[spec.family]
    except KeyError:
        raise GraphError(
            f"unknown backbone family {spec.family!r}; supported: {', '.join(_FAMILIES)}"
        ) from None
    selected = tuple(spec.selected_layers)
    if len(selected) != 3:
        raise GraphError(f"expected 3 selected backbone stages (C3, C4, C5), got {selected}")
    wanted = selected[:1] if partial else selected
    total = len(spec.layers) + (2 if spec.family == "mobilenetv2" else 0)  # + stem and last conv
    labels = dict(zip(wanted, (names.PARTIAL_C3,) if partial else names.BACKBONE))
    outs = family(g, x, spec, max(wanted) + 1 if partial else total, labels)
    return [outs[i] for i in wanted]


def backbone_channels(config: Config) -> Optional[tuple[int, ...]]:
    """Channels of C3, C4, C5 for ``config`` (from the architecture, without weights)."""
    spec = config.backbone
    if spec.family == "resnet":
        return tuple(RESNET_PLANES[i] * BOTTLENECK_EXPANSION for i in spec.selected_layers)
    if spec.family == "darknet":
        return tuple(darknet_channels(spec)[i] for i in spec.selected_layers)
    chans = [make_divisible(MOBILENETV2_STEM * spec.width_mult, spec.round_nearest)]
    chans += [make_divisible(row[1] * spec.width_mult, spec.round_nearest) for row in spec.layers]
    chans.append(make_divisible(MOBILENETV2_LAST * max(1.0, spec.width_mult), spec.round_nearest))
    return tuple(chans[i] for i in spec.selected_layers)
