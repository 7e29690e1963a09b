"""Emulated layer classes, named and shaped like TensorRT's (``IConvolutionLayer``...).

Each layer knows three things: its attributes (the real attribute names and
defaults), how to infer output dtypes and shapes (``-1`` = dynamic, resolved at
run time) and the strongly typed rules TensorRT enforces, and how to execute
itself on NumPy arrays. Attribute reads and writes from model code are recorded
in ``network.usage`` for the conformance tests; the emulator's own code reads
attributes through ``_get`` so it records nothing.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from . import kernels as K
from . import trt
from .tensor import ITensor, Named

DT = trt.DataType
FLOATS = (DT.FLOAT, DT.HALF)
NUMERIC = (DT.FLOAT, DT.HALF, DT.INT32, DT.INT64)


class EmulatorTypeError(TypeError):
    """A layer got input types that strongly typed TensorRT rejects."""


def _names(types) -> str:
    return ", ".join(t.name for t in types)


class _Attr:
    """A TensorRT layer attribute: default (value or ``f(layer)``), optional converter."""

    def __init__(self, default: Any = None, convert: Callable | None = None, doc: str = ""):
        self.default = default
        self.convert = convert
        self.__doc__ = doc

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        obj._network.usage.attribute(type(obj).__name__, self.name, "get")
        return obj._get(self.name)

    def __set__(self, obj, value):
        obj._network.usage.attribute(type(obj).__name__, self.name, "set", value)
        if self.convert is not None:
            try:
                value = self.convert(value)
            except (TypeError, ValueError) as exc:
                raise type(exc)(f"{obj._name}: {self.name}: {exc}") from None
        obj._set(self.name, value)


def _enum(cls):
    def convert(v):
        if not isinstance(v, cls):
            raise TypeError(f"expected a trt.{cls.__name__}, got {v!r}")
        return v
    return convert


def _dims(v):
    return trt.Dims(v)


def _float(v):
    return float(v)


class ILayer(Named):
    """Base of all layers: name, type, inputs and outputs, like ``tensorrt.ILayer``."""

    _what = "layer"
    _kind = "Layer"
    _layer_type: trt.LayerType

    def __init__(self, network, inputs: list, num_outputs: int = 1):
        self._network = network
        self._inputs: list[ITensor | None] = list(inputs)
        network._read_tensors.update(id(t) for t in self._inputs if t is not None)
        self._attrs: dict[str, Any] = {}
        self._outputs = [ITensor(network, self, i, "") for i in range(num_outputs)]
        self._index = -1
        self._name = ""

    # --- public API (recorded; ``name`` comes from Named) -----------------------------
    @property
    def type(self) -> trt.LayerType:
        self._record("type", "get")
        return self._layer_type

    @property
    def num_inputs(self) -> int:
        self._record("num_inputs", "get")
        return len(self._inputs)

    @property
    def num_outputs(self) -> int:
        self._record("num_outputs", "get")
        return len(self._outputs)

    def get_input(self, index: int) -> ITensor | None:
        self._record("get_input", "call")
        return self._inputs[index]

    def get_output(self, index: int) -> ITensor:
        self._record("get_output", "call")
        if not 0 <= index < len(self._outputs):
            raise IndexError(f"{self._name}: output {index} out of range ({len(self._outputs)} outputs)")
        return self._outputs[index]

    def set_input(self, index: int, tensor: ITensor) -> None:
        self._record("set_input", "call")
        if not isinstance(tensor, ITensor):
            raise TypeError(f"{self._name}: set_input({index}) needs an ITensor, got {type(tensor).__name__}")
        if index > self._max_inputs() - 1 or index < 0:
            raise IndexError(f"{self._name}: input index {index} not allowed for {type(self).__name__}")
        while len(self._inputs) <= index:
            self._inputs.append(None)
        self._inputs[index] = tensor
        self._network._read_tensors.add(id(tensor))
        self._changed()
        self._on_set_input(index)
        self._validate()

    def __getattr__(self, name: str):
        if name in ("precision", "set_output_type", "reset_precision", "output_type_is_set"):
            raise AttributeError(
                f"{type(self).__name__}.{name}: the network is strongly typed (TensorRT 11 has no per-layer "
                "precision); change types with add_cast or add_quantize/add_dequantize")
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    # --- internals --------------------------------------------------------------------
    def _max_inputs(self) -> int:
        return len(self._inputs)

    def _on_set_input(self, index: int) -> None:
        pass

    def _get(self, name: str):
        if name in self._attrs:
            return self._attrs[name]
        default = type(self).__dict__[name].default if name in type(self).__dict__ else _find_attr(type(self), name).default
        return default(self) if callable(default) else default

    def _set(self, name: str, value) -> None:
        self._attrs[name] = value
        self._changed()

    def _pop(self, name: str) -> None:
        self._attrs.pop(name, None)
        self._changed()

    def _changed(self) -> None:
        """Drop inferred shapes/dtypes that may be stale: only this layer's while no layer
        reads its outputs yet (the usual case while a helper configures the layer it just
        added), else every cache (downstream ones depend on it)."""
        if any(id(t) in self._network._read_tensors for t in self._outputs):
            self._network._version += 1
        else:
            self._cache_version = self._folded = None

    def _err(self, msg: str) -> str:
        return f"{self._name} ({type(self).__name__}): {msg}"

    def _in(self, i: int) -> ITensor:
        t = self._inputs[i]
        if t is None:
            raise ValueError(self._err(f"input {i} is not set"))
        return t

    def _in_types(self) -> list[trt.DataType]:
        return [t._dtype() if t is not None else None for t in self._inputs]

    def _in_shapes(self) -> list[trt.Dims]:
        return [t._shape() if t is not None else None for t in self._inputs]

    def _require(self, dtype: trt.DataType, allowed, what: str = "input") -> None:
        if dtype not in allowed:
            names = ", ".join(repr(t._name) for t in self._inputs if t is not None)
            raise EmulatorTypeError(self._err(
                f"{what} type {dtype.name} is not allowed in a strongly typed network "
                f"(allowed: {_names(allowed)}; inputs: {names})"))

    def _validate(self) -> None:
        self._output_dtypes()
        self._output_shapes()

    def _output_dtypes(self) -> list[trt.DataType]:
        return [self._in(0)._dtype()]

    def _output_shapes(self) -> list[trt.Dims]:
        return [self._in(0)._shape()]

    def _execute(self, xs: list[np.ndarray | None]) -> list[np.ndarray]:
        raise NotImplementedError(type(self).__name__)

    def _to(self, arr: np.ndarray, dtype: trt.DataType) -> np.ndarray:
        """Store a float32 result as ``dtype`` (HALF: round to float16, like an fp16 kernel's output)."""
        want = trt.nptype(dtype)
        return arr if arr.dtype == want else arr.astype(want)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._name!r})"


