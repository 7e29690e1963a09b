"""Activation, elementwise, unary, softmax and reduce: the layers that compute values."""

from __future__ import annotations

import numpy as np

from .. import kernels as K
from .. import trt_types as trt  # the types; ..trt (the recording module) re-exports them
from .base import DT, EmulatorTypeError, FLOATS, ILayer, NUMERIC, _Attr, _broadcast_dims, _enum, _f32, _float


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
