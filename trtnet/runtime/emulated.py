"""The :class:`~trtnet.runtime.Engine` interface over trtnet's NumPy emulator.

One runtime over two executors (DESIGN.md): :class:`EmulatedEngine` takes named inputs
and returns named outputs with the shapes and dtypes a TensorRT engine built from the same
network has, so :class:`~trtnet.runtime.Segmenter`, :class:`~trtnet.runtime.VideoSegmenter`,
``python -m trtnet.infer`` and anything built on them run unchanged on a CPU. Neither
TensorRT nor CuPy is needed. The interface both executors offer (engine.EngineInterface):

* ``inputs`` / ``outputs``: tensor name -> NumPy dtype, in the network's order;
* ``run({name: array}, synchronize=True)`` -> ``{output name: array}`` and
  ``engine(frame, **state)`` for one uint8 BGR frame (HxWx3 or 1xHxWx3);
* ``stream``: where the work is queued (a :class:`HostStream` here: done when ``run``
  returns), shared by engines that feed each other; ``source``: what to name in messages.

Outputs are fresh NumPy arrays on every call (a TensorRT engine reuses its buffers, so
callers must not rely on either).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from .engine import EngineError, EngineInterface, check_input_names, is_device_array


class HostStream:
    """The stream of a host executor: work is complete when the call returns."""

    ptr = 0

    def synchronize(self) -> None:
        """Nothing is ever pending."""

    def __enter__(self) -> "HostStream":
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class EmulatedEngine(EngineInterface):
    """A trtnet network on the emulator, behind the Engine interface.

    ``EmulatedEngine(weights, config)`` is the keyframe network (exporting the keyframe
    state for video configs, as trtnet.build does); ``nonkeyframe=True`` the video network.
    ``plan``: a precision plan (fp16/int8 are emulated: exact casts and Q/DQ). ``fetch``:
    names of intermediate tensors returned next to the outputs (debugging; not part of
    the Engine interface).
    """

    def __init__(self, weights: Any, config: Any, *, nonkeyframe: bool = False, plan: Any = None,
                 stream: Any = None, fetch: Sequence[str] = ()) -> None:
        from trtnet import emulator
        from trtnet.config import get_config
        from trtnet.network.yolact_edge import build_keyframe, build_nonkeyframe

        self._emulator = emulator
        config = get_config(config) if isinstance(config, str) else config
        kind = "non-keyframe" if nonkeyframe else "keyframe"
        self.source = f"the emulated {config.name} {kind} network"
        self.config = config
        self.network = emulator.Network()
        build = build_nonkeyframe if nonkeyframe else build_keyframe
        self._tensors = build(self.network, emulator.trt, weights, config, plan=plan)  # keeps the weights alive
        net = self.network
        self.inputs: dict[str, np.dtype] = {}
        self.outputs: dict[str, np.dtype] = {}
        self._declared: dict[str, tuple[int, ...]] = {}
        for tensor in [net.get_input(i) for i in range(net.num_inputs)]:
            self.inputs[tensor.name] = np.dtype(emulator.trt.nptype(tensor.dtype))
            self._declared[tensor.name] = tuple(int(d) for d in tensor.shape)
        for tensor in [net.get_output(i) for i in range(net.num_outputs)]:
            self.outputs[tensor.name] = np.dtype(emulator.trt.nptype(tensor.dtype))
        self.tensor_names = frozenset(self._tensors)
        self.fetch = fetch
        self.stream = stream if stream is not None else HostStream()

    @property
    def fetch(self) -> list[str]:
        """Intermediate tensors returned next to the outputs (any of ``tensor_names``)."""
        return self._fetch

    @fetch.setter
    def fetch(self, wanted: Sequence[str]) -> None:
        unknown = sorted(set(wanted) - self.tensor_names)
        if unknown:
            raise EngineError(f"{self.source} has no tensor(s) {unknown} to fetch")
        self._fetch = list(wanted)

    def run(self, inputs: Mapping[str, Any], *, synchronize: bool = True) -> dict[str, Any]:
        """Check every input by name, shape rank and dtype, run the network, outputs by name."""
        check_input_names(self.source, self.inputs, inputs)
        host = {}
        for name, want in self.inputs.items():
            array = inputs[name]
            array = array.get() if is_device_array(array) and hasattr(array, "get") else np.asarray(array)
            if array.dtype != want:
                raise EngineError(f"input {name!r}: dtype {array.dtype}, {self.source} needs {want}")
            declared = self._declared[name]
            if len(array.shape) != len(declared) or any(d not in (-1, s) for d, s in zip(declared, array.shape)):
                raise EngineError(f"input {name!r}: shape {tuple(array.shape)}, {self.source} needs {declared} "
                                  "(-1: any size)")
            host[name] = np.ascontiguousarray(array)
        try:
            out = self._emulator.run(self.network, host, fetch=self.fetch or None)
        except (ValueError, TypeError, RuntimeError) as exc:  # e.g. a frame too small for the network
            raise EngineError(f"{self.source} failed: {exc}") from exc
        return {name: out[name] for name in (*self.outputs, *self.fetch)}

