"""``config.pbtxt`` text for the models of a trtnet Triton repository.

Written by hand (no protobuf needed to export); tests parse every file with Triton's own
schema (``tritonclient.grpc.model_config_pb2``), where an unknown field is an error.
Field names follow Triton's model_config.proto.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Optional, Sequence

# TensorRT DataType name (as the engine sidecar records it) -> Triton data type.
TRITON_TYPES = {
    "FLOAT": "TYPE_FP32", "HALF": "TYPE_FP16", "BF16": "TYPE_BF16", "INT8": "TYPE_INT8",
    "INT32": "TYPE_INT32", "INT64": "TYPE_INT64", "UINT8": "TYPE_UINT8", "BOOL": "TYPE_BOOL",
}


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output as Triton sees it (dims without the batch dimension
    when the model batches)."""

    name: str
    data_type: str
    dims: tuple[int, ...]
    reshape: Optional[tuple[int, ...]] = None  # the model's own shape when Triton's dims differ

    def text(self) -> str:
        dims = ", ".join(str(d) for d in self.dims)
        reshape = ""
        if self.reshape is not None:
            reshape = " reshape: { shape: [ " + ", ".join(str(d) for d in self.reshape) + " ] }"
        return f'  {{ name: "{self.name}" data_type: {self.data_type} dims: [ {dims} ]{reshape} }}'


def triton_type(trt_dtype_name: str) -> str:
    """Triton's type for a TensorRT dtype name; an unknown one is an error naming it."""
    try:
        return TRITON_TYPES[trt_dtype_name]
    except KeyError:
        raise ValueError(f"no Triton data type for the TensorRT type {trt_dtype_name!r}") from None


def specs_from_io(io: Iterable[Mapping], mode: str, batched: bool) -> list[TensorSpec]:
    """TensorSpecs of the sidecar-style I/O entries of ``mode`` ('input'/'output');
    ``batched`` drops the leading (batch) dimension as Triton's max_batch_size > 0 wants."""
    specs = []
    for entry in io:
        if entry["mode"] != mode:
            continue
        shape = tuple(int(d) for d in entry["shape"])
        if batched:
            if not shape or shape[0] != -1:
                raise ValueError(f"{entry['name']!r}: shape {list(shape)} has no dynamic batch dimension")
            shape = shape[1:]
        # A per-frame scalar ([batch] in the engine) is dims [1] to Triton, reshaped to [].
        specs.append(TensorSpec(entry["name"], triton_type(entry["dtype"]), shape or (1,),
                                reshape=None if shape else ()))
    return specs


def _block(key: str, specs: Sequence[TensorSpec]) -> str:
    return f"{key} [\n" + ",\n".join(s.text() for s in specs) + "\n]\n"


def _dynamic_batching(preferred: Sequence[int], queue_delay_us: int) -> str:
    sizes = ", ".join(str(s) for s in preferred)
    pref = f" preferred_batch_size: [ {sizes} ]" if sizes else ""
    return f"dynamic_batching {{{pref} max_queue_delay_microseconds: {int(queue_delay_us)} }}\n"


def stateless_model(name: str, *, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec],
                    max_batch_size: int, platform: Optional[str] = None, backend: Optional[str] = None,
                    instances: int = 1, kind: str = "KIND_GPU", preferred_batch_sizes: Sequence[int] = (),
                    queue_delay_us: int = 2000, parameters: Mapping[str, str] | None = None) -> str:
    """A keyframe/non-keyframe model: a TensorRT plan (``platform="tensorrt_plan"``) or a
    Python-backend stand-in (``backend="python"``), dynamic batching when it batches."""
    if (platform is None) == (backend is None):
        raise ValueError("give exactly one of platform and backend")
    text = f'name: "{name}"\n'
    text += f'platform: "{platform}"\n' if platform else f'backend: "{backend}"\n'
    text += f"max_batch_size: {int(max_batch_size)}\n"
    text += _block("input", inputs) + _block("output", outputs)
    if max_batch_size > 0:
        text += _dynamic_batching([s for s in preferred_batch_sizes if s <= max_batch_size], queue_delay_us)
    text += f"instance_group [ {{ kind: {kind} count: {int(instances)} }} ]\n"
    text += _parameters(parameters or {})
    return text


def _parameters(parameters: Mapping[str, str]) -> str:
    return "".join(f'parameters {{ key: "{k}" value: {{ string_value: "{v}" }} }}\n'
                   for k, v in parameters.items())


# Control inputs the sequence batcher fills in for the orchestrator (Triton's
# ModelSequenceBatching.Control kinds).
CONTROL_START, CONTROL_END, CONTROL_READY, CONTROL_CORRID = "START", "END", "READY", "CORRID"


def sequence_model(name: str, *, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec],
                   max_batch_size: int, idle_timeout_us: int, instances: int = 1, kind: str = "KIND_CPU",
                   queue_delay_us: int = 1000, parameters: Mapping[str, str] | None = None) -> str:
    """The orchestrator: Python backend under the sequence batcher (``oldest`` strategy, so
    frames of several streams reach one execute), with START/END/READY/CORRID controls."""
    controls = (
        f'    {{ name: "{CONTROL_START}" control [ {{ kind: CONTROL_SEQUENCE_START int32_false_true: [ 0, 1 ] }} ] }},\n'
        f'    {{ name: "{CONTROL_END}" control [ {{ kind: CONTROL_SEQUENCE_END int32_false_true: [ 0, 1 ] }} ] }},\n'
        f'    {{ name: "{CONTROL_READY}" control [ {{ kind: CONTROL_SEQUENCE_READY int32_false_true: [ 0, 1 ] }} ] }},\n'
        f'    {{ name: "{CONTROL_CORRID}" control [ {{ kind: CONTROL_SEQUENCE_CORRID data_type: TYPE_UINT64 }} ] }}\n'
    )
    text = f'name: "{name}"\nbackend: "python"\nmax_batch_size: {int(max_batch_size)}\n'
    text += _block("input", inputs) + _block("output", outputs)
    text += ("sequence_batching {\n"
             f"  max_sequence_idle_microseconds: {int(idle_timeout_us)}\n"
             f"  control_input [\n{controls}  ]\n"
             f"  oldest {{ max_candidate_sequences: {max(1, int(max_batch_size))} "
             f"max_queue_delay_microseconds: {int(queue_delay_us)} }}\n"
             "}\n")
    text += f"instance_group [ {{ kind: {kind} count: {int(instances)} }} ]\n"
    text += _parameters(parameters or {})
    return text
