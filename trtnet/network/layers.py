"""Layer helpers: one call per box of the paper's figure.

Every helper takes the :class:`Graph` (network + ``trt`` module + weights + precision
plan), the input tensor, the checkpoint key of the layer, and the component it belongs
to; it names the TensorRT layer and its output after the checkpoint key and returns the
output tensor. Precision lives here, not in the model code: a helper casts its inputs to
the type its component's plan asks for (fp16: half weights and activations; int8: Q/DQ
pairs on each convolution's input and kernel, see trtnet.precision).

The code only uses API present in TensorRT 10.3 and 11.4 and never imports tensorrt:
``trt`` is either the real module or ``trtnet.emulator.trt``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import numpy as np

from trtnet.precision import PrecisionPlan, as_plan, numpy_dtype, trt_dtype
from trtnet.weights import WeightStore


@dataclass(frozen=True)
class Act:
    """An activation as TensorRT spells it: type name plus alpha/beta."""

    kind: str  # 'RELU' | 'CLIP' | 'LEAKY_RELU' | 'TANH' | 'SIGMOID'
    alpha: float = 0.0
    beta: float = 0.0
    suffix: str = ""

    @property
    def label(self) -> str:
        return self.suffix or self.kind.lower()


RELU = Act("RELU", suffix="relu")
RELU6 = Act("CLIP", 0.0, 6.0, suffix="relu6")  # torch.nn.ReLU6 = clip to [0, 6]
TANH = Act("TANH", suffix="tanh")
SIGMOID = Act("SIGMOID", suffix="sigmoid")


def leaky_relu(slope: float) -> Act:
    """torch.nn.LeakyReLU(slope)."""
    return Act("LEAKY_RELU", alpha=float(slope), suffix="lrelu")


LRELU_01 = leaky_relu(0.1)


class GraphError(ValueError):
    """The network being built is inconsistent (a shape or a key that cannot fit)."""


@dataclass
class Graph:
    """What every helper needs: the network, the ``trt`` names, weights and precision."""

    network: Any
    trt: Any
    weights: WeightStore
    plan: PrecisionPlan = field(default_factory=PrecisionPlan)

    def __post_init__(self) -> None:
        self.plan = as_plan(self.plan)
        self.weights = WeightStore.load(self.weights)
        self._casts: dict[tuple[int, str], tuple[Any, Any]] = {}  # (source kept alive, cast)
        self._qdq: dict[int, tuple[Any, Any]] = {}  # activation -> (source kept alive, fake-quantized)

    # -- naming -------------------------------------------------------------------
    def named(self, layer: Any, name: str, out_name: Optional[str] = None) -> Any:
        """Name ``layer`` and its first output (``out_name`` or the layer name)."""
        layer.name = name
        layer.get_output(0).name = out_name or name
        return layer.get_output(0)

    # -- constants and types --------------------------------------------------------
    def weights_of(self, arr: np.ndarray, component: str) -> Any:
        """``trt.Weights`` in the component's weight type, kept alive by the store."""
        arr = np.ascontiguousarray(arr, dtype=numpy_dtype(self.plan.of(component)))
        return self.trt.Weights(self.weights.keep(arr))

    def constant(self, arr: np.ndarray, name: str) -> Any:
        """A constant tensor holding ``arr`` (float32/int32 as given), named ``name``."""
        arr = self.weights.keep(np.ascontiguousarray(arr))
        layer = self.network.add_constant(tuple(arr.shape), self.trt.Weights(arr))
        return self.named(layer, name)

    def dtype_for(self, component: str) -> Any:
        return trt_dtype(self.trt, self.plan.of(component))

    def cast(self, x: Any, dtype: Any, name: Optional[str] = None) -> Any:
        """``x`` as ``dtype`` (no layer when it already is)."""
        if x.dtype == dtype:
            return x
        key = (id(x), str(dtype))
        if key not in self._casts:  # one cast per tensor and type, however many consumers
            layer = self.network.add_cast(x, dtype)
            label = name or f"{x.name}.cast_{str(dtype).split('.')[-1].lower()}"
            self._casts[key] = (x, self.named(layer, label))
        return self._casts[key][1]

    def into(self, x: Any, component: str) -> Any:
        """``x`` in the activation type of ``component`` (cast at component borders)."""
        return self.cast(x, self.dtype_for(component))

    # -- explicit quantization (int8 components) ------------------------------------
    def _qdq_pair(self, x: Any, scale: np.ndarray, axis: int, name: str) -> Any:
        s = self.constant(np.asarray(scale, np.float32), f"{name}.scale")
        q = self.network.add_quantize(x, s, self.trt.DataType.INT8)
        q.axis = axis
        q_out = self.named(q, f"{name}.quantize")
        dq = self.network.add_dequantize(q_out, s, self.trt.DataType.FLOAT)
        dq.axis = axis
        return self.named(dq, f"{name}.dequantize")

    def quantized(self, x: Any, component: str) -> Any:
        """Activation ``x`` through a Q/DQ pair with its calibrated per-tensor scale."""
        if id(x) not in self._qdq:
            scale = self.plan.activation_scale(x.name, component)
            self._qdq[id(x)] = (x, self._qdq_pair(x, np.array(scale, np.float32), 0, x.name))
        return self._qdq[id(x)][1]

    def quantized_kernel(self, kernel: np.ndarray, name: str) -> Any:
        """Kernel [O, ...] as a constant through a per-output-channel symmetric Q/DQ pair."""
        amax = np.abs(kernel.reshape(kernel.shape[0], -1)).max(axis=1).astype(np.float64)
        scale = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
        k = self.constant(np.ascontiguousarray(kernel, np.float32), f"{name}.kernel")
        return self._qdq_pair(k, scale, 0, f"{name}.kernel")


