"""Cast, quantize and dequantize: the layers that change a tensor's type."""

from __future__ import annotations

import numpy as np

from .. import kernels as K
from .. import trt_types as trt  # the types; ..trt (the recording module) re-exports them
from ..tensor import ITensor
from .base import DT, EmulatorTypeError, FLOATS, ILayer, _Attr, _enum
from .shape import IConstantLayer


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
