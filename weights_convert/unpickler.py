"""A restricted unpickler for torch checkpoints: only what a tensor state dict needs.

``pickle`` runs whatever callable a file names, so a checkpoint is a program. This
unpickler resolves every global through an allowlist of *stand-ins* defined here (nothing
from torch or any other module is imported); any other global raises
:class:`UnsafeCheckpointError` naming it, at the moment the pickle looks it up, i.e. before
it could be called. Tensors come out as :class:`TensorRef` records (storage key, offset,
shape, strides): no tensor data is read while unpickling.
"""

from __future__ import annotations

import collections
import io
import reprlib
import struct
from dataclasses import dataclass
from typing import Any, Callable, Optional

from .dtypes import (DTYPES, STORAGE_TYPES, TORCH_DTYPE_NAMES, UNSUPPORTED_STORAGE_TYPES,
                     UNSUPPORTED_TORCH_DTYPES, SUPPORTED_NAMES, DType)
from .errors import CheckpointError, ConverterError, UnsafeCheckpointError, UnsupportedDtypeError
from .pickle_machine import Machine, PickleFormatError


class _NoBuild:
    """Refuses pickle's BUILD opcode: the records below are validated when made and must
    not be rewritten afterwards (e.g. negative strides set after the checks)."""

    __slots__ = ()

    def __setstate__(self, state: Any) -> None:
        raise CheckpointError(f"malformed pickle: it tries to modify a {type(self).__name__}")


@dataclass(frozen=True)
class StorageType(_NoBuild):
    """Stand-in for a ``torch.<X>Storage`` class: only carries the element dtype."""

    torch_name: str
    dtype: DType


@dataclass(frozen=True)
class TorchDType(_NoBuild):
    """Stand-in for a ``torch.<dtype>`` object (argument of ``_rebuild_tensor_v3``)."""

    dtype: DType


@dataclass
class StorageRef(_NoBuild):
    """One storage record: where its bytes live (``key``) and how many elements it holds.

    ``byte_offset`` / ``nbytes`` select a view of the root storage (legacy format views).
    """

    key: str
    dtype: DType
    numel: int
    byte_offset: int = 0
    nbytes: Optional[int] = None

    @property
    def view_nbytes(self) -> int:
        return self.numel * self.dtype.itemsize if self.nbytes is None else self.nbytes


@dataclass
class TensorRef(_NoBuild):
    """A tensor as the checkpoint describes it, without its data."""

    storage: StorageRef
    dtype: DType
    offset: int                 # in elements of ``dtype`` from the storage (view) start
    shape: tuple[int, ...]
    strides: tuple[int, ...]    # in elements

    @property
    def numel(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n

    @property
    def nbytes(self) -> int:
        return self.numel * self.dtype.itemsize

    def byte_span(self) -> tuple[int, int]:
        """[start, end) bytes of the storage view this tensor touches (empty if numel 0)."""
        start = self.offset * self.dtype.itemsize
        if self.numel == 0:
            return start, start
        last = self.offset + sum((n - 1) * s for n, s in zip(self.shape, self.strides))
        return start, (last + 1) * self.dtype.itemsize

    def is_contiguous(self) -> bool:
        expected = 1
        for n, s in zip(reversed(self.shape), reversed(self.strides)):
            if n != 1 and s != expected:
                return False
            expected *= n
        return True


class _Marker(_NoBuild):
    """Stand-in for a torch class that is only ever compared against (torch.Tensor...)."""

    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return self.name


TENSOR_CLASS = _Marker("torch.Tensor")
PARAMETER_CLASS = _Marker("torch.nn.parameter.Parameter")


# dimensions of a tensor record: far above TensorRT's Dims::MAX_DIMS of 8
# (NvInferRuntimeBase.h:205); a longer size is corruption, and refusing it keeps the check
# O(1) however often a pickle reuses one huge tuple
MAX_NDIM = 64


def _ints(value: Any, what: str) -> tuple[int, ...]:
    if not isinstance(value, (tuple, list)) or len(value) > MAX_NDIM or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value):
        raise CheckpointError(f"malformed tensor record: {what} is {describe(value)}")
    return tuple(value)