def _channels(x: Any, layer: str) -> int:
    shape = tuple(x.shape)
    if len(shape) != 4 or shape[1] < 0:
        raise GraphError(f"layer {layer!r} expects an NCHW input with known channels, got {shape}")
    return int(shape[1])


def activation(g: Graph, x: Any, act: Act, name: str, out_name: Optional[str] = None) -> Any:
    """``act`` applied to ``x``; the layer is called ``name``, its output ``out_name`` (or ``name``)."""
    layer = g.network.add_activation(x, getattr(g.trt.ActivationType, act.kind))
    if act.kind in ("CLIP", "LEAKY_RELU"):
        layer.alpha = act.alpha
    if act.kind == "CLIP":
        layer.beta = act.beta
    return g.named(layer, name, out_name)


def _conv_layer(
    g: Graph, x: Any, kernel: np.ndarray, bias: Optional[np.ndarray], name: str, *,
    stride: int, padding: int, groups: int, act: Optional[Act], component: str,
    out_name: Optional[str],
) -> Any:
    x = g.into(x, component)
    out_ch, _, kh, kw = kernel.shape
    int8 = g.plan.of(component) == "int8"
    if int8:  # explicit quantization: Q/DQ on the input, kernel as a tensor from its own Q/DQ
        x = g.quantized(x, component)
    kernel_w = g.trt.Weights(g.trt.DataType.FLOAT) if int8 else g.weights_of(kernel, component)
    args = [x, int(out_ch), (int(kh), int(kw)), kernel_w]
    if bias is not None:
        args.append(g.weights_of(bias, component))
    layer = g.network.add_convolution_nd(*args)
    if int8:
        layer.set_input(1, g.quantized_kernel(kernel, name))
    layer.stride_nd = (stride, stride)
    layer.padding_nd = (padding, padding)
    if groups != 1:
        layer.num_groups = groups
    if act is None:
        return g.named(layer, name, out_name)
    y = g.named(layer, name)
    return activation(g, y, act, f"{name}.{act.label}", out_name)


def conv(
    g: Graph, x: Any, key: str, *, stride: int = 1, padding: Optional[int] = None,
    groups: int = 1, bias: bool = True, act: Optional[Act] = None, component: str,
    out_channels: Optional[int] = None, kernel: Optional[int] = None,
    name: Optional[str] = None, out_name: Optional[str] = None,
) -> Any:
    """Conv2d with the weights at ``key`` (``key.weight``, ``key.bias``), then ``act``.

    ``padding`` defaults to ``kernel // 2`` (upstream's convs are all 'same'-padded);
    ``name`` defaults to the key (use it to tell apart uses of a shared conv).
    """
    w, b = g.weights.conv(
        key, in_channels=_channels(x, name or key), groups=groups,
        out_channels=out_channels, kernel=kernel, bias=bias, layer=name or key,
    )
    pad = w.shape[-1] // 2 if padding is None else padding
    return _conv_layer(
        g, x, w, b, name or key, stride=stride, padding=pad, groups=groups, act=act,
        component=component, out_name=out_name,
    )


def conv_bn(
    g: Graph, x: Any, conv_key: str, bn_key: str, *, stride: int = 1,
    padding: Optional[int] = None, groups: int = 1, act: Optional[Act] = RELU,
    component: str, out_channels: Optional[int] = None, kernel: Optional[int] = None,
    out_name: Optional[str] = None,
) -> Any:
    """Bias-free Conv2d at ``conv_key`` + BatchNorm at ``bn_key`` (folded), then ``act``."""
    w, b = g.weights.conv_bn(
        conv_key, bn_key, in_channels=_channels(x, conv_key), groups=groups,
        out_channels=out_channels, kernel=kernel,
    )
    pad = w.shape[-1] // 2 if padding is None else padding
    return _conv_layer(
        g, x, w, b, conv_key, stride=stride, padding=pad, groups=groups, act=act,
        component=component, out_name=out_name,
    )


