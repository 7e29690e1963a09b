"""The tensor dtypes a checkpoint may hold, by their torch names, and how each is stored.

numpy has no bfloat16: bfloat16 storages are read as uint16 bit patterns and widened to
float32 (exactly) by :func:`bfloat16_to_float32`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DType:
    """One torch dtype: its name, the numpy type of its raw storage and its safetensors tag."""

    name: str            # torch name: 'float32', 'bfloat16', ...
    storage: np.dtype    # numpy dtype of the raw little-endian storage elements
    safetensors: str     # safetensors header tag ('F32', 'BF16', ...)

    @property
    def itemsize(self) -> int:
        return self.storage.itemsize

    @property
    def is_float(self) -> bool:
        return self.name in ("float16", "float32", "float64", "bfloat16")


def _d(name: str, np_name: str, tag: str) -> DType:
    return DType(name, np.dtype(np_name).newbyteorder("<"), tag)


DTYPES: dict[str, DType] = {d.name: d for d in (
    _d("float32", "f4", "F32"),
    _d("float16", "f2", "F16"),
    _d("float64", "f8", "F64"),
    _d("bfloat16", "u2", "BF16"),
    _d("int64", "i8", "I64"),
    _d("int32", "i4", "I32"),
    _d("int16", "i2", "I16"),
    _d("int8", "i1", "I8"),
    _d("uint8", "u1", "U8"),
    _d("bool", "?", "BOOL"),
)}

# torch.<X>Storage class name -> dtype name (the legacy typed storages pickled by torch.save).
STORAGE_TYPES: dict[str, str] = {
    "FloatStorage": "float32",
    "HalfStorage": "float16",
    "DoubleStorage": "float64",
    "BFloat16Storage": "bfloat16",
    "LongStorage": "int64",
    "IntStorage": "int32",
    "ShortStorage": "int16",
    "CharStorage": "int8",
    "ByteStorage": "uint8",
    "BoolStorage": "bool",
    "UntypedStorage": "uint8",
}

# Storage types torch can write that we recognise but do not convert (clear error, not "unsafe").
UNSUPPORTED_STORAGE_TYPES: dict[str, str] = {
    "ComplexFloatStorage": "complex64",
    "ComplexDoubleStorage": "complex128",
    "QInt8Storage": "qint8",
    "QUInt8Storage": "quint8",
    "QInt32Storage": "qint32",
    "QUInt4x2Storage": "quint4x2",
    "QUInt2x4Storage": "quint2x4",
}

# torch.<dtype> objects (arguments of _rebuild_tensor_v3) -> dtype name.
TORCH_DTYPE_NAMES: dict[str, str] = {
    "float32": "float32", "float": "float32",
    "float16": "float16", "half": "float16",
    "float64": "float64", "double": "float64",
    "bfloat16": "bfloat16",
    "int64": "int64", "long": "int64",
    "int32": "int32", "int": "int32",
    "int16": "int16", "short": "int16",
    "int8": "int8",
    "uint8": "uint8",
    "bool": "bool",
}

UNSUPPORTED_TORCH_DTYPES = (
    "complex32", "complex64", "complex128", "cfloat", "cdouble", "chalf",
    "float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz", "float8_e8m0fnu",
    "uint16", "uint32", "uint64", "qint8", "quint8", "qint32", "quint4x2", "quint2x4",
)

SUPPORTED_NAMES = ", ".join(DTYPES)


def bfloat16_to_float32(bits: np.ndarray) -> np.ndarray:
    """Widen bfloat16 bit patterns (uint16) to float32: the top half of a float32 (exact)."""
    return (bits.astype("<u4") << 16).view("<f4")