def _find_attr(cls, name):
    for c in cls.__mro__:
        if name in c.__dict__:
            return c.__dict__[name]
    raise AttributeError(name)


def _f32(a: np.ndarray) -> np.ndarray:
    return a if a.dtype == np.float32 else a.astype(np.float32)


def _broadcast_dims(a, b, err) -> trt.Dims:
    if len(a) != len(b):
        raise ValueError(err(f"inputs must have the same rank (TensorRT does not add dims), got {tuple(a)} and {tuple(b)}"))
    out = []
    for x, y in zip(a, b):
        if x == y or y == 1:
            out.append(x)
        elif x == 1:
            out.append(y)
        elif x == -1 or y == -1:
            out.append(max(x, y))
        else:
            raise ValueError(err(f"dims {tuple(a)} and {tuple(b)} do not broadcast (each pair must be equal or 1)"))
    return trt.Dims(out)


# ======================================================================================
class IConstantLayer(ILayer):
    _kind = "Constant"
    _layer_type = trt.LayerType.CONSTANT
    shape = _Attr(None, _dims)
    weights = _Attr(None)

    def __init__(self, network, inputs, shape, weights):
        super().__init__(network, inputs)
        self._attrs.update(shape=shape, weights=weights)

    def _output_dtypes(self):
        w = self._get("weights")
        if w.dtype == DT.INT8:
            raise EmulatorTypeError(self._err("INT8 constants are not emulated; quantize a float constant with add_quantize"))
        return [w.dtype]

    def _output_shapes(self):
        return [self._get("shape")]

    def _execute(self, xs):
        if not hasattr(self, "_value"):
            self._value = self._get("weights").numpy().reshape(tuple(self._get("shape")))
        return [self._value]


