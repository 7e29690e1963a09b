"""A stand-in for Triton's ``triton_python_backend_utils`` (pb_utils): runs the orchestrator
in this process, for its unit tests (eviction timing, model errors: what a CPU server cannot
show on demand) and to measure its own overhead (``python -m trtnet.bench triton``).

Only what trtnet.triton uses, with the real module's names and call shapes (python_backend's
triton_python_backend_utils.py, pb_tensor, pb_response). BLS requests go to in-process
models registered in :data:`MODELS`. Install it with :func:`install` (sys.modules).
"""

from __future__ import annotations

import types
from typing import Callable, Mapping, Optional

import numpy as np

MODELS: dict[str, Callable[[dict], dict]] = {}   # model name -> fn(inputs by name) -> outputs by name
CALLS: list[tuple[str, dict]] = []               # (model, inputs) of every BLS request, in order


class TritonModelException(Exception):
    pass


class TritonError:
    def __init__(self, msg: str) -> None:
        self._msg = msg

    def message(self) -> str:
        return self._msg


class Tensor:
    def __init__(self, name: str, array: np.ndarray) -> None:
        if not isinstance(array, np.ndarray):
            raise TypeError("pb_utils.Tensor takes a NumPy array (use from_dlpack for device arrays)")
        self._name, self._array = name, array

    def name(self) -> str:
        return self._name

    def as_numpy(self) -> np.ndarray:
        return self._array

    def shape(self) -> list[int]:
        return list(self._array.shape)

    def is_cpu(self) -> bool:
        return True

    @classmethod
    def from_dlpack(cls, name: str, capsule) -> "Tensor":
        return cls(name, np.from_dlpack(capsule))

    def to_dlpack(self):
        return self._array


class InferenceResponse:
    def __init__(self, output_tensors: Optional[list] = None, error: Optional[TritonError] = None) -> None:
        self._outputs, self._error = list(output_tensors or []), error

    def output_tensors(self) -> list:
        return self._outputs

    def has_error(self) -> bool:
        return self._error is not None

    def error(self) -> Optional[TritonError]:
        return self._error


class InferenceRequest:
    def __init__(self, model_name: str, inputs: list, requested_output_names: list, **kwargs) -> None:
        self.model_name, self.inputs, self.requested = model_name, inputs, list(requested_output_names)
        self._control: Mapping[str, int] = kwargs.get("control", {})

    def requested_output_names(self) -> list:
        return self.requested

    def _run(self) -> InferenceResponse:
        inputs = {t.name(): t.as_numpy() for t in self.inputs}
        CALLS.append((self.model_name, inputs))
        try:
            outputs = MODELS[self.model_name](inputs)
        except Exception as exc:  # noqa: BLE001 - becomes the response's error like in Triton
            return InferenceResponse(error=TritonError(str(exc)))
        missing = [n for n in self.requested if n not in outputs]
        if missing:
            return InferenceResponse(error=TritonError(f"unknown outputs {missing}"))
        return InferenceResponse([Tensor(n, np.asarray(outputs[n])) for n in self.requested])

    async def async_exec(self) -> InferenceResponse:
        return self._run()

    def exec(self) -> InferenceResponse:
        return self._run()


def get_input_tensor_by_name(request, name: str) -> Optional[Tensor]:
    return next((t for t in request.inputs if t.name() == name), None)


def get_output_tensor_by_name(response, name: str) -> Optional[Tensor]:
    return next((t for t in response.output_tensors() if t.name() == name), None)


def client_request(frame: np.ndarray, corrid: int, *, start: bool = False, end: bool = False) -> InferenceRequest:
    """A request as the sequence batcher hands it to the orchestrator (controls filled in)."""
    from trtnet import names

    tensors = [Tensor(names.INPUT, frame[None]), Tensor("START", np.array([[int(start)]], np.int32)),
               Tensor("END", np.array([[int(end)]], np.int32)), Tensor("READY", np.array([[1]], np.int32)),
               Tensor("CORRID", np.array([[corrid]], np.uint64))]
    return InferenceRequest("orchestrator", tensors, [])


def module() -> types.ModuleType:
    """This module, to be installed as ``triton_python_backend_utils``."""
    import sys

    return sys.modules[__name__]
