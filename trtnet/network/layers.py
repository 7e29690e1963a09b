"""Layer helpers: one call per box of the paper's figure.

Every helper takes the :class:`Graph` (network + ``trt`` module + weights + precision
plan), the input tensor, the checkpoint key of the layer, and the component it belongs
to; it names the TensorRT layer and its output after the checkpoint key and returns the
output tensor. Precision lives here, not in the model code: a helper casts its inputs to
the type its component's plan asks for (fp16: half weights and activations; int8: Q/DQ
pairs on each convolution's input and kernel and on the residual input of adds, activations
in fp16; see Graph and trtnet.precision).

The code only uses API present in TensorRT 10.3 and 11.4 and never imports tensorrt:
``trt`` is either the real module or ``trtnet.emulator.trt``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import numpy as np

from trtnet.precision import PrecisionPlan, as_plan, numpy_dtype, trt_dtype
from trtnet.network.weights import WeightStore


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
        self._conv_outputs: dict[int, Any] = {}  # conv (+activation) outputs, kept alive
        # tensors a helper publishes by their trtnet.names name (e.g. the DCN offsets), so the
        # builders can return them for fetching next to the stage outputs
        self.published: dict[str, Any] = {}

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
        arr = np.asarray(arr)  # 0-D stays 0-D (np.ascontiguousarray would make it 1-D)
        arr = self.weights.keep(arr if arr.flags.c_contiguous else arr.copy(order="C"))
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
    # Placement follows NVIDIA's "Q/DQ Layer-Placement Recommendations" (TensorRT developer
    # guide, "Working with Quantized Types", https://docs.nvidia.com/deeplearning/tensorrt/
    # latest/inference-library/work-quantized-types.html#q-dq-layer-placement-recommendations):
    # quantize every input of a weighted layer (the activation per tensor, the kernel per
    # output channel), quantize the residual (identity) input of an add so TensorRT can fuse
    # the add into the convolution that produces the other input, and put no Q/DQ on layer
    # outputs. DQ outputs are fp16, so what TensorRT does not fuse runs in half precision.
    #
    # Types, as both header sets require of strongly typed networks: NvInfer.h 10.3
    # IQuantizeLayer "For strongly typed networks, input data type must match the scale data
    # type"; IDequantizeLayer "output data type is inferred from scale data type"; 11.1
    # IQuantizeLayer "if the scale data type is kHALF or kBF16, it must match the input data
    # type", IDequantizeLayer "The output data type must be configured explicitly using
    # setToType". So every scale is a constant in the type of the float side it faces: the Q
    # scale in its input's type, the DQ scale in fp16 (to_type HALF), per-tensor scales 0-D
    # ("must be a scalar for per-tensor quantization"), per-channel only on constant kernels
    # ("Per-channel quantization is supported only for weight inputs").
    def _scale_constant(self, scale: np.ndarray, dtype: Any, name: str) -> Any:
        return self.constant(np.asarray(scale, _NUMPY_FLOAT[str(dtype).split(".")[-1]]), name)

    def _qdq_pair(self, x: Any, scale: np.ndarray, axis: Optional[int], name: str) -> Any:
        half = self.trt.DataType.HALF
        q_scale = self._scale_constant(scale, x.dtype, f"{name}.scale")
        dq_scale = q_scale if x.dtype == half else self._scale_constant(scale, half, f"{name}.dq_scale")
        q = self.network.add_quantize(x, q_scale, self.trt.DataType.INT8)
        if axis is not None:  # per channel; a 0-D scale is per tensor whatever the axis
            q.axis = axis
        q_out = self.named(q, f"{name}.quantize")
        dq = self.network.add_dequantize(q_out, dq_scale, half)
        if axis is not None:
            dq.axis = axis
        return self.named(dq, f"{name}.dequantize")

    def quantized(self, x: Any, component: str) -> Any:
        """Activation ``x`` through a Q/DQ pair with its calibrated per-tensor scale (0-D),
        dequantized to fp16; one pair per tensor, however many layers read it."""
        if id(x) not in self._qdq:
            scale = fp16_scale(self.plan.activation_scale(x.name, component))
            self._qdq[id(x)] = (x, self._qdq_pair(x, np.array(scale), None, x.name))
        return self._qdq[id(x)][1]

    def quantized_kernel(self, kernel: np.ndarray, name: str) -> Any:
        """Kernel [O, ...] as an fp16 constant through a per-output-channel symmetric Q/DQ pair."""
        k16 = np.ascontiguousarray(kernel, np.float16)
        if not np.isfinite(k16).all():
            raise GraphError(f"{name}: kernel values exceed the fp16 range; int8 needs fp16 kernels")
        amax = np.abs(k16.reshape(k16.shape[0], -1)).max(axis=1).astype(np.float32)
        k = self.constant(k16, f"{name}.kernel")
        return self._qdq_pair(k, fp16_scale(amax / 127.0, amax), 0, f"{name}.kernel")

    def is_dequantized(self, x: Any) -> bool:
        return any(pair[1] is x for pair in self._qdq.values())

    def fusable(self, x: Any) -> bool:
        """``x`` is a convolution's output (after its activation, if any) from a helper."""
        return id(x) in self._conv_outputs


