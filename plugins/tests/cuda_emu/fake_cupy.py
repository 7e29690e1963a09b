"""Just enough of CuPy's API, on NumPy host memory, to drive trtnet.plugins.extension's CuPy wrappers
against a trtnet._C whose "device" launchers run the emulated kernels (cuda_runtime.h):
``.data.ptr`` is the host address, streams are 0. Test-only."""

from __future__ import annotations

import sys
import types

import numpy as np

int32 = np.int32
uint8 = np.uint8
float16 = np.float16
float32 = np.float32
bool_ = np.bool_
dtype = np.dtype


class _Memory:
    def __init__(self, ptr: int) -> None:
        self.ptr = ptr


class ndarray(np.ndarray):
    @property
    def data(self):  # CuPy: a MemoryPointer with .ptr
        return _Memory(self.__array_interface__["data"][0])


def _wrap(a: np.ndarray) -> ndarray:
    return np.ascontiguousarray(a).view(ndarray)


def asarray(a, dtype=None) -> ndarray:
    return _wrap(np.asarray(a, dtype=dtype))


def ascontiguousarray(a) -> ndarray:
    return _wrap(np.ascontiguousarray(np.asarray(a)))


def empty(shape, dtype=np.float32) -> ndarray:
    return _wrap(np.empty(shape, dtype))


def empty_like(a) -> ndarray:
    return _wrap(np.empty_like(np.asarray(a)))


def zeros(shape, dtype=np.float32) -> ndarray:
    return _wrap(np.zeros(shape, dtype))


def get_array_module(*arrays):
    return sys.modules[__name__] if any(isinstance(a, ndarray) for a in arrays) else np


def asnumpy(a) -> np.ndarray:
    return np.asarray(a).view(np.ndarray).copy()


class _Stream:
    ptr = 0


cuda = types.SimpleNamespace(get_current_stream=lambda: _Stream(),
                             runtime=types.SimpleNamespace(getDeviceCount=lambda: 1))
