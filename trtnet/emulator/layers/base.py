"""What every emulated layer shares: ``ILayer``, attribute descriptors and type/shape helpers."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .. import trt_types as trt  # the types; ..trt (the recording module) re-exports them
from ..tensor import ITensor, Named

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