_NUMPY_FLOAT = {"FLOAT": np.float32, "HALF": np.float16}
FP16_MIN_NORMAL = float(np.finfo(np.float16).tiny)  # 2**-14


def fp16_scale(scale: Any, amax: Any = None) -> np.ndarray:
    """``scale`` rounded to a positive normal fp16 value (the type of every scale constant).

    With ``amax``: rounded up where rounding to nearest would put ``amax`` beyond 127 steps,
    so a per-channel kernel scale never clips its own channel. Scales below fp16's smallest
    normal number are raised to it (tiny channels keep fewer levels; TensorRT wants > 0).
    """
    s = np.maximum(np.asarray(scale, np.float32), FP16_MIN_NORMAL).astype(np.float16)
    s = np.maximum(s, np.float16(FP16_MIN_NORMAL))
    if amax is not None:
        low = np.asarray(amax, np.float32) / s.astype(np.float32) > 127.0
        s = np.where(low, np.nextafter(s, np.float16(np.inf)), s)
        s = np.where(np.asarray(amax) > 0, s, np.float16(1.0))
    return np.asarray(s, np.float16)


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
    out_ch, _, kh, kw = kernel.shape
    int8 = g.plan.of(component) == "int8"
    # int8: the input's Q/DQ pair does the cast (Q reads x in its own type, DQ gives fp16)
    x = g.quantized(x, component) if int8 else g.into(x, component)
    kernel_w = g.trt.Weights(g.dtype_for(component)) if int8 else g.weights_of(kernel, component)
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
        y = g.named(layer, name, out_name)
    else:
        y = activation(g, g.named(layer, name), act, f"{name}.{act.label}", out_name)
    g._conv_outputs[id(y)] = y
    return y


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
    g: Graph, branch: Any, identity: Any, name: str, *, component: str, act: Optional[Act] = None,
    out_name: Optional[str] = None, fuse_branch: bool = True,
) -> Any:
    """``branch + identity`` (same shape or broadcast), then ``act``; named ``out_name``.

    int8: the identity (residual) input reads through a Q/DQ pair, and so does the branch
    unless it is a convolution's output TensorRT can fuse the add into (NVIDIA's Q/DQ
    placement recommendations, see Graph). ``fuse_branch=False``: the branch is read by
    other layers too (it cannot fuse), so it is quantized as well.
    """
    if g.plan.of(component) == "int8":
        if not (fuse_branch and g.fusable(branch)) and not g.is_dequantized(branch):
            branch = g.quantized(branch, component)
        if not g.is_dequantized(identity):
            identity = g.quantized(identity, component)
    a, b = g.into(branch, component), g.into(identity, component)
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
    The output size is static even when the input's is not. With a dynamic batch the output
    dimensions come from a shape tensor (NvInfer.h IResizeLayer: a static resize needs output
    dimensions "known at build-time"; 10.3 wants "a 1D Int32 shape tensor" as input 1), then
    an identity reshape (0, C, h, w) states the static dims for the layers that follow.
    """
    x = g.into(x, component)
    shape = tuple(x.shape)
    if len(shape) != 4 or shape[1] < 0:
        raise GraphError(f"{name}: resize expects NCHW with known C, got {shape}")
    out_hw = (int(size[0]), int(size[1]))
    layer = g.network.add_resize(x)
    if shape[0] >= 0:
        layer.shape = (shape[0], shape[1], *out_hw)
    else:
        layer.set_input(1, _batch_shape(g, x, out_hw, name))
    layer.resize_mode = g.trt.InterpolationMode.LINEAR
    layer.coordinate_transformation = g.trt.ResizeCoordinateTransformation.HALF_PIXEL
    layer.selector_for_single_pixel = g.trt.ResizeSelector.FORMULA
    if shape[0] >= 0:
        return g.named(layer, name)
    resized = g.named(layer, f"{name}.dynamic")
    return shuffle(g, resized, name, reshape=(0, shape[1], *out_hw))


def _batch_shape(g: Graph, x: Any, hw: Sequence[int], name: str) -> Any:
    """Int32 shape tensor [N, C, h, w] of ``x`` [N, C, *, *] resized to ``hw``."""
    dims = g.named(g.network.add_shape(x), f"{name}.input_shape")  # Int64 (NvInfer.h IShapeLayer)
    dims = g.cast(dims, g.trt.DataType.INT32, f"{name}.input_shape_int32")
    batch_channels = slice_(g, dims, (0,), (2,), f"{name}.batch_channels")
    target = g.constant(np.asarray(hw, np.int32), f"{name}.size")
    return concat(g, [batch_channels, target], 0, f"{name}.output_shape")


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
