"""Run an emulated network on NumPy inputs: marked outputs plus fetched tensors.

Only the layers needed for the requested tensors run, in dependency order; an
intermediate is freed as soon as its last consumer has run (unless fetched), so
a full 550x550 pass keeps only the live feature maps in memory.
"""

from __future__ import annotations

from typing import Iterable, Mapping

import numpy as np

from . import layers as L
from . import trt
from .builder import IBuilderConfig, check_config, check_foldable_identities
from .network import Network
from .tensor import ITensor


def _tensors_by_name(network: Network) -> dict[str, list[ITensor]]:
    found: dict[str, list[ITensor]] = {}
    for t in network._inputs:
        found.setdefault(t._name, []).append(t)
    for layer in network._layers:
        for t in layer._outputs:
            found.setdefault(t._name, []).append(t)
    return found


def _resolve(network: Network, names: Iterable[str]) -> list[ITensor]:
    by_name = _tensors_by_name(network)
    out = []
    for name in names:
        hits = by_name.get(name)
        if not hits:
            close = sorted(n for n in by_name if name.split("/")[-1] in n)[:8]
            raise KeyError(f"no tensor named {name!r} in the network" + (f"; similar: {close}" if close else ""))
        if len(hits) > 1:
            raise KeyError(f"{len(hits)} tensors are named {name!r}; give them unique names to fetch them")
        out.append(hits[0])
    return out


def _check_input(t: ITensor, arr) -> np.ndarray:
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"input {t._name!r}: expected a numpy array, got {type(arr).__name__}")
    want = np.dtype(trt.nptype(t._input_dtype))
    if arr.dtype != want:
        raise TypeError(f"input {t._name!r} is {t._input_dtype.name} ({want}); got a {arr.dtype} array")
    dims = t._input_shape
    if arr.ndim != len(dims) or any(d >= 0 and d != a for d, a in zip(dims, arr.shape)):
        raise ValueError(f"input {t._name!r} must have shape {tuple(dims)} (-1 = any), got {arr.shape}")
    return arr


def _check_output(layer, i: int, arr: np.ndarray) -> None:
    t = layer._outputs[i]
    dims, dtype = t._shape(), t._dtype()
    if arr.dtype != np.dtype(trt.nptype(dtype)):
        raise AssertionError(f"emulator bug: {layer._name} output {i} is {arr.dtype}, declared {dtype.name}")
    if arr.ndim != len(dims) or any(d >= 0 and d != a for d, a in zip(dims, arr.shape)):
        raise AssertionError(f"emulator bug: {layer._name} output {i} has shape {arr.shape}, declared {tuple(dims)}")


def validate(network: Network, config: IBuilderConfig | None = None) -> None:
    """What TensorRT's builder checks before building, as far as the emulator models it.

    * Layer names and tensor names are each unique. NvInfer.h ITensor::setName (11.1 l.193) and
      addInput (11.1 l.8171): "Each input and output tensor must have a unique name"; the builder
      rejects any repeat: "[network.cpp::validate] Error Code 4: Internal Error (Repeated tensor
      name: ... (tensors must have distinct names))" and "(Repeated layer name: ... (layers must
      have distinct names))" (reported in NVIDIA/TensorRT#447, OAID/Tengine#1235,
      PaddlePaddle/Paddle#54072, pytorch/TensorRT#459).
    * ``config`` (optional): builder flags whose numerics the emulator does not reproduce are
      refused (:func:`trtnet.emulator.builder.check_config`); so are, always, the elementwise
      identities TensorRT 11 folds by default (``check_foldable_identities``).
    """
    for what, names in (("layer", [layer._name for layer in network._layers]),
                        ("tensor", [t._name for t in network._inputs]
                         + [t._name for layer in network._layers for t in layer._outputs])):
        seen: set[str] = set()
        repeated = sorted({n for n in names if n in seen or seen.add(n)})
        if repeated:
            raise ValueError(f"repeated {what} name(s) {repeated[:5]}{' ...' if len(repeated) > 5 else ''}: "
                             f"TensorRT's builder rejects a network whose {what}s do not have distinct names")
    check_foldable_identities(network)
    if config is not None:
        check_config(network, config)


