"""Backbones: ResNet-50/101 (Bottleneck, stride on the 3x3 conv) and MobileNetV2.

Layer names are upstream's checkpoint keys (``backbone.layers.2.5.conv2``); BatchNorm is
folded into each conv. The stages selected by the config are renamed to
``backbone/C3..C5`` (trtnet.names).
"""

from __future__ import annotations

from typing import Any, Optional

from trtnet import names
from trtnet.config import BackboneSpec, Config
from trtnet.network.layers import RELU, RELU6, Graph, GraphError, add, conv_bn, max_pool

COMPONENT = "backbone"
RESNET_PLANES = (64, 128, 256, 512)
BOTTLENECK_EXPANSION = 4


def _label(x: Any, label: Optional[str]) -> Any:
    """Rename a stage output right away, before any consumer reads its name (int8 scales
    are looked up by the name a layer sees)."""
    if label is not None:
        x.name = label
    return x


# -- ResNet ----------------------------------------------------------------------------
def bottleneck(g: Graph, x: Any, prefix: str, planes: int, stride: int) -> Any:
    """1x1 -> 3x3 (stride) -> 1x1 x4, plus the (projected when needed) input, then ReLU."""
    in_ch = int(x.shape[1])
    out = conv_bn(g, x, f"{prefix}.conv1", f"{prefix}.bn1", out_channels=planes, kernel=1,
                  act=RELU, component=COMPONENT)
    out = conv_bn(g, out, f"{prefix}.conv2", f"{prefix}.bn2", stride=stride, out_channels=planes,
                  kernel=3, act=RELU, component=COMPONENT)
    out = conv_bn(g, out, f"{prefix}.conv3", f"{prefix}.bn3", out_channels=planes * BOTTLENECK_EXPANSION,
                  kernel=1, act=None, component=COMPONENT)
    if stride != 1 or in_ch != planes * BOTTLENECK_EXPANSION:
        shortcut = conv_bn(g, x, f"{prefix}.downsample.0", f"{prefix}.downsample.1", stride=stride,
                           padding=0, out_channels=planes * BOTTLENECK_EXPANSION, kernel=1, act=None,
                           component=COMPONENT)
    else:
        shortcut = x
    return add(g, out, shortcut, f"{prefix}.add", act=RELU, component=COMPONENT, out_name=prefix)


def resnet(g: Graph, x: Any, spec: BackboneSpec, num_stages: int, labels: dict[int, str]) -> list[Any]:
    """Stem + the first ``num_stages`` residual stages; returns every stage's output
    (stage i renamed to ``labels[i]`` as soon as it is built)."""
    x = conv_bn(g, x, "backbone.conv1", "backbone.bn1", stride=2, padding=3, out_channels=64,
                kernel=7, act=RELU, component=COMPONENT)
    x = max_pool(g, x, "backbone.maxpool", kernel=3, stride=2, padding=1, component=COMPONENT)
    outs = []
    for i, blocks in enumerate(spec.layers[:num_stages]):
        for j in range(blocks):
            stride = 2 if (i > 0 and j == 0) else 1
            x = bottleneck(g, x, f"backbone.layers.{i}.{j}", RESNET_PLANES[i], stride)
        outs.append(_label(x, labels.get(i)))
    return outs


# -- MobileNetV2 -------------------------------------------------------------------------
def make_divisible(v: float, divisor: int) -> int:
    """Channel count rounded to a multiple of ``divisor``, never more than 10% below ``v``."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def inverted_residual(g: Graph, x: Any, prefix: str, out_ch: int, stride: int, expand: int) -> Any:
    """[1x1 expand + ReLU6] -> 3x3 depthwise (stride) + ReLU6 -> 1x1 linear projection,
    plus the input when the shape is kept."""
    in_ch = int(x.shape[1])
    hidden = int(round(in_ch * expand))
    y, k = x, 0
    if expand != 1:
        y = conv_bn(g, y, f"{prefix}.conv.0.0", f"{prefix}.conv.0.1", out_channels=hidden, kernel=1,
                    act=RELU6, component=COMPONENT)
        k = 1
    y = conv_bn(g, y, f"{prefix}.conv.{k}.0", f"{prefix}.conv.{k}.1", stride=stride, groups=hidden,
                out_channels=hidden, kernel=3, act=RELU6, component=COMPONENT)
    if stride == 1 and in_ch == out_ch:
        y = conv_bn(g, y, f"{prefix}.conv.{k + 1}", f"{prefix}.conv.{k + 2}", out_channels=out_ch,
                    kernel=1, act=None, component=COMPONENT)
        return add(g, y, x, f"{prefix}.add", component=COMPONENT, out_name=prefix)
    return conv_bn(g, y, f"{prefix}.conv.{k + 1}", f"{prefix}.conv.{k + 2}", out_channels=out_ch,
                   kernel=1, act=None, component=COMPONENT, out_name=prefix)


MOBILENETV2_STEM = 32
MOBILENETV2_LAST = 1280


def mobilenetv2(g: Graph, x: Any, spec: BackboneSpec, num_stages: int, labels: dict[int, str]) -> list[Any]:
    """Stages of upstream's MobileNetV2Backbone: stem (layers.0), one stage per row of the
    (t, c, n, s) table (layers.1..7), the 1x1 ReLU6 head conv (layers.8). Returns the
    outputs of the first ``num_stages`` (stage i renamed to ``labels[i]`` when built)."""
    outs = []
    stem = make_divisible(MOBILENETV2_STEM * spec.width_mult, spec.round_nearest)
    x = conv_bn(g, x, "backbone.layers.0.0", "backbone.layers.0.1", stride=2, out_channels=stem,
                kernel=3, act=RELU6, component=COMPONENT, out_name="backbone.layers.0")
    outs.append(_label(x, labels.get(0)))
    for i, (t, c, n, s) in enumerate(spec.layers, start=1):
        if len(outs) >= num_stages:
            return outs
        out_ch = make_divisible(c * spec.width_mult, spec.round_nearest)
        for j in range(n):
            x = inverted_residual(g, x, f"backbone.layers.{i}.{j}", out_ch, s if j == 0 else 1, t)
        outs.append(_label(x, labels.get(i)))
    if len(outs) < num_stages:
        last = make_divisible(MOBILENETV2_LAST * max(1.0, spec.width_mult), spec.round_nearest)
        i = len(spec.layers) + 1
        x = conv_bn(g, x, f"backbone.layers.{i}.0", f"backbone.layers.{i}.1", out_channels=last,
                    kernel=1, act=RELU6, component=COMPONENT, out_name=f"backbone.layers.{i}")
        outs.append(_label(x, labels.get(i)))
    return outs


_FAMILIES = {"resnet": resnet, "mobilenetv2": mobilenetv2}


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
    chans = [make_divisible(MOBILENETV2_STEM * spec.width_mult, spec.round_nearest)]
    chans += [make_divisible(row[1] * spec.width_mult, spec.round_nearest) for row in spec.layers]
    chans.append(make_divisible(MOBILENETV2_LAST * max(1.0, spec.width_mult), spec.round_nearest))
    return tuple(chans[i] for i in spec.selected_layers)