def _tensor(storage: Any, offset: Any, size: Any, stride: Any, dtype: Optional[DType] = None
            ) -> TensorRef:
    if not isinstance(storage, StorageRef):
        raise CheckpointError(f"malformed tensor record: storage is {type(storage).__name__}")
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise CheckpointError(f"malformed tensor record: storage offset is {describe(offset)}")
    shape, strides = _ints(size, "size"), _ints(stride, "stride")
    if len(shape) != len(strides):
        raise CheckpointError(f"malformed tensor record: size {shape} vs stride {strides}")
    return TensorRef(storage, dtype or storage.dtype, offset, shape, strides)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    return _tensor(storage, storage_offset, size, stride)


def _rebuild_tensor(storage, storage_offset, size, stride):
    return _tensor(storage, storage_offset, size, stride)


def _rebuild_tensor_v3(storage, storage_offset, size, stride, requires_grad, backward_hooks,
                       dtype, metadata=None):
    if not isinstance(dtype, TorchDType):
        raise CheckpointError(f"malformed tensor record: dtype is {describe(dtype)}")
    return _tensor(storage, storage_offset, size, stride, dtype.dtype)


def _rebuild_parameter(data, requires_grad, backward_hooks):
    return data


def _rebuild_parameter_with_state(data, requires_grad, backward_hooks, state):
    return data


class _StandIn(_NoBuild):
    """A callable the pickle may look up and call, immune to BUILD (unlike a function,
    whose ``__defaults__`` a pickle could otherwise rewrite)."""

    __slots__ = ("_fn", "name")

    def __init__(self, fn: Callable[..., Any], name: str):
        self._fn, self.name = fn, name

    def __call__(self, *args: Any) -> Any:
        return self._fn(*args)

    def __repr__(self) -> str:
        return self.name


def _rebuild_from_type_v2(func, new_type, args, state):
    if func not in _REBUILD_FUNCTIONS or new_type not in (TENSOR_CLASS, PARAMETER_CLASS):
        raise CheckpointError(f"unsupported tensor subclass record: {describe(new_type)}")
    return func(*args)


def _stand_in(module: str, fn: Callable[..., Any]) -> _StandIn:
    return _StandIn(fn, f"{module}.{fn.__name__}")


_REBUILD_FUNCTIONS = (
    _stand_in("torch._utils", _rebuild_tensor_v2),
    _stand_in("torch._utils", _rebuild_tensor),
    _stand_in("torch._utils", _rebuild_tensor_v3),
)

ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    **{tuple(f.name.rsplit(".", 1)): f for f in _REBUILD_FUNCTIONS},
    ("torch._utils", "_rebuild_parameter"): _stand_in("torch._utils", _rebuild_parameter),
    ("torch._utils", "_rebuild_parameter_with_state"):
        _stand_in("torch._utils", _rebuild_parameter_with_state),
    ("torch._tensor", "_rebuild_from_type_v2"): _stand_in("torch._tensor", _rebuild_from_type_v2),
    ("torch", "Tensor"): TENSOR_CLASS,
    ("torch.nn.parameter", "Parameter"): PARAMETER_CLASS,
    ("torch", "Size"): tuple,
}


# torch's own rebuild functions for tensor kinds a yolact_edge state dict never holds: a
# clear "unsupported" error instead of "unsafe" (they are refused all the same, never run)
UNSUPPORTED_TENSOR_KINDS = {
    "_rebuild_qtensor": "quantized",
    "_rebuild_sparse_tensor": "sparse",
    "_rebuild_sparse_csr_tensor": "sparse CSR",
    "_rebuild_nested_tensor": "nested",
    "_rebuild_meta_tensor_no_storage": "meta (data-less)",
    "_rebuild_wrapper_subclass": "tensor-subclass",
    "_rebuild_device_tensor_from_numpy": "device (numpy-backed)",
    "_rebuild_xla_tensor": "XLA",
    "_rebuild_mlc_tensor": "MLC",
}

