"""What an engine build would contain, read off a network definition (``trtnet.build --dry-run``).

Per component (preprocess, backbone, fpn, proto, head, flow, detect, and YOLACT++'s maskiou):
its precision under the plan, its layers, its convolution parameters and multiply-accumulates
(MACs) per batch at the optimization profile's opt shape (maskiou_net runs once per detection
slot: its convolutions count max_det masks per frame), then the int8 audit, the I/O tensors and the
profile. Only the public ``INetworkDefinition`` / ``ILayer`` / ``ITensor`` API is read, so
the same summary works on the emulator's network and on TensorRT's.

Layers belong to a component by their name's first part (the network names every layer
after its checkpoint key or its stage): trtnet.precision.plans.COMPONENT_OF_PREFIX is that one table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Optional, Sequence

from trtnet.precision import ALWAYS_FP32, COMPONENTS, PrecisionPlan, int8_audit
from trtnet.precision.plans import COMPONENT_OF_PREFIX, NEVER_INT8, component_of, components_of  # noqa: F401

# Pipeline order; YOLACT++'s dcn (the DCNv2 convs inside the backbone) after the backbone,
# maskiou (mask re-scoring) on Fast NMS's detections.
ORDER = ("preprocess", "backbone", "dcn", *[c for c in COMPONENTS if c != "backbone"], "detect", "maskiou")


@dataclass
class ComponentSummary:
    component: str
    precision: str
    layers: int = 0
    convolutions: int = 0
    parameters: int = 0
    macs: int = 0  # per batch at the opt shape


def _layers(network: Any) -> Iterable[Any]:
    for i in range(network.num_layers):
        yield network.get_layer(i)


def _is_conv(layer: Any, trt: Any) -> bool:
    return layer.type == trt.LayerType.CONVOLUTION


def _batch_multiples(network: Any, trt: Any) -> dict[str, int]:
    """Tensor name -> how many rows of its dynamic first dimension one frame gives (1 but where a
    shuffle folds a static dimension into it: maskiou_net's [N, D, H, W] -> [N*D, 1, H, W] is D)."""
    multiple: dict[str, int] = {}
    for layer in _layers(network):
        ins = [t for t in (layer.get_input(i) for i in range(layer.num_inputs)) if t is not None]
        m = max((multiple.get(t.name, 1) for t in ins), default=1)
        for j in range(layer.num_outputs):
            out = layer.get_output(j)
            mult = m
            if layer.type == trt.LayerType.SHUFFLE and ins:
                before, after = tuple(int(d) for d in tuple(ins[0].shape)), tuple(int(d) for d in tuple(out.shape))
                if before and after and before[0] < 0 and after[0] < 0 and min(before[1:] + after[1:], default=1) > 0:
                    folded = _volume(before[1:]) * m
                    mult = folded // _volume(after[1:]) if folded % _volume(after[1:]) == 0 else m
            multiple[out.name] = mult
    return multiple


def _volume(dims: Sequence[int]) -> int:
    v = 1
    for d in dims:
        v *= d
    return v


def _conv_counts(layer: Any, batch: int) -> tuple[int, int]:
    """(parameters, MACs) of a 2-D convolution; dynamic (-1) batch counts as ``batch`` (times the
    input's batch multiple, set by :func:`summarize`)."""
    cin = int(tuple(layer.get_input(0).shape)[1])
    out = tuple(int(d) for d in tuple(layer.get_output(0).shape))
    kh, kw = (int(d) for d in tuple(layer.kernel_size_nd))
    groups = int(layer.num_groups)
    cout = int(layer.num_output_maps)
    weights = cout * (cin // groups) * kh * kw
    has_bias = (layer.num_inputs > 2 and layer.get_input(2) is not None) or int(layer.bias.size) > 0
    n = batch if out[0] < 0 else out[0]
    return weights + (cout if has_bias else 0), n * out[2] * out[3] * weights


def _dcn_counts(layer: Any, batch: int) -> tuple[int, int]:
    """(parameters, MACs) of a ModulatedDeformConv2d plugin layer (inputs x, offset, mask, weight[, bias]):
    the convolution proper plus the bilinear sampling (4 per tap and channel) and the mask product."""
    cin = int(tuple(layer.get_input(0).shape)[1])
    cout, cg, kh, kw = (int(d) for d in tuple(layer.get_input(3).shape))
    out = tuple(int(d) for d in tuple(layer.get_output(0).shape))
    n = batch if out[0] < 0 else out[0]
    pixels = n * out[2] * out[3]
    params = cout * cg * kh * kw + (cout if layer.num_inputs > 4 else 0)
    return params, pixels * (cout * cg * kh * kw + cin * kh * kw * 5)


def _is_dcn_plugin(layer: Any, comp: str) -> bool:
    return comp == "dcn" and layer.num_inputs >= 4 and "PLUGIN" in str(layer.type)


def summarize(network: Any, trt: Any, plan: PrecisionPlan, *, batch: int = 1) -> list[ComponentSummary]:
    """One row per component present in ``network`` (in pipeline order), 'other' last if any.

    YOLACT++'s DCN convs are their own row (``dcn``: fp16 in an int8 backbone); the plugin layer's
    MACs are the convolution's plus the sampling's."""
    rows: dict[str, ComponentSummary] = {}
    counted: set[str] = set()  # weights shared by several layers (the head over P3..P7: key@level) count once
    multiples = _batch_multiples(network, trt)
    components = components_of(layer.name for layer in _layers(network))
    for layer in _layers(network):
        comp = components[layer.name]
        row = rows.get(comp)
        if row is None:
            known = comp in COMPONENTS or comp in ALWAYS_FP32 or comp in NEVER_INT8
            row = rows[comp] = ComponentSummary(comp, plan.of(comp) if known else "?")
        row.layers += 1
        if _is_conv(layer, trt):
            params, macs = _conv_counts(layer, batch * multiples.get(layer.get_input(0).name, 1))
            row.convolutions += 1
            row.macs += macs
            key = layer.name.split("@")[0]
            if key not in counted:
                counted.add(key)
                row.parameters += params
        elif _is_dcn_plugin(layer, comp):
            params, macs = _dcn_counts(layer, batch * multiples.get(layer.get_input(0).name, 1))
            row.convolutions += 1
            row.macs += macs
            row.parameters += params
    return [rows[c] for c in (*ORDER, "other") if c in rows]


def io_tensors(network: Any) -> list[tuple[str, str, tuple[int, ...], str]]:
    """(mode, name, shape with -1 dynamic, dtype name) of every input, then every output."""
    out = []
    for mode, count, get in (("input", network.num_inputs, network.get_input),
                             ("output", network.num_outputs, network.get_output)):
        for i in range(count):
            t = get(i)
            out.append((mode, t.name, tuple(int(d) for d in tuple(t.shape)), getattr(t.dtype, "name", str(t.dtype))))
    return out


def _si(n: int) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(n)


def format_components(rows: Sequence[ComponentSummary]) -> list[str]:
    """The per-component table as text lines."""
    lines = [f"  {'component':<11} {'precision':<9} {'layers':>6} {'convs':>5} {'params':>9} {'MACs':>9}"]
    for r in rows:
        lines.append(f"  {r.component:<11} {r.precision:<9} {r.layers:>6} {r.convolutions:>5} "
                     f"{_si(r.parameters):>9} {_si(r.macs):>9}")
    total = ComponentSummary("total", "", sum(r.layers for r in rows), sum(r.convolutions for r in rows),
                             sum(r.parameters for r in rows), sum(r.macs for r in rows))
    lines.append(f"  {'total':<11} {'':<9} {total.layers:>6} {total.convolutions:>5} "
                 f"{_si(total.parameters):>9} {_si(total.macs):>9}")
    return lines


def format_io(network: Any) -> list[str]:
    """The I/O tensor table as text lines."""
    lines = []
    for mode, name, shape, dtype in io_tensors(network):
        dims = "x".join("?" if d < 0 else str(d) for d in shape)
        lines.append(f"  {mode:<6} {name:<28} {dtype:<6} [{dims}]")
    return lines


def int8_audit_section(network: Any, trt: Any, plan: PrecisionPlan) -> list[str]:
    """THE int8 audit of the dry-run report (issue 7 "INT8 that TensorRT can actually run fast").

    The audit itself lives in :mod:`trtnet.precision.int8_audit`; this is the one place the report
    calls it. Without that module (or for a plan without int8) it says so.
    """
    if not plan.uses_int8:
        return ["  (no int8 component in this plan)"]
    return [f"  {line}" for line in int8_audit.report_lines(network, trt, plan)]


NEEDS_TENSORRT = (
    "kernel selection and timing (per layer tactics, the timing cache), layer fusion",
    "the fp16/int8 kernels themselves and the plugin library's CUDA kernels",
    "the engine file and its JSON sidecar (nothing is written by a dry run)",
)


def memory_section(network: Any, profile: dict[str, Sequence[Sequence[int]]],
                   gpu: Mapping[str, Any] | None = None) -> list[str]:
    """Device memory per profile point (:mod:`trtnet.builder.memory`), with a warning for each
    point that would not fit ``gpu`` (a sidecar 'gpu' entry); needs the emulator's graph."""
    from trtnet import emulator
    from trtnet.builder import memory

    if not isinstance(network, emulator.Network):
        return ["  (needs the emulator's graph: python -m trtnet.build --dry-run)"]
    try:
        rows = memory.profiles_memory(network, profile)
    except memory.MemoryEstimateError as exc:
        return [f"  (not estimated: {exc})"]
    return memory.format_memory(rows, gpu)


def dry_run_report(network: Any, trt: Any, plan: PrecisionPlan, *, title: str,
                   profile: dict[str, Sequence[Sequence[int]]], batch: int,
                   notes: Optional[Sequence[str]] = None, gpu: Mapping[str, Any] | None = None) -> str:
    """The full ``--dry-run`` text; ``gpu`` (a sidecar 'gpu' entry) is the GPU the memory
    of each profile point is checked against."""
    lines = [title, "", f"plan {plan}" + (f" (preset {plan.preset})" if plan.preset else "") +
             f"; MACs per batch of {batch} at the opt shape", *format_components(summarize(network, trt, plan,
                                                                                             batch=batch))]
    lines += ["", "int8 audit:", *int8_audit_section(network, trt, plan)]
    lines += ["", "I/O tensors (? = dynamic):", *format_io(network)]
    lines += ["", "optimization profile (min / opt / max):"]
    for name, (lo, opt, hi) in profile.items():
        lines.append(f"  {name}: {list(lo)} / {list(opt)} / {list(hi)}")
    lines += ["", "device memory per profile point (estimate from the emulator's graph, before fusion):",
              *memory_section(network, profile, gpu)]
    if notes:
        lines += ["", *notes]
    lines += ["", "needs TensorRT (not done by a dry run):", *(f"  - {n}" for n in NEEDS_TENSORRT)]
    return "\n".join(lines)
