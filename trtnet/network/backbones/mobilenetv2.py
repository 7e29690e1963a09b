"""MobileNetV2 (upstream's MobileNetV2Backbone): inverted residuals, ReLU6."""

from __future__ import annotations

from typing import Any

from trtnet.config import BackboneSpec
from trtnet.network.backbones.common import COMPONENT, label
from trtnet.network.layers import RELU6, Graph, add, conv_bn


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
    outs.append(label(x, labels.get(0)))
    for i, (t, c, n, s) in enumerate(spec.layers, start=1):
        if len(outs) >= num_stages:
            return outs
        out_ch = make_divisible(c * spec.width_mult, spec.round_nearest)
        for j in range(n):
            x = inverted_residual(g, x, f"backbone.layers.{i}.{j}", out_ch, s if j == 0 else 1, t)
        outs.append(label(x, labels.get(i)))
    if len(outs) < num_stages:
        last = make_divisible(MOBILENETV2_LAST * max(1.0, spec.width_mult), spec.round_nearest)
        i = len(spec.layers) + 1
        x = conv_bn(g, x, f"backbone.layers.{i}.0", f"backbone.layers.{i}.1", out_channels=last,
                    kernel=1, act=RELU6, component=COMPONENT, out_name=f"backbone.layers.{i}")
        outs.append(label(x, labels.get(i)))
    return outs