# torch.FloatTensor & co: the tensor-type field of the legacy tar format's tensor records
LEGACY_TENSOR_TYPES = frozenset(
    n.replace("Storage", "Tensor") for n in STORAGE_TYPES if n != "UntypedStorage")


def resolve_global(module: str, name: str) -> Any:
    """The stand-in for ``module.name``; raises for anything outside the allowlist."""
    found = ALLOWED_GLOBALS.get((module, name))
    if found is not None:
        return found
    if module == "torch":
        if name in STORAGE_TYPES:
            return StorageType(f"torch.{name}", DTYPES[STORAGE_TYPES[name]])
        if name in LEGACY_TENSOR_TYPES:
            return _Marker(f"torch.{name}")
        if name in TORCH_DTYPE_NAMES:
            return TorchDType(DTYPES[TORCH_DTYPE_NAMES[name]])
        if name in UNSUPPORTED_STORAGE_TYPES or name in UNSUPPORTED_TORCH_DTYPES:
            dtype = UNSUPPORTED_STORAGE_TYPES.get(name, name)
            raise UnsupportedDtypeError(
                f"the checkpoint holds {dtype} tensors (torch.{name}), which the converter does "
                f"not support (supported: {SUPPORTED_NAMES})")
    if module == "torch._utils" and name in UNSUPPORTED_TENSOR_KINDS:
        raise UnsupportedDtypeError(
            f"the checkpoint holds {UNSUPPORTED_TENSOR_KINDS[name]} tensors ({module}.{name}), "
            "which the converter does not support (dense tensors only)")
    raise UnsafeCheckpointError(f"{module}.{name}")


# Errors a stand-in may raise on arguments of the wrong kind (the machine's own checks
# raise PickleFormatError); a corrupted stream is reported as such, never as a traceback.
_CORRUPT = (PickleFormatError, ValueError, TypeError, KeyError, IndexError, AttributeError,
            struct.error, OverflowError, UnicodeDecodeError)

# Memory one load may allocate: a small multiple of the file, or this floor for small files
MEMORY_PER_FILE_BYTE = 4
MEMORY_FLOOR = 1 << 26

def _is_allowed_callable(func: Any) -> bool:
    """REDUCE may call only what :func:`resolve_global` handed out."""
    return isinstance(func, _StandIn) or func is collections.OrderedDict or func is tuple


def describe(value: Any) -> str:
    """A short repr of a value from the pickle, bounded in depth and length (a corrupted
    record may be deeply nested or huge; its full repr could exhaust memory)."""
    return _SHORT.repr(value)


_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxstring, _SHORT.maxother, _SHORT.maxlong = 3, 60, 60, 40


def memory_budget(file_size: int) -> int:
    return max(MEMORY_PER_FILE_BYTE * file_size, MEMORY_FLOOR)


def load_restricted(source: "bytes | io.BufferedIOBase", persistent_load: Callable[[Any], Any],
                    where: str, max_memory: int = MEMORY_FLOOR) -> Any:
    """Unpickle ``source`` (bytes, or a file positioned at a pickle: left right after it)
    with the global allowlist, the opcode allowlist of :mod:`.pickle_machine`, and at most
    ``max_memory`` bytes allocated (see :func:`memory_budget`).

    ``where`` names the file (and part) in error messages.
    """
    machine = Machine(source, resolve_global, persistent_load, _is_allowed_callable,
                      max_memory)
    try:
        return machine.load()
    except UnsafeCheckpointError as exc:
        raise UnsafeCheckpointError(exc.global_name, where) from None
    except ConverterError as exc:
        raise type(exc)(f"{where}: {exc}") from None
    except _CORRUPT as exc:
        detail = str(exc) if isinstance(exc, PickleFormatError) else \
            f"{type(exc).__name__}: {exc}"
        raise CheckpointError(f"{where}: corrupted or truncated pickle ({detail[:300]})"
                              ) from None
