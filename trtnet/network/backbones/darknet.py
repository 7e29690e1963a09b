"""DarkNet-53 (upstream's DarkNetBackbone, dbolya/yolact backbone.py): YOLOv3's backbone.

Every conv is Conv-BN-LeakyReLU(0.1) (upstream's darknetconvlayer; its docstring says
"conv, activation, batch norm" but the code applies BN first). A 3x3 stem (``_preconv``,
32 channels, stride 1), then per stage a 3x3/s2 opener to 2c (``layers.i.0``) and residual
blocks ``layers.i.{1..n}``: 1x1 to c (``conv1``), 3x3 back to 2c (``conv2``), plus the
block's input, with no activation after the sum.
"""

from __future__ import annotations

from typing import Any

from trtnet.config import BackboneSpec
from trtnet.network.backbones.common import COMPONENT, label
from trtnet.network.layers import LRELU_01, Graph, add, conv_bn

DARKNET_STEM = 32
DARKNET_EXPANSION = 2


def darknet_channels(spec: BackboneSpec) -> tuple[int, ...]:
    """Output channels of every stage: 64, 128, 256, 512, 1024 for DarkNet-53."""
    return tuple(DARKNET_STEM * 2 ** i * DARKNET_EXPANSION for i in range(len(spec.layers)))


def _conv(g: Graph, x: Any, prefix: str, out_channels: int, kernel: int, stride: int = 1,
          out_name: Any = None) -> Any:
    return conv_bn(g, x, f"{prefix}.0", f"{prefix}.1", stride=stride, padding=kernel // 2,
                   out_channels=out_channels, kernel=kernel, act=LRELU_01, component=COMPONENT,
                   out_name=out_name)


def darknet_block(g: Graph, x: Any, prefix: str, channels: int) -> Any:
    """x + conv3x3(conv1x1(x)), both Conv-BN-LeakyReLU(0.1)."""
    y = _conv(g, x, f"{prefix}.conv1", channels, 1)
    y = _conv(g, y, f"{prefix}.conv2", channels * DARKNET_EXPANSION, 3)
    return add(g, y, x, f"{prefix}.add", component=COMPONENT, out_name=prefix)


def darknet(g: Graph, x: Any, spec: BackboneSpec, num_stages: int, labels: dict[int, str]) -> list[Any]:
    """The stem and the first ``num_stages`` stages; returns every stage's output (stage i
    renamed to ``labels[i]`` as soon as it is built)."""
    x = _conv(g, x, "backbone._preconv", DARKNET_STEM, 3)
    outs = []
    for i, blocks in enumerate(spec.layers[:num_stages]):
        c = DARKNET_STEM * 2 ** i
        x = _conv(g, x, f"backbone.layers.{i}.0", c * DARKNET_EXPANSION, 3, stride=2)
        for b in range(1, int(blocks) + 1):
            x = darknet_block(g, x, f"backbone.layers.{i}.{b}", c)
        outs.append(label(x, labels.get(i)))
    return outs