class IConvolutionLayer(ILayer):
    _kind = "Convolution"
    _layer_type = trt.LayerType.CONVOLUTION
    num_output_maps = _Attr(None, int)
    kernel_size_nd = _Attr(None, _dims)
    stride_nd = _Attr(lambda l: trt.Dims([1] * len(l._get("kernel_size_nd"))), _dims)
    pre_padding = _Attr(lambda l: trt.Dims([0] * len(l._get("kernel_size_nd"))), _dims)
    post_padding = _Attr(lambda l: trt.Dims([0] * len(l._get("kernel_size_nd"))), _dims)
    dilation_nd = _Attr(lambda l: trt.Dims([1] * len(l._get("kernel_size_nd"))), _dims)
    num_groups = _Attr(1, int)
    kernel = _Attr(None)
    bias = _Attr(None)

    @property
    def padding_nd(self) -> trt.Dims:
        """Symmetric padding; setting it sets pre_padding and post_padding (TensorRT semantics)."""
        self._record("padding_nd", "get")
        return self._get("pre_padding")

    @padding_nd.setter
    def padding_nd(self, value) -> None:
        self._record("padding_nd", "set")
        self._set("pre_padding", trt.Dims(value))
        self._set("post_padding", trt.Dims(value))

    def __init__(self, network, inputs, num_output_maps, kernel_shape, kernel, bias):
        super().__init__(network, inputs)
        if len(kernel_shape) != 2:
            raise NotImplementedError(self._err(f"only 2-D convolutions are emulated, kernel_shape {tuple(kernel_shape)}"))
        self._attrs.update(num_output_maps=num_output_maps, kernel_size_nd=kernel_shape, kernel=kernel,
                           bias=bias if bias is not None else trt.Weights(kernel.dtype))

    def _max_inputs(self) -> int:
        return 3  # 1: kernel tensor, 2: bias tensor (Q/DQ networks)

    def _output_dtypes(self):
        dtype = self._in(0)._dtype()
        if dtype == DT.INT8:
            raise EmulatorTypeError(self._err(
                f"input {self._in(0)._name!r} is INT8: a strongly typed network feeds convolutions with "
                "float tensors (quantized convs take the output of a DequantizeLayer)"))
        self._require(dtype, FLOATS)
        kernel, bias = self._get("kernel"), self._get("bias")
        if len(self._inputs) > 1 and self._inputs[1] is not None:
            if self._inputs[1]._dtype() != dtype:
                raise EmulatorTypeError(self._err(
                    f"kernel tensor type {self._inputs[1]._dtype().name} differs from input type {dtype.name}"))
        elif kernel.size and kernel.dtype != dtype:
            raise EmulatorTypeError(self._err(
                f"kernel weights are {kernel.dtype.name} but input {self._in(0)._name!r} is {dtype.name}; "
                "in a strongly typed network they must match (cast the weights)"))
        if bias.size and bias.dtype != dtype:
            raise EmulatorTypeError(self._err(
                f"bias weights are {bias.dtype.name} but input {self._in(0)._name!r} is {dtype.name}; they must match"))
        return [dtype]

    def _geometry(self):
        g = self._get
        return (g("num_output_maps"), tuple(g("kernel_size_nd")), tuple(g("stride_nd")), tuple(g("pre_padding")),
                tuple(g("post_padding")), tuple(g("dilation_nd")), g("num_groups"))

    def _output_shapes(self):
        shape = self._in(0)._shape()
        k, ks, st, pre, post, dil, groups = self._geometry()
        if len(shape) != 4:
            raise ValueError(self._err(f"input must be 4-D NCHW, got shape {tuple(shape)}"))
        c = shape[1]
        if c < 0:
            raise ValueError(self._err("the channel dimension of a convolution input must be known at build time"))
        if c % groups or k % groups:
            raise ValueError(self._err(f"{c} input channels and {k} output maps must be divisible by num_groups={groups}"))
        if len(self._inputs) < 2 or self._inputs[1] is None:
            expected = k * (c // groups) * ks[0] * ks[1]
            if self._get("kernel").size != expected:
                raise ValueError(self._err(
                    f"kernel has {self._get('kernel').size} values, expected {expected} "
                    f"= {k} x {c // groups} x {ks[0]} x {ks[1]} (K x C/groups x kh x kw)"))
        bias = self._get("bias")
        if bias.size not in (0, k):
            raise ValueError(self._err(f"bias has {bias.size} values, expected {k}"))
        hw = [K.conv_output_size(shape[2 + i], ks[i], st[i], pre[i], post[i], dil[i]) for i in range(2)]
        return [trt.Dims([shape[0], k, *hw])]

    def _execute(self, xs):
        x = _f32(xs[0])
        k, ks, st, pre, post, dil, groups = self._geometry()
        c = x.shape[1]
        if len(xs) > 1 and xs[1] is not None:
            w = _f32(xs[1]).reshape(k, c // groups, *ks)
        else:
            if not hasattr(self, "_w"):
                self._w = _f32(self._get("kernel").numpy()).reshape(k, c // groups, *ks)
            w = self._w
        if len(xs) > 2 and xs[2] is not None:
            b = _f32(xs[2]).reshape(k)
        else:
            b = self._get("bias")
            b = _f32(b.numpy()) if b.size else None
        out = K.conv2d(x, w, b, st, pre, post, dil, groups)
        return [self._to(out, self._output_dtypes()[0])]


class IPoolingLayer(ILayer):
    _kind = "Pooling"
    _layer_type = trt.LayerType.POOLING
    type = _Attr(None, _enum(trt.PoolingType))  # noqa: A003  (TensorRT's name; shadows ILayer.type as in the real API)
    window_size_nd = _Attr(None, _dims)
    stride_nd = _Attr(lambda l: trt.Dims([1] * len(l._get("window_size_nd"))), _dims)
    pre_padding = _Attr(lambda l: trt.Dims([0] * len(l._get("window_size_nd"))), _dims)
    post_padding = _Attr(lambda l: trt.Dims([0] * len(l._get("window_size_nd"))), _dims)
    average_count_excludes_padding = _Attr(True, bool)

    @property
    def padding_nd(self) -> trt.Dims:
        self._record("padding_nd", "get")
        return self._get("pre_padding")

    @padding_nd.setter
    def padding_nd(self, value) -> None:
        self._record("padding_nd", "set")
        self._set("pre_padding", trt.Dims(value))
        self._set("post_padding", trt.Dims(value))

    def __init__(self, network, inputs, type, window_size):  # noqa: A002
        super().__init__(network, inputs)
        if not isinstance(type, trt.PoolingType):
            raise TypeError(f"add_pooling_nd: type must be a trt.PoolingType, got {type!r}")
        if len(window_size) != 2:
            raise NotImplementedError(f"add_pooling_nd: only 2-D pooling is emulated, window {tuple(window_size)}")
        self._attrs.update(type=type, window_size_nd=window_size)

    def _output_dtypes(self):
        dtype = self._in(0)._dtype()
        self._require(dtype, FLOATS)
        return [dtype]

    def _output_shapes(self):
        shape = self._in(0)._shape()
        if len(shape) < 3:
            raise ValueError(self._err(f"input rank must be >= 3, got {tuple(shape)}"))
        ks, st = self._get("window_size_nd"), self._get("stride_nd")
        pre, post = self._get("pre_padding"), self._get("post_padding")
        hw = [K.conv_output_size(shape[-2 + i], ks[i], st[i], pre[i], post[i], 1) for i in range(2)]
        return [trt.Dims([*shape[:-2], *hw])]

    def _execute(self, xs):
        out = K.pool2d(_f32(xs[0]), self._get("type"), tuple(self._get("window_size_nd")), tuple(self._get("stride_nd")),
                       tuple(self._get("pre_padding")), tuple(self._get("post_padding")),
                       self._get("average_count_excludes_padding"))
        return [self._to(out, self._output_dtypes()[0])]


class IActivationLayer(ILayer):
    _kind = "Activation"
    _layer_type = trt.LayerType.ACTIVATION
    type = _Attr(None, _enum(trt.ActivationType))  # noqa: A003
    alpha = _Attr(0.0, _float)
    beta = _Attr(0.0, _float)

    def __init__(self, network, inputs, type):  # noqa: A002
        super().__init__(network, inputs)
        if not isinstance(type, trt.ActivationType):
            raise TypeError(f"add_activation: type must be a trt.ActivationType, got {type!r}")
        self._attrs["type"] = type

    def _output_dtypes(self):
        dtype = self._in(0)._dtype()
        self._require(dtype, FLOATS)
        return [dtype]

    def _execute(self, xs):
        kind, alpha, beta = self._get("type"), np.float32(self._get("alpha")), np.float32(self._get("beta"))
        A = trt.ActivationType
        if kind == A.RELU and xs[0].dtype == np.float16:  # exact in float16: no rounding involved
            return [np.maximum(xs[0], np.float16(0))]
        x = _f32(xs[0])
        if kind == A.RELU:
            out = np.maximum(x, np.float32(0))
        elif kind == A.SIGMOID:
            out = np.empty_like(x)
            np.negative(x, out=out)
            np.exp(out, out=out)
            out += np.float32(1)
            np.reciprocal(out, out=out)
        elif kind == A.TANH:
            out = np.tanh(x)
        elif kind == A.LEAKY_RELU:
            out = np.where(x >= 0, x, x * alpha)
        elif kind == A.CLIP:
            out = np.clip(x, alpha, beta)
        else:
            raise NotImplementedError(self._err(f"activation {kind} is not emulated"))
        return [self._to(out, self._output_dtypes()[0])]


_ARITH = ("SUM", "PROD", "MAX", "MIN", "SUB", "DIV", "POW", "FLOOR_DIV")
_LOGIC = ("AND", "OR", "XOR")
_COMPARE = ("EQUAL", "GREATER", "LESS")


class IElementWiseLayer(ILayer):
    _kind = "ElementWise"
    _layer_type = trt.LayerType.ELEMENTWISE
    op = _Attr(None, _enum(trt.ElementWiseOperation))

    def __init__(self, network, inputs, op):
        super().__init__(network, inputs)
        if not isinstance(op, trt.ElementWiseOperation):
            raise TypeError(f"add_elementwise: op must be a trt.ElementWiseOperation, got {op!r}")
        self._attrs["op"] = op

    def _output_dtypes(self):
        a, b = self._in(0), self._in(1)
        ta, tb = a._dtype(), b._dtype()
        op = self._get("op")
        if ta != tb:
            raise EmulatorTypeError(self._err(
                f"{op.name} of {a._name!r} ({ta.name}) and {b._name!r} ({tb.name}): a strongly typed "
                "network needs both inputs of the same type (add a cast)"))
        if op.name in _LOGIC:
            self._require(ta, (DT.BOOL,))
        elif op.name == "POW":
            self._require(ta, FLOATS)
        else:
            self._require(ta, NUMERIC)
        return [DT.BOOL if op.name in _COMPARE else ta]

    def _output_shapes(self):
        return [_broadcast_dims(self._in(0)._shape(), self._in(1)._shape(), self._err)]

    def _execute(self, xs):
        a, b = xs
        _broadcast_dims(a.shape, b.shape, self._err)
        dtype = self._output_dtypes()[0]
        is_float = a.dtype.kind == "f"
        name = self._get("op").name
        # NumPy's float16 ufuncs compute each element in float32 and round once, i.e. exactly
        # the float32-then-round rule of the emulator; only POW goes through float32 explicitly.
        if is_float and (name == "POW" or a.dtype != np.float16):
            a, b = _f32(a), _f32(b)
        if name == "SUM":
            out = a + b
        elif name == "PROD":
            out = a * b
        elif name == "MAX":
            out = np.maximum(a, b)
        elif name == "MIN":
            out = np.minimum(a, b)
        elif name == "SUB":
            out = a - b
        elif name == "DIV":
            if is_float:
                out = a / b
            else:  # integer division truncates toward zero, like C++
                q = np.abs(a) // np.abs(b)
                out = np.where((a < 0) != (b < 0), -q, q).astype(a.dtype)
        elif name == "POW":
            out = np.power(a, b)
        elif name == "FLOOR_DIV":
            out = np.floor(a / b) if is_float else np.floor_divide(a, b)
        elif name == "AND":
            out = np.logical_and(a, b)
        elif name == "OR":
            out = np.logical_or(a, b)
        elif name == "XOR":
            out = np.logical_xor(a, b)
        elif name == "EQUAL":
            out = a == b
        elif name == "GREATER":
            out = a > b
        else:
            out = a < b
        return [self._to(np.asarray(out), dtype)]


class IUnaryLayer(ILayer):
    _kind = "Unary"
    _layer_type = trt.LayerType.UNARY
    op = _Attr(None, _enum(trt.UnaryOperation))

    def __init__(self, network, inputs, op):
        super().__init__(network, inputs)
        if not isinstance(op, trt.UnaryOperation):
            raise TypeError(f"add_unary: op must be a trt.UnaryOperation, got {op!r}")
        self._attrs["op"] = op

    def _output_dtypes(self):
        # NvInfer.h addUnary (10.3 l.6509-6512, 11.1 l.8432-8435): "Generally the input must have a
        # floating-point type (or kINT8 as a quantized float), except: kSIGN accepts a floating-point
        # or Int32 tensor; kNOT requires a Bool tensor." INT8 and SIGN are not emulated.
        dtype = self._in(0)._dtype()
        self._require(dtype, (DT.BOOL,) if self._get("op").name == "NOT" else FLOATS)
        return [dtype]

    def _execute(self, xs):
        x = xs[0]
        name = self._get("op").name
        if x.dtype.kind == "f":
            x = _f32(x)
        fn = {"EXP": np.exp, "LOG": np.log, "SQRT": np.sqrt, "RECIP": np.reciprocal, "ABS": np.abs,
              "NEG": np.negative, "CEIL": np.ceil, "FLOOR": np.floor, "NOT": np.logical_not,
              "ROUND": np.rint}[name]  # ROUND: half to even (IEEE nearbyint)
        return [self._to(fn(x), self._output_dtypes()[0])]


class IResizeLayer(ILayer):
    _kind = "Resize"
    _layer_type = trt.LayerType.RESIZE
    resize_mode = _Attr(trt.InterpolationMode.NEAREST, _enum(trt.InterpolationMode))
    coordinate_transformation = _Attr(trt.ResizeCoordinateTransformation.ASYMMETRIC,
                                      _enum(trt.ResizeCoordinateTransformation))
    selector_for_single_pixel = _Attr(trt.ResizeSelector.FORMULA, _enum(trt.ResizeSelector))
    nearest_rounding = _Attr(trt.ResizeRoundMode.FLOOR, _enum(trt.ResizeRoundMode))
    cubic_coeff = _Attr(-0.75, _float)
    exclude_outside = _Attr(False, bool)

    @property
    def shape(self) -> trt.Dims:
        """Output dimensions (setting them clears ``scales``)."""
        self._record("shape", "get")
        return self._attrs.get("shape")

    @shape.setter
    def shape(self, value) -> None:
        self._record("shape", "set")
        dims = trt.Dims(value)
        if any(d < 0 for d in dims):
            raise ValueError(self._err(f"shape {tuple(dims)} has unknown dims; a dynamic output size "
                                       "needs a shape tensor as input 1 (set_input)"))
        if len(dims) != len(self._in(0)._shape()):
            raise ValueError(self._err(f"shape {tuple(dims)} must have the input's rank {len(self._in(0)._shape())}"))
        self._pop("scales")
        self._set("shape", dims)

    @property
    def scales(self) -> list[float]:
        """Per-dimension scales: output = floor(input * scale) (setting them clears ``shape``)."""
        self._record("scales", "get")
        return self._attrs.get("scales")

    @scales.setter
    def scales(self, value) -> None:
        self._record("scales", "set")
        scales = [float(s) for s in value]
        if len(scales) != len(self._in(0)._shape()):
            raise ValueError(self._err(f"{len(scales)} scales for a rank-{len(self._in(0)._shape())} input"))
        if any(s <= 0 for s in scales):
            raise ValueError(self._err(f"scales must be positive, got {scales}"))
        self._pop("shape")
        self._set("scales", scales)

    def _max_inputs(self) -> int:
        return 2  # 1: output shape tensor (dynamic resize)

    def _on_set_input(self, index):
        if index == 1:
            self._pop("shape")
            self._pop("scales")

    def _output_dtypes(self):
        dtype = self._in(0)._dtype()
        self._require(dtype, FLOATS)
        return [dtype]

    def _out_dims(self, in_shape, shape_value=None):
        if shape_value is not None:
            return [int(v) for v in shape_value]
        if "shape" in self._attrs:
            return list(self._attrs["shape"])
        if "scales" in self._attrs:
            return [int(np.floor(d * s)) if d >= 0 else -1 for d, s in zip(in_shape, self._attrs["scales"])]
        raise ValueError(self._err("set shape or scales (or a shape tensor as input 1) before using the output"))

    def _output_shapes(self):
        if len(self._inputs) > 1 and self._inputs[1] is not None:
            return [trt.Dims([-1] * len(self._in(0)._shape()))]
        shape = self._in(0)._shape()
        if "shape" not in self._attrs and "scales" not in self._attrs:
            return [trt.Dims([-1] * len(shape))]  # not configured yet (TensorRT also defers)
        return [trt.Dims(self._out_dims(shape))]

    def _execute(self, xs):
        x = xs[0]
        out_dims = self._out_dims(x.shape, xs[1] if len(xs) > 1 and xs[1] is not None else None)
        mode = self._get("resize_mode")
        changed = [ax for ax in range(x.ndim) if out_dims[ax] != x.shape[ax]]
        limit = 3 if mode == trt.InterpolationMode.LINEAR else 8
        if changed and changed[0] < x.ndim - limit:
            raise ValueError(self._err(f"{mode.name} resizes at most the last {limit} dims, dims {changed} change"))
        y = _f32(x)
        for ax in changed:
            y = K.resize_axis(y, ax, out_dims[ax], mode, self._get("coordinate_transformation"),
                              self._get("selector_for_single_pixel"), self._get("nearest_rounding"))
        return [self._to(y, self._output_dtypes()[0])]


class IShuffleLayer(ILayer):
    _kind = "Shuffle"
    _layer_type = trt.LayerType.SHUFFLE
    first_transpose = _Attr(lambda l: trt.Permutation(range(len(l._in(0)._shape()))), trt.Permutation)
    second_transpose = _Attr(None, trt.Permutation)
    zero_is_placeholder = _Attr(True, bool)

    @property
    def reshape_dims(self) -> trt.Dims:
        """Reshape after first_transpose: 0 copies the input dim (zero_is_placeholder), -1 is inferred."""
        self._record("reshape_dims", "get")
        return self._attrs.get("reshape_dims")

    @reshape_dims.setter
    def reshape_dims(self, value) -> None:
        self._record("reshape_dims", "set")
        dims = trt.Dims(value)
        if sum(d == -1 for d in dims) > 1 or any(d < -1 for d in dims):
            raise ValueError(self._err(f"reshape_dims {tuple(dims)}: at most one -1, no other negative value"))
        self._set("reshape_dims", dims)

    def _max_inputs(self) -> int:
        return 2  # 1: reshape dims as a shape tensor

    def _on_set_input(self, index):
        if index == 1:
            self._pop("reshape_dims")

    def _perm(self, name, rank):
        p = self._get(name)
        if p is None:
            return tuple(range(rank))
        if sorted(p) != list(range(rank)):
            raise ValueError(self._err(f"{name} {tuple(p)} is not a permutation of {rank} axes"))
        return tuple(p)

    def _reshape(self, shape, dims, known: bool):
        dims = list(dims)
        out = []
        for i, d in enumerate(dims):
            if d == 0 and self._get("zero_is_placeholder"):
                if i >= len(shape):
                    raise ValueError(self._err(f"reshape_dims {tuple(dims)}: placeholder 0 at {i} past the input rank"))
                out.append(shape[i])
            else:
                out.append(d)
        if -1 in out:
            i = out.index(-1)
            rest = [d for j, d in enumerate(out) if j != i]
            if any(d < 0 for d in shape) or any(d < 0 for d in rest):
                if known:
                    raise ValueError(self._err("cannot infer -1 in reshape_dims"))
                return out
            vol, rvol = int(np.prod(shape, dtype=np.int64)), int(np.prod(rest, dtype=np.int64))
            if rvol == 0 or vol % rvol:
                raise ValueError(self._err(f"cannot reshape {tuple(shape)} to {tuple(dims)}"))
            out[i] = vol // rvol
        if all(d >= 0 for d in shape) and all(d >= 0 for d in out):
            if int(np.prod(shape, dtype=np.int64)) != int(np.prod(out, dtype=np.int64)):
                raise ValueError(self._err(f"cannot reshape {tuple(shape)} ({int(np.prod(shape))} values) "
                                           f"to {tuple(out)}"))
        return out

    def _output_dtypes(self):
        return [self._in(0)._dtype()]

    def _output_shapes(self):
        shape = list(self._in(0)._shape())
        p1 = self._perm("first_transpose", len(shape))
        shape = [shape[i] for i in p1]
        if len(self._inputs) > 1 and self._inputs[1] is not None:
            n = self._inputs[1]._shape()
            shape = [-1] * (n[0] if len(n) == 1 and n[0] >= 0 else 0)
        elif self._attrs.get("reshape_dims") is not None:
            shape = self._reshape(shape, self._attrs["reshape_dims"], known=False)
        p2 = self._perm("second_transpose", len(shape))
        return [trt.Dims([shape[i] for i in p2])]

    def _execute(self, xs):
        x = xs[0]
        x = np.transpose(x, self._perm("first_transpose", x.ndim))
        if len(xs) > 1 and xs[1] is not None:
            x = x.reshape(self._reshape(x.shape, [int(v) for v in xs[1]], known=True))
        elif self._attrs.get("reshape_dims") is not None:
            x = x.reshape(self._reshape(x.shape, self._attrs["reshape_dims"], known=True))
        x = np.transpose(x, self._perm("second_transpose", x.ndim))
        return [x]


class IIdentityLayer(ILayer):
    _kind = "Identity"
    _layer_type = trt.LayerType.IDENTITY

    def _execute(self, xs):
        return [xs[0]]


class IConcatenationLayer(ILayer):
    _kind = "Concatenation"
    _layer_type = trt.LayerType.CONCATENATION
    axis = _Attr(lambda l: max(0, len(l._in(0)._shape()) - 3), int)

    def _output_dtypes(self):
        types = self._in_types()
        if len(set(types)) != 1:
            listing = ", ".join(f"{t._name!r}: {t._dtype().name}" for t in self._inputs)
            raise EmulatorTypeError(self._err(f"all inputs must have the same type ({listing})"))
        return [types[0]]

    def _output_shapes(self):
        shapes = self._in_shapes()
        rank = len(shapes[0])
        axis = self._get("axis")
        if not 0 <= axis < rank:  # TensorRT takes no negative axis
            raise ValueError(self._err(f"axis {axis} out of range [0, {rank}) for rank {rank}"))
        out = list(shapes[0])
        for s in shapes[1:]:
            if len(s) != rank or any(a != b and a >= 0 and b >= 0 for i, (a, b) in enumerate(zip(s, shapes[0])) if i != axis):
                raise ValueError(self._err(f"shapes {[tuple(x) for x in shapes]} differ outside axis {axis}"))
        sizes = [s[axis] for s in shapes]
        out[axis] = -1 if any(d < 0 for d in sizes) else sum(sizes)
        return [trt.Dims(out)]

    def _execute(self, xs):
        return [np.concatenate(xs, axis=self._get("axis"))]


class ISliceLayer(ILayer):
    _kind = "Slice"
    _layer_type = trt.LayerType.SLICE
    start = _Attr(None, _dims)
    shape = _Attr(None, _dims)
    stride = _Attr(None, _dims)

    def __init__(self, network, inputs, start, shape, stride):
        super().__init__(network, inputs)
        self._attrs.update(start=start, shape=shape, stride=stride)

    def _max_inputs(self) -> int:
        return 4  # 1 start, 2 size, 3 stride as shape tensors

    def _dyn(self, i):
        return len(self._inputs) > i and self._inputs[i] is not None

    def _output_shapes(self):
        rank = len(self._in(0)._shape())
        if self._dyn(2):
            return [trt.Dims([-1] * rank)]
        shape = self._get("shape")
        if not (len(shape) == len(self._get("start")) == len(self._get("stride")) == rank):
            raise ValueError(self._err(f"start/shape/stride must have the input's rank {rank}"))
        return [shape]

    def _execute(self, xs):
        x = xs[0]
        start = [int(v) for v in xs[1]] if self._dyn(1) else list(self._get("start"))
        size = [int(v) for v in xs[2]] if self._dyn(2) else list(self._get("shape"))
        stride = [int(v) for v in xs[3]] if self._dyn(3) else list(self._get("stride"))
        index = []
        for ax, (s, n, st) in enumerate(zip(start, size, stride)):
            last = s + (n - 1) * st
            if n > 0 and not (0 <= s < x.shape[ax] and 0 <= last < x.shape[ax]):
                raise IndexError(self._err(
                    f"axis {ax}: slice start {s}, size {n}, stride {st} leaves the input dim {x.shape[ax]} "
                    "(STRICT_BOUNDS)"))
            index.append(np.arange(n) * st + s if st < 0 else slice(s, s + (n - 1) * st + 1 if n else s, st))
        out = x
        for ax, ix in enumerate(index):
            out = out[(slice(None),) * ax + (ix,)]
        return [out]


class ISoftMaxLayer(ILayer):
    _kind = "Softmax"
    _layer_type = trt.LayerType.SOFTMAX
    axes = _Attr(lambda l: 1 << max(0, len(l._in(0)._shape()) - 3), int)

    def _output_dtypes(self):
        dtype = self._in(0)._dtype()
        self._require(dtype, FLOATS)
        return [dtype]

    def _execute(self, xs):
        axes = K.reduce_axes(self._get("axes"), xs[0].ndim)
        if len(axes) != 1:
            raise ValueError(self._err(f"softmax needs exactly one axis bit, got axes={self._get('axes'):#b}"))
        return [self._to(K.softmax(_f32(xs[0]), axes), self._output_dtypes()[0])]


class IReduceLayer(ILayer):
    _kind = "Reduce"
    _layer_type = trt.LayerType.REDUCE
    op = _Attr(None, _enum(trt.ReduceOperation))
    axes = _Attr(None, int)
    keep_dims = _Attr(None, bool)

    def __init__(self, network, inputs, op, axes, keep_dims):
        super().__init__(network, inputs)
        if not isinstance(op, trt.ReduceOperation):
            raise TypeError(f"add_reduce: op must be a trt.ReduceOperation, got {op!r}")
        self._attrs.update(op=op, axes=axes, keep_dims=keep_dims)

    def _output_dtypes(self):
        dtype = self._in(0)._dtype()
        self._require(dtype, FLOATS if self._get("op") == trt.ReduceOperation.AVG else NUMERIC)
        return [dtype]

    def _output_shapes(self):
        shape = self._in(0)._shape()
        axes = K.reduce_axes(self._get("axes"), len(shape))
        if self._get("keep_dims"):
            return [trt.Dims([1 if i in axes else d for i, d in enumerate(shape)])]
        return [trt.Dims([d for i, d in enumerate(shape) if i not in axes])]

    def _execute(self, xs):
        x = xs[0]
        if x.dtype.kind == "f":
            x = _f32(x)
        axes = K.reduce_axes(self._get("axes"), x.ndim)
        fn = {"SUM": np.sum, "PROD": np.prod, "MAX": np.max, "MIN": np.min, "AVG": np.mean}[self._get("op").name]
        out = fn(x, axis=axes, keepdims=self._get("keep_dims"))
        return [self._to(np.asarray(out, dtype=x.dtype), self._output_dtypes()[0])]


class IMatrixMultiplyLayer(ILayer):
    _kind = "MatrixMultiply"
    _layer_type = trt.LayerType.MATRIX_MULTIPLY
    op0 = _Attr(None, _enum(trt.MatrixOperation))
    op1 = _Attr(None, _enum(trt.MatrixOperation))

    def __init__(self, network, inputs, op0, op1):
        super().__init__(network, inputs)
        for o in (op0, op1):
            if not isinstance(o, trt.MatrixOperation):
                raise TypeError(f"add_matrix_multiply: ops must be trt.MatrixOperation, got {o!r}")
        self._attrs.update(op0=op0, op1=op1)

    def _output_dtypes(self):
        a, b = self._in(0), self._in(1)
        if a._dtype() != b._dtype():
            raise EmulatorTypeError(self._err(
                f"inputs {a._name!r} ({a._dtype().name}) and {b._name!r} ({b._dtype().name}) must have the same type"))
        self._require(a._dtype(), FLOATS)
        return [a._dtype()]

    def _operands(self, sa, sb):
        M = trt.MatrixOperation
        op0, op1 = self._get("op0"), self._get("op1")
        sa, sb = list(sa), list(sb)
        sa = sa[:-1] + [1, sa[-1]] if op0 == M.VECTOR else (sa[:-2] + [sa[-1], sa[-2]] if op0 == M.TRANSPOSE else sa)
        sb = sb + [1] if op1 == M.VECTOR else (sb[:-2] + [sb[-1], sb[-2]] if op1 == M.TRANSPOSE else sb)
        return sa, sb

    def _output_shapes(self):
        M = trt.MatrixOperation
        sa, sb = self._operands(self._in(0)._shape(), self._in(1)._shape())
        if len(sa) != len(sb) or len(sa) < 2:
            raise ValueError(self._err(f"operand ranks differ: {tuple(self._in(0)._shape())} and {tuple(self._in(1)._shape())}"))
        if sa[-1] != sb[-2] and sa[-1] >= 0 and sb[-2] >= 0:
            raise ValueError(self._err(f"inner dims differ: {sa} x {sb}"))
        batch = _broadcast_dims(sa[:-2], sb[:-2], self._err)
        out = list(batch) + [sa[-2], sb[-1]]
        if self._get("op1") == M.VECTOR:
            out.pop(-1)
        if self._get("op0") == M.VECTOR:
            out.pop(-2 if self._get("op1") != M.VECTOR else -1)
        return [trt.Dims(out)]

    def _execute(self, xs):
        M = trt.MatrixOperation
        a, b = _f32(xs[0]), _f32(xs[1])
        op0, op1 = self._get("op0"), self._get("op1")
        a = a[..., None, :] if op0 == M.VECTOR else (np.swapaxes(a, -1, -2) if op0 == M.TRANSPOSE else a)
        b = b[..., :, None] if op1 == M.VECTOR else (np.swapaxes(b, -1, -2) if op1 == M.TRANSPOSE else b)
        out = np.matmul(a, b)
        if op1 == M.VECTOR:
            out = out[..., 0]
        if op0 == M.VECTOR:
            out = out[..., 0] if op1 == M.VECTOR else out[..., 0, :]
        return [self._to(out, self._output_dtypes()[0])]


_CASTABLE = (DT.FLOAT, DT.HALF, DT.INT32, DT.INT64, DT.UINT8, DT.BOOL)
# NvInferRuntimeBase.h, DataType::kUINT8 (10.3 l.156-162, 11.1 l.170-176): "kUINT8 conversions
# are only supported for {kFLOAT, kHALF}" and "are not supported for {kINT8, kINT32, kBOOL}".
_UINT8_PARTNERS = FLOATS


class ICastLayer(ILayer):
    """Cast. Float to integer truncates toward zero (C++ conversion). Float to UINT8 outside
    [0, 256) after truncation is undefined in TensorRT (NvInferRuntimeBase.h 10.3 l.159-161,
    11.1 l.173-175), so the emulator refuses such values at run time instead of guessing."""

    _kind = "Cast"
    _layer_type = trt.LayerType.CAST
    to_type = _Attr(None, _enum(trt.DataType))

    def __init__(self, network, inputs, to_type):
        super().__init__(network, inputs)
        if not isinstance(to_type, trt.DataType):
            raise TypeError(f"add_cast: to_type must be a trt.DataType, got {to_type!r}")
        self._attrs["to_type"] = to_type

    def _output_dtypes(self):
        src, to = self._in(0)._dtype(), self._get("to_type")
        self._require(src, _CASTABLE)
        self._require(to, _CASTABLE, "to_type (INT8 goes through add_quantize)")
        if DT.UINT8 in (src, to) and src != to and not {src, to} - {DT.UINT8} <= set(_UINT8_PARTNERS):
            raise EmulatorTypeError(self._err(
                f"cast {src.name} -> {to.name}: TensorRT converts UINT8 only to and from FLOAT or HALF "
                "(NvInferRuntimeBase.h, DataType::kUINT8); cast through FLOAT"))
        return [to]

    def _execute(self, xs):
        x, to = xs[0], self._get("to_type")
        if to == DT.BOOL:
            return [x != 0]
        if x.dtype.kind == "f" and to in (DT.INT32, DT.INT64, DT.UINT8):
            x = np.trunc(x)
            if to == DT.UINT8 and x.size and not (x.min() >= 0 and x.max() < 256):
                raise ValueError(self._err(
                    f"{self._in(0)._name!r} holds values in [{x.min()}, {x.max()}] after truncation; a float -> "
                    "UINT8 cast is undefined outside [0, 256) in TensorRT (clamp first, e.g. IActivationLayer CLIP)"))
        return [x.astype(trt.nptype(to))]


# --- Quantize / Dequantize: the rules of TensorRT 10.3 and 11.1 together ------------------------
# Line numbers are NvInfer.h's (../shared/trt-headers/{10.3,11.1}/include). Where the versions
# differ, the stricter rule holds, so a network the emulator accepts builds on both.

def _build_time_constant(t: ITensor):
    """The IConstantLayer a scale comes from. "The subgraph which terminates with the scale tensor
    must be a build-time constant" and "the only allowed build-time constant scale and zeroPt
    subgraphs are: 1. Constant -> Quantize 2. Constant -> Cast -> Quantize" (10.3 l.5338 and
    l.5375-5377 for IQuantizeLayer, l.5465 and l.5505-5507 for IDequantizeLayer; 11.1 only keeps
    this for zeroPt, 10.3 is stricter)."""
    p = t._producer
    if isinstance(p, ICastLayer):
        p = p._in(0)._producer
    return p if isinstance(p, IConstantLayer) else None


def _is_weights(t: ITensor) -> bool:
    """Per-channel quantization "is supported only for weight inputs" (10.3 l.5358, 11.1 l.5381):
    the tensor is an IConstantLayer's output (no cast or other layer in between)."""
    return isinstance(t._producer, IConstantLayer)


def _check_scale(layer, data: ITensor, scale: ITensor, axis: int, per_channel_ok: bool) -> None:
    """Shape, axis and values of a Q/DQ scale."""
    shape, s = data._shape(), scale._shape()
    if len(shape) == 0:
        # "The input tensor for this layer must not be a scalar." (10.3 l.5379, l.5509; 11.1 l.5402, l.5556)
        raise ValueError(layer._err(f"input {data._name!r} is a scalar; Q/DQ inputs must have rank >= 1"))
    if len(s) > 1:
        # scalar = per-tensor, 1-D = per-channel, 2-D = block quantization, "supported for
        # DataType::kINT4 only" (10.3 l.5332-5333, l.5459-5460)
        raise ValueError(layer._err(f"scale {scale._name!r} has shape {tuple(s)}: a scale is 0-D (per-tensor) "
                                    "or 1-D (per-channel); block scales are for INT4 only"))
    if len(s) == 1:
        # "The scale value must be a scalar for per-tensor quantization, a 1-D tensor for
        # per-channel" (10.3 l.5332, 11.1 l.5354): a 1-D scale is per-channel even with one value.
        if not per_channel_ok:
            raise ValueError(layer._err(
                f"scale {scale._name!r} is 1-D (per-channel), but {data._name!r} is not weights: per-channel "
                "quantization is supported only for weights (NvInfer.h IQuantizeLayer/IDequantizeLayer); "
                "per-tensor scales are 0-D (shape ())"))
        # "The axis must be a valid axis if the scale tensor has more than one coefficient" and
        # "The size of the 1-D scale tensor must match the size of the quantization axis" (10.3 l.5402, l.5334)
        if not 0 <= axis < len(shape):
            raise ValueError(layer._err(f"per-channel scale needs a quantization axis in [0, {len(shape)}), got {axis}"))
        if shape[axis] < 0 or s[0] != shape[axis]:
            raise ValueError(layer._err(f"per-channel scale has {s[0]} values, axis {axis} of {data._name!r} "
                                        f"has {shape[axis]}"))
    source = _build_time_constant(scale)
    if source is None:
        raise ValueError(layer._err(
            f"scale {scale._name!r} must be a build-time constant: an IConstantLayer, optionally through one "
            "ICastLayer (NvInfer.h 10.3 IQuantizeLayer notes)"))
    values = source._get("weights").numpy().astype(trt.nptype(scale._dtype()))
    # "All scale coefficients must have (strictly) positive values" (10.3 l.5333-5334, 11.1 l.5355)
    if values.size and not (np.all(values > 0) and np.all(np.isfinite(values))):
        raise ValueError(layer._err(f"scale {scale._name!r} has values <= 0 or not finite (min {values.min()}); "
                                    "TensorRT needs strictly positive scales"))


class IQuantizeLayer(ILayer):
    """``clamp(round_half_even(x / scale), -128, 127)`` to INT8."""

    _kind = "Quantize"
    _layer_type = trt.LayerType.QUANTIZE
    # "A value of -1 indicates per-tensor quantization. The default value is -1." (10.3 l.5391-5392)
    axis = _Attr(-1, int)
    to_type = _Attr(DT.INT8, _enum(trt.DataType))

    def __init__(self, network, inputs, output_type):
        super().__init__(network, inputs)
        self._attrs["to_type"] = output_type

    def _output_dtypes(self):
        # input FLOAT/HALF (BF16 not emulated) (10.3 l.5341); output INT8 (FP8/INT4 not emulated)
        dtype = self._in(0)._dtype()
        self._require(dtype, FLOATS)
        if self._get("to_type") != DT.INT8:
            raise EmulatorTypeError(self._err(f"output_type {self._get('to_type')} not emulated (INT8 is)"))
        st = self._in(1)._dtype()
        # 10.3 l.5345-5346: "For strongly typed networks, input data type must match the scale data
        # type." (also addQuantize, l.7478-7479). 11.1 l.5366-5368 only asks it of HALF/BF16 scales;
        # 10.3 is stricter.
        if st != dtype:
            raise EmulatorTypeError(self._err(
                f"scale {self._in(1)._name!r} is {st.name} but input {self._in(0)._name!r} is {dtype.name}: "
                "TensorRT 10.3 needs the scale in the input's type (cast the scale constant)"))
        return [DT.INT8]

    def _output_shapes(self):
        _check_scale(self, self._in(0), self._in(1), self._get("axis"), _is_weights(self._in(0)))
        return [self._in(0)._shape()]

    def _execute(self, xs):
        return [K.quantize(xs[0], xs[1], self._get("axis"))]


class IDequantizeLayer(ILayer):
    """``q * scale`` from INT8 to FLOAT or HALF."""

    _kind = "Dequantize"
    _layer_type = trt.LayerType.DEQUANTIZE
    axis = _Attr(-1, int)  # "The default value is -1." (per-tensor; 10.3 l.5521-5522, 11.1 l.5569)
    to_type = _Attr(DT.FLOAT, _enum(trt.DataType))

    def __init__(self, network, inputs, output_type):
        super().__init__(network, inputs)
        self._attrs["to_type"] = output_type

    def _output_dtypes(self):
        self._require(self._in(0)._dtype(), (DT.INT8,))
        to = self._get("to_type")
        self._require(to, FLOATS, "output_type")  # FLOAT/HALF (BF16 not emulated) (10.3 l.5467, 11.1 l.5515)
        st = self._in(1)._dtype()
        # 10.3 l.5475-5476: "For strongly typed networks, output data type is inferred from scale
        # data type", and addDequantize l.7416-7419: the scale type "must be the same as the output
        # data type". 11.1 l.5523-5524 ("The output data type must be configured explicitly using
        # setToType") and l.9355-9356 ask it of HALF/BF16 scales only; 10.3 is stricter.
        if st != to:
            raise EmulatorTypeError(self._err(
                f"scale {self._in(1)._name!r} is {st.name} but output_type is {to.name}: TensorRT 10.3 infers a "
                "dequantize's output type from its scale (cast the scale constant to the output type)"))
        return [to]

    def _output_shapes(self):
        # Per-channel dequantization "is supported only for input that is rooted at an
        # IConstantLayer (i.e. weights)" (10.3 l.5486, 11.1 l.5534): Constant -> Quantize -> here.
        q = self._in(0)._producer
        rooted = isinstance(q, IQuantizeLayer) and _is_weights(q._in(0))
        _check_scale(self, self._in(0), self._in(1), self._get("axis"), rooted)
        return [self._in(0)._shape()]

    def _execute(self, xs):
        return [self._to(K.dequantize(xs[0], xs[1], self._get("axis")), self._get("to_type"))]


class IGatherLayer(ILayer):
    """GatherMode.DEFAULT: ``output = take(input, indices, axis)``."""

    _kind = "Gather"
    _layer_type = trt.LayerType.GATHER
    axis = _Attr(0, int)
    num_elementwise_dims = _Attr(0, int)
    mode = _Attr(trt.GatherMode.DEFAULT, _enum(trt.GatherMode))

    def __init__(self, network, inputs, axis):
        super().__init__(network, inputs)
        self._attrs["axis"] = axis

    def _output_dtypes(self):
        self._require(self._in(1)._dtype(), (DT.INT32, DT.INT64), "indices")
        if self._get("mode") != trt.GatherMode.DEFAULT or self._get("num_elementwise_dims"):
            raise NotImplementedError(self._err("only GatherMode.DEFAULT with num_elementwise_dims 0 is emulated"))
        return [self._in(0)._dtype()]

    def _output_shapes(self):
        s, i = list(self._in(0)._shape()), list(self._in(1)._shape())
        ax = self._get("axis")
        if not 0 <= ax < len(s):
            raise ValueError(self._err(f"axis {ax} out of range for rank {len(s)}"))
        return [trt.Dims(s[:ax] + i + s[ax + 1:])]

    def _execute(self, xs):
        x, idx = xs
        ax = self._get("axis")
        if idx.size and (idx.min() < -x.shape[ax] or idx.max() >= x.shape[ax]):
            raise IndexError(self._err(f"indices outside [{-x.shape[ax]}, {x.shape[ax]}) on axis {ax}"))
        return [np.take(x, idx.astype(np.int64), axis=ax)]


class IShapeLayer(ILayer):
    """The input's dimensions as a 1-D INT64 tensor (TensorRT 10+)."""

    _kind = "Shape"
    _layer_type = trt.LayerType.SHAPE

    def _output_dtypes(self):
        return [DT.INT64]

    def _output_shapes(self):
        return [trt.Dims([len(self._in(0)._shape())])]

    def _execute(self, xs):
        return [np.array(xs[0].shape, dtype=np.int64)]


class IPluginV3Layer(ILayer):
    """A plugin executed by its CPU twin (see :mod:`trtnet.emulator.plugins`)."""

    _kind = "PluginV3"
    _layer_type = trt.LayerType.PLUGIN_V3

    def __init__(self, network, inputs, plugin):
        self._plugin = plugin
        super().__init__(network, inputs, num_outputs=plugin.num_outputs)

    @property
    def plugin(self):
        self._record("plugin", "get")
        return self._plugin

    def _output_dtypes(self):
        try:
            return self._plugin.output_dtypes(self._in_types())
        except (TypeError, ValueError) as exc:
            raise EmulatorTypeError(self._err(str(exc))) from None

    def _output_shapes(self):
        try:
            return [trt.Dims(s) for s in self._plugin.output_shapes(self._in_shapes())]
        except ValueError as exc:
            raise ValueError(self._err(str(exc))) from None

    def _execute(self, xs):
        outs = self._plugin.execute(xs)
        return [np.asarray(o, dtype=trt.nptype(t)) for o, t in zip(outs, self._output_dtypes())]
