"""ProtoNet: prototypes from P3 (3x conv3x3+ReLU, bilinear x2 + ReLU, conv3x3+ReLU, conv1x1),
then the prototype activation, permuted to NHWC like upstream's ``proto`` [1,138,138,32].

Upstream builds it as one nn.Sequential of (layer, ReLU) pairs without the last ReLU, so
checkpoint key ``proto_net.{2i}`` is the i-th config entry and ``proto_net.{2i+1}`` its ReLU.
"""

from __future__ import annotations

from typing import Any

from trtnet import names
from trtnet.config import Config
from trtnet.network.layers import RELU, Graph, GraphError, conv, relu, resize_bilinear, shuffle

COMPONENT = "proto"


def build_protonet(g: Graph, x: Any, config: Config) -> Any:
    """P3 [1,256,69,69] -> prototypes NHWC [1,138,138,mask_dim] named ``proto``."""
    spec = config.proto
    if spec.bias:
        raise GraphError("mask_proto_bias=True is not supported (no released config uses it)")
    if spec.prototype_activation != "relu":
        raise GraphError(f"prototype activation {spec.prototype_activation!r} is not supported")
    last = len(spec.layers) - 1
    for i, (out_ch, kernel, padding) in enumerate(spec.layers):
        key, act_name = f"proto_net.{2 * i}", f"proto_net.{2 * i + 1}"
        if kernel > 0:
            x = conv(g, x, key, padding=padding, kernel=kernel, out_channels=out_ch,
                     act=None if i == last else RELU, component=COMPONENT,
                     out_name=None if i == last else act_name)
        elif out_ch is None:  # bilinear upsample by -kernel, align_corners=False
            h, w = (int(d) for d in tuple(x.shape)[2:])
            x = resize_bilinear(g, x, (h * -kernel, w * -kernel), key, component=COMPONENT)
            if i != last:
                x = relu(g, x, act_name, component=COMPONENT)
        else:
            raise GraphError(f"{key}: transposed convolutions in ProtoNet are not supported")
    x = relu(g, x, "proto_net.prototype_activation", component=COMPONENT)
    return shuffle(g, x, "proto_net.to_nhwc", first_transpose=(0, 2, 3, 1), out_name=names.PROTO)
