"""Device memory a profile asks for, read off the emulator's graph (``trtnet.build --dry-run``).

A TensorRT execution context allocates its activation memory for the profile's *maximum*
shapes (NvInfer.h ``ICudaEngine::getDeviceMemorySizeForProfile``: "the amount of device memory
required by an execution context [for] the profile"), so a generous ``--max-frame`` or
``--max-batch`` costs memory on every machine the engine runs on, whatever frames it gets.

The estimate here is the layer-by-layer graph's: the layers run in the network's order (a
topological order: a layer's inputs exist when it is added); a tensor is live from the layer
that produces it to the last layer that reads it; the activation figure is the largest sum of
the sizes of simultaneously live tensors. Not counted as activations: the I/O tensors (the
runtime allocates them, :mod:`trtnet.runtime.engine`; reported apart), and layers fed only by
constants (the builder folds them into weights; reported apart with the convolution weights).
TensorRT's own planner fuses layers (fewer, not more, live tensors) and adds tactic workspace
(bounded by ``--workspace``); the figure is an estimate of the graph's needs, not a promise.

Shapes at a profile point come from the emulator's own shape inference with the inputs set to
that point; a dynamic first dimension left after that is the batch (every tensor of trtnet's
networks is batch-first, :func:`trtnet.builder.engine.profile_shapes`), and the volume of a
tensor still partly dynamic (the resize whose output size is a shape tensor) is that of the
shuffle that reshapes it (a shuffle never changes the volume).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from trtnet.builder.sidecar import gpu_memory_bytes
from trtnet.emulator import layers as L
from trtnet.emulator import trt as etrt


class MemoryEstimateError(ValueError):
    """The graph has a tensor whose size the estimate cannot tell."""


@dataclass(frozen=True)
class ProfileMemory:
    """Device memory of one profile point (min, opt or max)."""

    point: str
    shapes: Mapping[str, tuple[int, ...]]
    activation_bytes: int                 # the peak of simultaneously live intermediate tensors
    io_bytes: int                         # network inputs and outputs at these shapes
    weights_bytes: int                    # convolution weights + folded constants (shape-independent)
    peak_layer: str = ""                  # the layer running when the peak is reached
    peak_tensors: Sequence[tuple[str, int]] = field(default_factory=tuple)  # live there, largest first

    @property
    def total_bytes(self) -> int:
        return self.activation_bytes + self.io_bytes + self.weights_bytes


def _itemsize(dtype: Any) -> int:
    return int(np.dtype(etrt.nptype(dtype)).itemsize)


def _is_folded(network: Any) -> dict[int, bool]:
    """id(layer) -> True for constants and layers fed only by constants (the executor's rule)."""
    folded: dict[int, bool] = {}
    for layer in network._layers:
        folded[id(layer)] = isinstance(layer, L.IConstantLayer) or (
            bool(layer._inputs) and not isinstance(layer, L.IPluginV3Layer)
            and all(x is not None and x._producer is not None and folded.get(id(x._producer), False)
                    for x in layer._inputs))
    return folded


def _shapes_at(network: Any, inputs: Mapping[str, Sequence[int]]) -> dict[int, tuple[int, ...]]:
    """id(tensor) -> shape of every tensor with the network inputs set to ``inputs`` (dynamic
    dims of inputs not given stay -1); the network is left as it was."""
    saved = [(t, t._input_shape) for t in network._inputs]
    try:
        for t in network._inputs:
            if t._name in inputs:
                t._input_shape = etrt.Dims(tuple(int(d) for d in inputs[t._name]))
        network._version += 1  # the shape caches are keyed on the version
        shapes = {id(t): tuple(int(d) for d in t._input_shape) for t in network._inputs}
        for layer in network._layers:
            for t in layer._outputs:
                shapes[id(t)] = tuple(int(d) for d in t._shape())
        return shapes
    finally:
        for t, shape in saved:
            t._input_shape = shape
        network._version += 1


def tensor_bytes(network: Any, inputs: Mapping[str, Sequence[int]], batch: int) -> dict[int, int]:
    """id(tensor) -> bytes at the profile point ``inputs`` (see the module docstring)."""
    shapes = _shapes_at(network, inputs)
    readers: dict[int, list[Any]] = {}
    for layer in network._layers:
        for x in layer._inputs:
            if x is not None:
                readers.setdefault(id(x), []).append(layer)
    tensors = list(network._inputs) + [t for layer in network._layers for t in layer._outputs]
    volume: dict[int, int] = {}
    for t in tensors:
        dims = list(shapes[id(t)])
        if dims and dims[0] < 0:
            dims[0] = batch
        if all(d >= 0 for d in dims):
            volume[id(t)] = int(np.prod(dims, dtype=np.int64))
    for t in tensors:  # partly dynamic: the volume of a shuffle it feeds or is made by
        if id(t) in volume:
            continue
        near = [r._outputs[0] for r in readers.get(id(t), []) if isinstance(r, L.IShuffleLayer)]
        if isinstance(t._producer, L.IShuffleLayer) and t._producer._inputs[0] is not None:
            near.append(t._producer._inputs[0])
        known = [volume[id(n)] for n in near if id(n) in volume]
        if not known:
            raise MemoryEstimateError(f"tensor {t._name!r} has shape {shapes[id(t)]} at {dict(inputs)}: its size is "
                                      "not known before the engine runs")
        volume[id(t)] = known[0]
    return {id(t): volume[id(t)] * _itemsize(t._dtype()) for t in tensors}


def weights_bytes(network: Any) -> int:
    """Convolution kernels and biases plus the folded constants that feed computing layers."""
    folded = _is_folded(network)
    total, counted = 0, set()
    for layer in network._layers:
        if isinstance(layer, L.IConvolutionLayer):
            for name in ("kernel", "bias"):
                w = layer._get(name)
                total += int(w.nbytes) if w is not None else 0
        if folded[id(layer)]:
            continue
        for x in layer._inputs:
            if x is not None and x._producer is not None and folded[id(x._producer)] and id(x) not in counted:
                counted.add(id(x))
                shape = tuple(int(d) for d in x._shape())
                total += int(np.prod(shape, dtype=np.int64)) * _itemsize(x._dtype())
    return total


def profile_memory(network: Any, point: str, inputs: Mapping[str, Sequence[int]], batch: int) -> ProfileMemory:
    """The memory of ``network`` (an emulator Network) with its inputs at ``inputs``."""
    sizes = tensor_bytes(network, inputs, batch)
    folded = _is_folded(network)
    io = {id(t) for t in network._inputs} | {id(t) for t in network._outputs}
    layers = network._layers
    last_read: dict[int, int] = {}
    for step, layer in enumerate(layers):
        for x in layer._inputs:
            if x is not None:
                last_read[id(x)] = step
    live: dict[int, Any] = {}
    peak, peak_layer, peak_tensors = 0, "", ()
    for step, layer in enumerate(layers):
        if not folded[id(layer)]:
            for t in layer._outputs:
                if id(t) not in io:
                    live[id(t)] = t
        now = sum(sizes[k] for k in live)
        if now > peak:
            peak, peak_layer = now, layer._name
            peak_tensors = tuple(sorted(((t._name, sizes[k]) for k, t in live.items()), key=lambda e: -e[1]))
        for k in [k for k in live if last_read.get(k, step) <= step]:  # read for the last time (or never)
            del live[k]
    return ProfileMemory(point, {k: tuple(v) for k, v in inputs.items()}, peak,
                         sum(sizes[k] for k in io), weights_bytes(network), peak_layer, peak_tensors)


def profiles_memory(network: Any, profile: Mapping[str, Sequence[Sequence[int]]]) -> list[ProfileMemory]:
    """:func:`profile_memory` at the min, opt and max point of ``profile`` (input -> (min, opt, max))."""
    out = []
    for i, point in enumerate(("min", "opt", "max")):
        inputs = {name: tuple(shapes[i]) for name, shapes in profile.items()}
        batches = [int(s[0]) for s in inputs.values() if len(s)] or [1]
        out.append(profile_memory(network, point, inputs, max(batches)))
    return out


def fits(memory: ProfileMemory, gpu_bytes: int) -> bool:
    """True when the profile's total (activations + I/O + weights) is at most the GPU's memory."""
    return memory.total_bytes <= int(gpu_bytes)


def mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def format_memory(rows: Sequence[ProfileMemory], gpu: Mapping[str, Any] | None = None) -> list[str]:
    """The dry-run's memory section: one line per profile point, then the fit warnings."""
    lines = [f"  {'point':<5} {'activations':>13} {'I/O':>11} {'weights':>11} {'total':>11}  largest live tensor"]
    for r in rows:
        top = f"{r.peak_tensors[0][0]} {mib(r.peak_tensors[0][1])}" if r.peak_tensors else "-"
        lines.append(f"  {r.point:<5} {mib(r.activation_bytes):>13} {mib(r.io_bytes):>11} "
                     f"{mib(r.weights_bytes):>11} {mib(r.total_bytes):>11}  {top}")
    lines += [f"  (the context allocates for the max point; {r.point} peak at layer {r.peak_layer!r})"
              for r in rows[-1:] if r.peak_layer]
    lines += [f"  warning: {text}" for text in fit_warnings(rows, gpu)]
    return lines


def fit_warnings(rows: Sequence[ProfileMemory], gpu: Mapping[str, Any] | None) -> list[str]:
    """One warning per profile point that would not fit ``gpu`` (a sidecar 'gpu' entry)."""
    total = gpu_memory_bytes(gpu or {})
    if total is None:
        return []
    name = (gpu or {}).get("name", "the GPU")
    return [f"the {r.point} point needs {mib(r.total_bytes)} ({r.total_bytes} bytes) but {name} has "
            f"{mib(total)} ({total} bytes); lower --max-frame or --max-batch"
            for r in rows if not fits(r, total)]