def run(network: Network, inputs: Mapping[str, np.ndarray], fetch: list[str] | None = None, *,
        outputs: bool = True, config: IBuilderConfig | None = None) -> dict[str, np.ndarray]:
    """Execute ``network``; returns the marked outputs plus every tensor named in ``fetch``.

    The network is first checked as TensorRT's builder would (:func:`validate`; ``config`` is
    the builder config the engine would be built with, ``None`` = exact fp32, i.e. TF32 cleared).

    With ``outputs=False`` only the fetched tensors are computed and returned
    (only the layers they depend on run: cheap for early feature maps).
    Inputs are checked against the declared dtype (exact NumPy dtype) and shape
    (``-1`` dims take any size).
    """
    validate(network, config)
    wanted = list(network._outputs) if outputs else []
    for t in _resolve(network, fetch or []):
        if not any(t is w for w in wanted):
            wanted.append(t)
    if not wanted:
        raise ValueError("nothing to compute: no marked outputs and nothing fetched")
    known = {t._name for t in network._inputs}
    unknown = sorted(set(inputs) - known)
    if unknown:
        raise KeyError(f"unknown input(s) {unknown}; network inputs: {sorted(known)}")

    # Layers needed, in dependency order (iterative DFS).
    order, state = [], {}
    for t in wanted:
        stack = [(t._producer, False)] if t._producer is not None else []
        while stack:
            layer, done = stack.pop()
            if done:
                state[id(layer)] = 2
                order.append(layer)
                continue
            if state.get(id(layer)):
                if state[id(layer)] == 1:
                    raise ValueError(f"the network has a cycle through {layer._name}")
                continue
            state[id(layer)] = 1
            stack.append((layer, True))
            for x in layer._inputs:
                if x is not None and x._producer is not None and state.get(id(x._producer)) != 2:
                    if state.get(id(x._producer)) == 1:
                        raise ValueError(f"the network has a cycle through {x._producer._name}")
                    stack.append((x._producer, False))

    env: dict[int, np.ndarray] = {}
    needed_inputs = {id(x) for layer in order for x in layer._inputs if x is not None and x._producer is None}
    needed_inputs |= {id(t) for t in wanted if t._producer is None}
    for t in network._inputs:
        if id(t) in needed_inputs:
            if t._name not in inputs:
                raise KeyError(f"missing input {t._name!r} ({t._input_dtype.name}, shape {tuple(t._input_shape)})")
            env[id(t)] = _check_input(t, inputs[t._name])

    keep = {id(t) for t in wanted}
    uses: dict[int, int] = {}
    for layer in order:
        for x in layer._inputs:
            if x is not None:
                uses[id(x)] = uses.get(id(x), 0) + 1

    constant: dict[int, bool] = {}
    for layer in order:
        # Layers fed only by constants (weight casts, kernel Q/DQ) are folded: computed once
        # and reused by later runs until an attribute of the network changes.
        constant[id(layer)] = isinstance(layer, L.IConstantLayer) or (
            bool(layer._inputs) and not isinstance(layer, L.IPluginV3Layer)
            and all(x is not None and x._producer is not None and constant.get(id(x._producer), False)
                    for x in layer._inputs))
        folded = getattr(layer, "_folded", None)
        if constant[id(layer)] and folded is not None and folded[0] == network._version:
            outs = folded[1]
        else:
            layer._validate()
            xs = [env[id(x)] if x is not None else None for x in layer._inputs]
            try:
                outs = layer._execute(xs)
            except Exception as exc:  # name the layer, keep the exception type
                if hasattr(exc, "add_note"):
                    exc.add_note(f"while running layer {layer._name!r} ({type(layer).__name__})")
                raise
            del xs
            if constant[id(layer)]:
                for arr in outs:
                    arr.flags.writeable = False  # shared between runs
                layer._folded = (network._version, outs)
        for i, arr in enumerate(outs):
            _check_output(layer, i, arr)
            t = layer._outputs[i]
            if uses.get(id(t)) or id(t) in keep:
                env[id(t)] = arr
        for x in layer._inputs:
            if x is None:
                continue
            uses[id(x)] -= 1
            if uses[id(x)] == 0 and id(x) not in keep:
                env.pop(id(x), None)

    # Folded constants are shared between runs: hand out copies the caller may modify.
    return {t._name: env[id(t)] if env[id(t)].flags.writeable else env[id(t)].copy() for t in wanted}


def summary(network: Network) -> str:
    """One line per layer: name, kind, output names with build-time shapes (-1 = dynamic) and types."""
    lines = [f"{len(network._inputs)} inputs, {len(network._layers)} layers, {len(network._outputs)} outputs"]
    for t in network._inputs:
        lines.append(f"  input  {t._name}: {tuple(t._input_shape)} {t._input_dtype.name}")
    for layer in network._layers:
        try:
            outs = ", ".join(f"{t._name}: {tuple(t._shape())} {t._dtype().name}" for t in layer._outputs)
        except (TypeError, ValueError) as exc:  # a half-configured layer still gets a line
            outs = f"<{exc}>"
        lines.append(f"  {layer._name} [{layer._kind}] -> {outs}")
    return "\n".join(lines)
