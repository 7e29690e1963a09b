"""ResNet-50/101 (upstream's ResNetBackbone): Bottleneck blocks with the stride on the 3x3 conv.

YOLACT++: the blocks ``BackboneSpec.uses_dcn`` selects (upstream's _make_layer rule) have a DCNv2
as conv2 (upstream backbone.py Bottleneck: ``DCN(planes, planes, 3, stride, padding=dilation)``, with
a bias), then bn2 (trtnet.network.deform_conv).
"""

from __future__ import annotations

from typing import Any

from trtnet.config import BackboneSpec
from trtnet.network.backbones.common import COMPONENT, label
from trtnet.network.deform_conv import batchnorm, deform_conv
from trtnet.network.layers import RELU, Graph, activation, add, conv_bn, max_pool

RESNET_PLANES = (64, 128, 256, 512)
BOTTLENECK_EXPANSION = 4


def bottleneck(g: Graph, x: Any, prefix: str, planes: int, stride: int, dcn: bool = False) -> Any:
    """1x1 -> 3x3 (stride; a DCNv2 when ``dcn``) -> 1x1 x4, plus the (projected when needed) input, then ReLU."""
    in_ch = int(x.shape[1])
    out = conv_bn(g, x, f"{prefix}.conv1", f"{prefix}.bn1", out_channels=planes, kernel=1,
                  act=RELU, component=COMPONENT)
    if dcn:
        out = deform_conv(g, out, f"{prefix}.conv2", stride=stride, padding=1)
        out = batchnorm(g, out, f"{prefix}.bn2")
        out = activation(g, out, RELU, f"{prefix}.conv2.relu")
    else:
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
            x = bottleneck(g, x, f"backbone.layers.{i}.{j}", RESNET_PLANES[i], stride, spec.uses_dcn(i, j))
        outs.append(label(x, labels.get(i)))
    return outs