def add(
    g: Graph, a: Any, b: Any, name: str, *, component: str, act: Optional[Act] = None,
    out_name: Optional[str] = None,
) -> Any:
    """``a + b`` (same shape or broadcast), then ``act``; the result is named ``out_name``."""
    a, b = g.into(a, component), g.into(b, component)
    layer = g.network.add_elementwise(a, b, g.trt.ElementWiseOperation.SUM)
    if act is None:
        return g.named(layer, name, out_name)
    return activation(g, g.named(layer, name), act, f"{name}.{act.label}", out_name)


def relu(g: Graph, x: Any, name: str, *, component: str) -> Any:
    return activation(g, g.into(x, component), RELU, name)


def max_pool(g: Graph, x: Any, name: str, *, kernel: int, stride: int, padding: int, component: str) -> Any:
    """MaxPool2d (padding never wins: TensorRT pads max pooling with -inf)."""
    x = g.into(x, component)
    layer = g.network.add_pooling_nd(x, g.trt.PoolingType.MAX, (kernel, kernel))
    layer.stride_nd = (stride, stride)
    layer.padding_nd = (padding, padding)
    return g.named(layer, name)


def resize_bilinear(
    g: Graph, x: Any, size: Sequence[int], name: str, *, component: str,
) -> Any:
    """``F.interpolate(x, size, mode='bilinear', align_corners=False)`` (no antialias).

    TensorRT's LINEAR + HALF_PIXEL with edge clamping is PyTorch's align_corners=False.
    The output size is static even when the input's is not.
    """
    x = g.into(x, component)
    shape = tuple(x.shape)
    if len(shape) != 4 or shape[0] < 0 or shape[1] < 0:
        raise GraphError(f"{name}: resize expects NCHW with known N and C, got {shape}")
    layer = g.network.add_resize(x)
    layer.shape = (shape[0], shape[1], int(size[0]), int(size[1]))
    layer.resize_mode = g.trt.InterpolationMode.LINEAR
    layer.coordinate_transformation = g.trt.ResizeCoordinateTransformation.HALF_PIXEL
    layer.selector_for_single_pixel = g.trt.ResizeSelector.FORMULA
    return g.named(layer, name)


def shuffle(
    g: Graph, x: Any, name: str, *, first_transpose: Optional[Sequence[int]] = None,
    reshape: Optional[Sequence[int]] = None, second_transpose: Optional[Sequence[int]] = None,
    out_name: Optional[str] = None,
) -> Any:
    """IShuffleLayer: transpose, reshape, transpose (any of them optional)."""
    layer = g.network.add_shuffle(x)
    if first_transpose is not None:
        layer.first_transpose = tuple(first_transpose)
    if reshape is not None:
        layer.reshape_dims = tuple(reshape)
    if second_transpose is not None:
        layer.second_transpose = tuple(second_transpose)
    return g.named(layer, name, out_name)


def concat(g: Graph, xs: Sequence[Any], axis: int, name: str, out_name: Optional[str] = None) -> Any:
    layer = g.network.add_concatenation(list(xs))
    layer.axis = axis
    return g.named(layer, name, out_name)


def slice_(g: Graph, x: Any, start: Sequence[int], shape: Sequence[int], name: str) -> Any:
    """Static unit-stride slice."""
    layer = g.network.add_slice(x, tuple(start), tuple(shape), (1,) * len(shape))
    return g.named(layer, name)


def elementwise(g: Graph, a: Any, b: Any, op: str, name: str) -> Any:
    """``a <op> b`` with op an ``ElementWiseOperation`` member name (SUM, PROD, SUB, DIV...)."""
    layer = g.network.add_elementwise(a, b, getattr(g.trt.ElementWiseOperation, op))
    return g.named(layer, name)


def unary(g: Graph, x: Any, op: str, name: str) -> Any:
    layer = g.network.add_unary(x, getattr(g.trt.UnaryOperation, op))
    return g.named(layer, name)


def softmax(g: Graph, x: Any, axis: int, name: str, out_name: Optional[str] = None) -> Any:
    layer = g.network.add_softmax(x)
    layer.axes = 1 << axis
    return g.named(layer, name, out_name)


def mark_output(g: Graph, x: Any, name: Optional[str] = None) -> Any:
    """Mark ``x`` as a network output (renamed to ``name`` first if given)."""
    if name is not None:
        x.name = name
    g.network.mark_output(x)
    return x
