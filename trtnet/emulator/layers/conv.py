"""Convolution, pooling and matrix multiply: the layers that weigh a neighbourhood."""

from __future__ import annotations

import numpy as np

from .. import kernels as K
from .. import trt_types as trt  # the types; ..trt (the recording module) re-exports them
from .base import DT, EmulatorTypeError, FLOATS, ILayer, _Attr, _broadcast_dims, _dims, _enum, _f32


def _symmetric_padding() -> property:
    """``padding_nd`` of convolution and pooling layers: reads pre_padding; setting it sets
    pre_padding and post_padding (TensorRT semantics)."""

    def get(layer) -> trt.Dims:
        layer._record("padding_nd", "get")
        return layer._get("pre_padding")

    def set_(layer, value) -> None:
        layer._record("padding_nd", "set")
        layer._set("pre_padding", trt.Dims(value))
        layer._set("post_padding", trt.Dims(value))

    return property(get, set_)


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

    padding_nd = _symmetric_padding()

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

    padding_nd = _symmetric_padding()

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
