"""Emulated ``ITensor``: name, shape (``-1`` = dynamic), dtype; recorded accesses."""

from __future__ import annotations

from . import trt_types as trt  # the types; .trt (the recording module) re-exports them


def _settable(cls: type, name: str) -> bool:
    """True when ``name`` is a data descriptor with a setter on ``cls`` (a property or _Attr)."""
    for klass in cls.__mro__:
        if name in vars(klass):
            attr = vars(klass)[name]
            if isinstance(attr, property):
                return attr.fset is not None
            return hasattr(type(attr), "__set__")
    return False


class NoNewAttributes:
    """Writes only to the attributes the real class has.

    The real bindings' classes have no ``__dict__`` (``tp_dictoffset`` 0, checked for every
    emulated class by tests/test_trt_conformance.py), so ``layer.align_corners = False``
    raises ``AttributeError`` in TensorRT; without this the emulator would store it and the
    typo would go unnoticed. Names starting with ``_`` are the emulator's own state.
    """

    __slots__ = ()

    def __setattr__(self, name: str, value) -> None:
        if not name.startswith("_") and not _settable(type(self), name):
            kind = "read-only" if any(name in vars(k) for k in type(self).__mro__) else "unknown"
            raise AttributeError(
                f"{type(self).__name__}.{name} is {kind}: TensorRT's {type(self).__name__} has no settable "
                f"attribute {name!r} (its classes have no __dict__, so the assignment would raise there too)")
        object.__setattr__(self, name, value)


class Named(NoNewAttributes):
    """The recorded ``name`` attribute shared by layers and tensors.

    Every access is recorded under the emulated class's name (``ITensor``,
    ``IConvolutionLayer``...) for the conformance tests against the real bindings.
    """

    _what = "tensor"  # for error messages

    def _record(self, name: str, access: str, value=None) -> None:
        self._network.usage.attribute(type(self).__name__, name, access, value)

    @property
    def name(self) -> str:
        self._record("name", "get")
        return self._name

    @name.setter
    def name(self, value: str) -> None:
        self._record("name", "set")
        if not isinstance(value, str) or not value:
            raise TypeError(f"{self._what} name must be a non-empty str, got {value!r}")
        self._name = value


class ITensor(Named):
    """A tensor of the network: name, shape (``-1`` = dynamic), dtype."""

    def __init__(self, network, producer, index: int, name: str):
        self._network = network
        self._producer = producer
        self._index = index
        self._name = name
        self._input_dtype: trt.DataType | None = None
        self._input_shape: trt.Dims | None = None

    @property
    def shape(self) -> trt.Dims:
        self._record("shape", "get")
        return self._shape()

    @property
    def dtype(self) -> trt.DataType:
        self._record("dtype", "get")
        return self._dtype()

    @property
    def is_network_input(self) -> bool:
        self._record("is_network_input", "get")
        return self._producer is None

    @property
    def is_network_output(self) -> bool:
        self._record("is_network_output", "get")
        return any(t is self for t in self._network._outputs)

    # Internal, unrecorded accessors.
    def _shape(self) -> trt.Dims:
        if self._producer is None:
            return self._input_shape
        return self._cached("shapes", self._producer._output_shapes)[self._index]

    def _dtype(self) -> trt.DataType:
        if self._producer is None:
            return self._input_dtype
        return self._cached("dtypes", self._producer._output_dtypes)[self._index]

    def _cached(self, key: str, infer):
        """Producer's inferred outputs, memoised until any attribute of the network changes
        (without this, shape queries on residual graphs would take exponential time)."""
        p, version = self._producer, self._network._version
        if getattr(p, "_cache_version", None) != version:
            p._cache, p._cache_version = {}, version
        if key not in p._cache:
            p._cache[key] = infer()
        return p._cache[key]

    def __repr__(self) -> str:
        return f"ITensor(name={self._name!r}, shape={tuple(self._shape())}, dtype={self._dtype()})"
