"""The types and enums of the ``tensorrt`` module, as the emulator models them.

The bottom layer of the emulator: :mod:`trtnet.emulator.trt` re-exports every public name here
and adds what needs the rest of the emulator (the plugin registry, the builder config); modules
that ``trt`` itself imports (plugins, builder) import this module instead, so imports flow one way.
"""

from __future__ import annotations

import enum
import weakref

import numpy as np

class _TrtEnum(enum.Enum):
    """Base of the emulated enums: ``trt.DataType.FLOAT`` prints like the real one."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__}.{self.name}: {self.value}>"

    def __str__(self) -> str:
        return f"{type(self).__name__}.{self.name}"

    def __int__(self) -> int:
        return int(self.value)


class DataType(_TrtEnum):
    FLOAT = 0
    HALF = 1
    INT8 = 2
    INT32 = 3
    BOOL = 4
    UINT8 = 5
    INT64 = 8

    @property
    def itemsize(self) -> int:
        return np.dtype(nptype(self)).itemsize


# Module-level aliases, as in ``tensorrt`` (trt.float32 is trt.DataType.FLOAT).
float32 = DataType.FLOAT
float16 = DataType.HALF
int8 = DataType.INT8
int32 = DataType.INT32
int64 = DataType.INT64
uint8 = DataType.UINT8
bool = DataType.BOOL  # noqa: A001  (the real module shadows the builtin too)

_NP_OF = {
    DataType.FLOAT: np.float32,
    DataType.HALF: np.float16,
    DataType.INT8: np.int8,
    DataType.INT32: np.int32,
    DataType.INT64: np.int64,
    DataType.UINT8: np.uint8,
    DataType.BOOL: np.bool_,
}
_TRT_OF = {np.dtype(v): k for k, v in _NP_OF.items()}


def nptype(trt_type: DataType) -> type:
    """NumPy scalar type of a DataType, like ``tensorrt.nptype``."""
    try:
        return _NP_OF[trt_type]
    except KeyError:
        raise TypeError(f"no NumPy type for {trt_type!r}") from None


def _datatype_of(dtype: np.dtype) -> DataType:
    try:
        return _TRT_OF[np.dtype(dtype)]
    except KeyError:
        raise TypeError(
            f"NumPy dtype {np.dtype(dtype)} has no TensorRT DataType "
            f"(supported: {sorted(str(np.dtype(k)) for k in _TRT_OF)})"
        ) from None


class ActivationType(_TrtEnum):
    RELU = 0
    SIGMOID = 1
    TANH = 2
    LEAKY_RELU = 3
    CLIP = 8


class ElementWiseOperation(_TrtEnum):
    SUM = 0
    PROD = 1
    MAX = 2
    MIN = 3
    SUB = 4
    DIV = 5
    POW = 6
    FLOOR_DIV = 7
    AND = 8
    OR = 9
    XOR = 10
    EQUAL = 11
    GREATER = 12
    LESS = 13


class UnaryOperation(_TrtEnum):
    EXP = 0
    LOG = 1
    SQRT = 2
    RECIP = 3
    ABS = 4
    NEG = 5
    CEIL = 17
    FLOOR = 18
    NOT = 20
    ROUND = 22


class ReduceOperation(_TrtEnum):
    SUM = 0
    PROD = 1
    MAX = 2
    MIN = 3
    AVG = 4


class PoolingType(_TrtEnum):
    MAX = 0
    AVERAGE = 1


class MatrixOperation(_TrtEnum):
    NONE = 0
    TRANSPOSE = 1
    VECTOR = 2


class InterpolationMode(_TrtEnum):
    NEAREST = 0
    LINEAR = 1
    CUBIC = 2


class ResizeCoordinateTransformation(_TrtEnum):
    ALIGN_CORNERS = 0
    ASYMMETRIC = 1
    HALF_PIXEL = 2


class ResizeSelector(_TrtEnum):
    FORMULA = 0
    UPPER = 1


class ResizeRoundMode(_TrtEnum):
    HALF_UP = 0
    HALF_DOWN = 1
    FLOOR = 2
    CEIL = 3


class GatherMode(_TrtEnum):
    DEFAULT = 0
    ELEMENT = 1
    ND = 2


class PluginFieldType(_TrtEnum):
    FLOAT16 = 0
    FLOAT32 = 1
    FLOAT64 = 2
    INT8 = 3
    INT16 = 4
    INT32 = 5
    CHAR = 6
    DIMS = 7
    UNKNOWN = 8
    INT64 = 10


class TensorRTPhase(_TrtEnum):
    BUILD = 0
    RUNTIME = 1


class LayerType(_TrtEnum):
    CONVOLUTION = 0
    CAST = 1
    ACTIVATION = 2
    POOLING = 3
    SOFTMAX = 6
    CONCATENATION = 8
    ELEMENTWISE = 9
    UNARY = 11
    SHUFFLE = 13
    REDUCE = 14
    GATHER = 16
    MATRIX_MULTIPLY = 17
    CONSTANT = 19
    IDENTITY = 20
    PLUGIN_V2 = 21
    SLICE = 22
    SHAPE = 23
    RESIZE = 25
    QUANTIZE = 32
    DEQUANTIZE = 33
    PLUGIN_V3 = 46


class BuilderFlag(_TrtEnum):
    """The flags with the same name and value in TensorRT 10.3 and 11.4 (see emulator.builder)."""

    DEBUG = 2
    GPU_FALLBACK = 3
    REFIT = 4
    DISABLE_TIMING_CACHE = 5
    TF32 = 6


class Dims(tuple):
    """Tensor dimensions; a tuple (the real ``trt.Dims`` converts from tuples too)."""

    def __new__(cls, shape=()):
        return super().__new__(cls, (int(d) for d in shape))

    def __repr__(self) -> str:
        return f"({', '.join(str(d) for d in self)})"


class Permutation(tuple):
    """Axis permutation for IShuffleLayer (a tuple; real trt.Permutation converts from tuples)."""

    def __new__(cls, order=()):
        return super().__new__(cls, (int(d) for d in order))


class Weights:
    """Host weights, ``trt.Weights(np_array)`` or ``trt.Weights(trt.float32)`` (empty).

    No attributes beyond these (``__slots__``): the real class has no ``__dict__`` either."""

    __slots__ = ("_array",)

    def __init__(self, a=None):
        if a is None or isinstance(a, DataType):
            self._array = np.zeros((0,), dtype=nptype(a or DataType.FLOAT))
        else:
            arr = np.ascontiguousarray(a)
            _datatype_of(arr.dtype)
            self._array = arr

    @property
    def dtype(self) -> DataType:
        return _datatype_of(self._array.dtype)

    @property
    def size(self) -> int:
        return int(self._array.size)

    @property
    def nbytes(self) -> int:
        return int(self._array.nbytes)

    def numpy(self) -> np.ndarray:
        return self._array.reshape(-1)

    def __len__(self) -> int:
        return self.size

    def __repr__(self) -> str:
        return f"Weights(dtype={self.dtype}, size={self.size})"


class PluginField:
    """One named plugin parameter: ``trt.PluginField(name, np_array, trt.PluginFieldType.X)``.

    Ownership as in the real bindings: the Python ``PluginField`` keeps its array alive
    (pyPlugin.cpp: ``py::init(plugin_field_constructor, ..., py::keep_alive<1, 3>{})``), but the
    C++ struct only holds a raw pointer, and ``PluginFieldCollection`` is a bound
    ``std::vector<PluginField>`` that copies the structs and keeps nothing alive
    (ForwardDeclarations.h: PluginField "does not own any of it's members"). A field read
    through a collection after its array was freed reads freed memory in TensorRT; here it is
    an error.
    """

    __slots__ = ("name", "type", "size", "_owner", "_view")

    def __init__(self, name: str = "", data=None, type: PluginFieldType = PluginFieldType.UNKNOWN):  # noqa: A002
        self.name = name
        self.type = type
        self._owner = None
        self._view = None  # weakref to the array the pointer points into
        self.size = 0
        if data is not None:
            self.data = data

    @property
    def data(self) -> np.ndarray:
        """A copy of what the field points at (as the real getter builds a new array)."""
        if self._view is None:
            return np.zeros((0,), np.uint8)
        array = self._view()
        if array is None:
            raise RuntimeError(
                f"PluginField {self.name!r}: its data was freed. TensorRT's PluginFieldCollection copies "
                "raw pointers and keeps no array alive: keep the arrays (or the PluginField objects) "
                "alive until create_plugin returns")
        return np.array(array).reshape(-1)

    @data.setter
    def data(self, data) -> None:
        if not isinstance(data, np.ndarray):  # the binding takes a py::buffer; NumPy arrays are what we track
            raise TypeError(f"PluginField {self.name!r}: data must be a NumPy array, got {type(data).__name__}")
        self._owner = data  # keep_alive<1, 3>: the Python object owns the reference
        self._view = weakref.ref(data)
        self.size = int(data.size)

    def _struct_copy(self) -> "PluginField":
        """What ``std::vector<PluginField>`` stores: the same pointer, no ownership."""
        copy = PluginField(self.name, None, self.type)
        copy._view, copy.size = self._view, self.size
        return copy


class PluginFieldCollection(list):
    """A bound ``std::vector<PluginField>``: holds struct copies that do not own their data."""

    def __init__(self, fields=()):
        super().__init__(_field_struct(f) for f in fields)

    def append(self, field) -> None:
        super().append(_field_struct(field))

    def extend(self, fields) -> None:
        super().extend(_field_struct(f) for f in fields)

    def insert(self, index, field) -> None:
        super().insert(index, _field_struct(field))

    def __setitem__(self, index, field) -> None:
        if isinstance(index, slice):
            raise TypeError("PluginFieldCollection: slice assignment is not supported")
        super().__setitem__(index, _field_struct(field))


def _field_struct(field) -> PluginField:
    if not isinstance(field, PluginField):
        raise TypeError(f"PluginFieldCollection holds trt.PluginField, got {type(field).__name__}")
    return field._struct_copy()
