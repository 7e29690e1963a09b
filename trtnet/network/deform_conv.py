"""DCNv2, upstream's ``DCN`` module (dbolya/yolact external/DCNv2/dcn_v2.py), as TensorRT layers.

    x -> conv_offset_mask (3x3, 27 channels) -> channels 0..17 = offset (cat(o1, o2): unchanged)
                                              -> channels 18..26 -> sigmoid = mask
    ModulatedDeformConv2d(x, offset, mask, weight, bias)   (TensorRT's libnvinfer_plugin)

TensorRT has no deformable-convolution layer; its plugin library does (trtnet.plugins.specs cites
the plugin's source), so nothing of ours runs on the GPU here. The thirds are gathered rather
than sliced (a slice would need the batch size at build time). Weights and bias enter as
constant layers, as the plugin takes them as inputs.

Precision: the plugin computes fp32 or fp16 only (supportsFormatCombination), so the whole DCN
(offset conv, sigmoid, plugin) is component ``dcn``, which follows the backbone but is never
int8 (trtnet.precision.plans.NEVER_INT8): in an int8 backbone it runs in fp16 between the
quantized convolutions.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from trtnet import names
from trtnet.network.layers import SIGMOID, Graph, GraphError, activation, conv
from trtnet.network.weights import BN_EPS

COMPONENT = "dcn"
OFFSET_CHANNELS = 18   # 2 x 9 taps: upstream's o1, o2 (channel 2k = dy, 2k+1 = dx of tap k)
MASK_CHANNELS = 9      # one modulation logit per tap




def _channels(g: Graph, x: Any, first: int, count: int, name: str) -> Any:
    """Channels ``first .. first+count-1`` of an NCHW tensor, for any batch size."""
    index = g.constant(np.arange(first, first + count, dtype=np.int32), f"{name}.index")
    return g.named(g.network.add_gather(x, index, 1), name)


def deform_conv(g: Graph, x: Any, key: str, *, stride: int = 1, padding: int = 1, dilation: int = 1,
                component: str = COMPONENT, out_name: Optional[str] = None) -> Any:
    """Upstream's ``DCN(C, C, kernel_size=3, stride, padding, dilation, deformable_groups=1)`` at ``key``.

    Weights: ``key.weight`` [Cout, C, 3, 3], ``key.bias``, ``key.conv_offset_mask.{weight,bias}``
    [27, C, 3, 3]. Layers are named after ``key``; the offset, mask and output tensors as
    trtnet.names.dcn_tensor says (the reference files' names). Returns the plugin's output,
    before any BatchNorm.
    """
    in_ch = int(tuple(x.shape)[1])
    weight, bias = g.weights.conv(key, in_channels=in_ch, kernel=3, bias=True, layer=key)
    x = g.into(x, component)
    om = conv(g, x, f"{key}.conv_offset_mask", stride=stride, padding=padding,
              out_channels=OFFSET_CHANNELS + MASK_CHANNELS, kernel=3, component=component)
    offset = _channels(g, om, 0, OFFSET_CHANNELS, f"{key}.offset")
    offset.name = names.dcn_tensor(key, "offset")
    logits = _channels(g, om, OFFSET_CHANNELS, MASK_CHANNELS, f"{key}.mask_logits")
    mask = activation(g, logits, SIGMOID, f"{key}.mask", names.dcn_tensor(key, "mask"))
    dtype = np.float32 if g.dtype_for(component) == g.trt.DataType.FLOAT else np.float16
    inputs = [x, offset, mask, g.constant(weight.astype(dtype), f"{key}.weight"),
              g.constant(bias.astype(dtype), f"{key}.bias")]
    out = g.named(_plugin_layer(g, inputs, key, stride, padding, dilation), key,
                  out_name or names.dcn_tensor(key, "out"))
    g.published.update((t.name, t) for t in (offset, mask, out))
    return out


def _plugin_layer(g: Graph, inputs: list, key: str, stride: int, padding: int, dilation: int) -> Any:
    from trtnet.plugins import tensorrt_plugin_creator

    for label, value in (("stride", stride), ("padding", padding), ("dilation", dilation)):
        if not isinstance(value, int):  # the plugin's pairs are (W, H); only equal pairs are unambiguous
            raise GraphError(f"{key}: DCN {label} must be one integer for both axes, got {value!r}")
    spec, creator = tensorrt_plugin_creator(g.trt)
    plugin = spec.create_plugin(g.trt, creator, key, stride=(stride, stride), padding=(padding, padding),
                                dilation=(dilation, dilation), group=1, deformable_group=1)
    if spec.interface == "IPluginV3":
        return g.network.add_plugin_v3(inputs, [], plugin)
    return g.network.add_plugin_v2(inputs, plugin)


def batchnorm(g: Graph, x: Any, bn_key: str, *, component: str = COMPONENT) -> Any:
    """Inference BatchNorm as a per-channel scale and shift (the plugin's output cannot take a fold)."""
    channels = int(tuple(x.shape)[1])
    gamma, beta, mean, var = g.weights.batchnorm(bn_key, channels, layer=bn_key)
    scale = gamma.astype(np.float64) / np.sqrt(var.astype(np.float64) + BN_EPS)
    shift = beta.astype(np.float64) - mean.astype(np.float64) * scale
    dtype = np.float32 if g.dtype_for(component) == g.trt.DataType.FLOAT else np.float16
    s = g.constant(scale.reshape(1, -1, 1, 1).astype(dtype), f"{bn_key}.scale")
    b = g.constant(shift.reshape(1, -1, 1, 1).astype(dtype), f"{bn_key}.shift")
    ew = g.trt.ElementWiseOperation
    y = g.named(g.network.add_elementwise(g.into(x, component), s, ew.PROD), f"{bn_key}.mul")
    return g.named(g.network.add_elementwise(y, b, ew.SUM), bn_key)

