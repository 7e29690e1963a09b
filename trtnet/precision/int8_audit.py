"""INT8 audit: does a built network quantize the way TensorRT can run fast?

Explicit quantization only pays when TensorRT can fuse the Q/DQ pairs into int8 kernels.
NVIDIA's "Q/DQ Layer-Placement Recommendations" (TensorRT developer guide, "Working with
Quantized Types") ask for Q/DQ on every input of a convolution (activation per tensor,
kernel per output channel), on the residual input of an add (the other input a
convolution the add fuses into), and none on outputs; trtnet dequantizes to fp16 so that
layers TensorRT does not fuse run in half precision. Per int8 component this module counts

* convolutions whose input and kernel both come through Q/DQ (kernel: per output channel,
  axis 0, from a constant; activation: a 0-D per-tensor scale),
* adds of two feature maps (residual, top-down) whose every input is a DQ output or a
  fusable convolution (an int8 convolution,
  optionally followed by one activation, read by nothing but this add),
* dequantized activations (DQ of a non-constant) whose type is fp16,

and checks the targets: 100%, 100%, >= 95%. It reads only what both TensorRT's
INetworkDefinition and trtnet's emulator offer (layers, their inputs and outputs, types),
so it audits a network built for either.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

from trtnet.precision import COMPONENTS, AmaxRecorder, PlanLike, as_plan

FP16_TARGET = 0.95  # share of dequantized activations that must be fp16


def _kind(enum_value: Any) -> str:
    """Member name of a TensorRT enum value (``LayerType.CONVOLUTION`` -> 'CONVOLUTION')."""
    return getattr(enum_value, "name", str(enum_value).rsplit(".", 1)[-1])


# Subclasses whose own ``type`` attribute shadows ILayer.type (IActivationLayer.type is the
# ActivationType, IPoolingLayer.type the PoolingType) when a layer arrives as its subclass.
_SHADOWED_TYPE = {"ActivationType": "ACTIVATION", "PoolingType": "POOLING"}
_LAYER_CLASS = {"CONVOLUTION": "IConvolutionLayer", "ELEMENTWISE": "IElementWiseLayer",
                "QUANTIZE": "IQuantizeLayer", "DEQUANTIZE": "IDequantizeLayer"}


def _layer_kind(layer: Any) -> str:
    t = layer.type
    return _SHADOWED_TYPE.get(type(t).__name__) or _kind(t)


def _attr(layer: Any, name: str) -> Any:
    """A subclass attribute of ``layer``. TensorRT's INetworkDefinition.get_layer returns the
    ILayer base; like NVIDIA's samples, downcast by setting ``__class__`` to the subclass."""
    if not hasattr(layer, name):
        module = sys.modules[type(layer).__module__]
        layer.__class__ = getattr(module, _LAYER_CLASS[_layer_kind(layer)])
    return getattr(layer, name)


@dataclass
class ComponentAudit:
    """Counts for one int8 component of one network (see the module docstring)."""

    component: str
    convs: int = 0
    convs_quantized: int = 0
    adds: int = 0
    adds_fusable: int = 0
    dequantized: int = 0
    dequantized_fp16: int = 0
    problems: list[str] = field(default_factory=list)  # "layer: why", for the report

    @property
    def ok(self) -> bool:
        return (self.convs_quantized == self.convs and self.adds_fusable == self.adds
                and self.dequantized_fp16 >= FP16_TARGET * self.dequantized)


class _Graph:
    """Producer and consumers of every tensor of a network, by tensor name."""

    def __init__(self, network: Any) -> None:
        self.layers = [network.get_layer(i) for i in range(network.num_layers)]
        self.producer: dict[str, Any] = {}
        self.readers: dict[str, list[Any]] = {}
        self.consumers: dict[str, int] = {}
        for layer in self.layers:
            for i in range(layer.num_outputs):
                self.producer[layer.get_output(i).name] = layer
            for i in range(layer.num_inputs):
                t = layer.get_input(i)
                if t is not None:
                    self.consumers[t.name] = self.consumers.get(t.name, 0) + 1
                    self.readers.setdefault(t.name, []).append(layer)

    def made_by(self, tensor: Any, kind: str) -> Optional[Any]:
        layer = self.producer.get(tensor.name) if tensor is not None else None
        return layer if layer is not None and _layer_kind(layer) == kind else None

    def only_read_once(self, tensor: Any) -> bool:
        return self.consumers.get(tensor.name, 0) == 1 and not tensor.is_network_output

    def quantize_of(self, tensor: Any) -> Optional[Any]:
        """The Quantize layer behind DQ output ``tensor`` (None if it is not one)."""
        dq = self.made_by(tensor, "DEQUANTIZE")
        return self.made_by(dq.get_input(0), "QUANTIZE") if dq is not None else None

    def is_constant(self, tensor: Any) -> bool:
        return self.made_by(tensor, "CONSTANT") is not None

    def per_tensor_activation(self, tensor: Any) -> bool:
        """``tensor`` = DQ(Q(activation)) with 0-D scales on both."""
        q = self.quantize_of(tensor)
        if q is None or self.is_constant(q.get_input(0)):
            return False
        dq = self.producer[tensor.name]
        return len(tuple(q.get_input(1).shape)) == 0 and len(tuple(dq.get_input(1).shape)) == 0

    def per_channel_kernel(self, tensor: Any, out_channels: int) -> bool:
        """``tensor`` = DQ(Q(constant kernel)), scales [out_channels] on axis 0."""
        q = self.quantize_of(tensor)
        if q is None or not self.is_constant(q.get_input(0)):
            return False
        dq = self.producer[tensor.name]
        return all(tuple(layer.get_input(1).shape) == (out_channels,) and _attr(layer, "axis") == 0
                   for layer in (q, dq))

    def adds_feature_maps(self, layer: Any) -> bool:
        """A residual / top-down add: two NCHW maps of one shape, neither a constant (not a
        statistic such as the motion measure's ``mean + epsilon``)."""
        a, b = (layer.get_input(i) for i in range(2))
        return (len(tuple(a.shape)) == 4 and tuple(a.shape) == tuple(b.shape)
                and not self.is_constant(a) and not self.is_constant(b))

    def int8_conv(self, layer: Any) -> bool:
        return (layer.num_inputs > 1 and self.per_tensor_activation(layer.get_input(0))
                and self.per_channel_kernel(layer.get_input(1), int(_attr(layer, "num_output_maps"))))

    def fusable_conv_output(self, tensor: Any) -> bool:
        """An int8 conv's output (or its single activation's) read by one layer only."""
        if not self.only_read_once(tensor):
            return False
        act = self.made_by(tensor, "ACTIVATION")
        if act is not None:
            tensor = act.get_input(0)
            if not self.only_read_once(tensor):
                return False
        conv = self.made_by(tensor, "CONVOLUTION")
        return conv is not None and self.int8_conv(conv)


def layer_components(network: Any, graph: Optional[_Graph] = None) -> dict[str, str]:
    """Layer name -> component: by the layer's name (trtnet.precision.plans.components_of: YOLACT++'s
    DCN layers are ``dcn``), except Q/DQ layers, which belong to the layer reading their output (a DQ of ``fpn/P3`` that
    ProtoNet reads is ProtoNet's)."""
    from trtnet.precision.plans import components_of

    graph = graph or _Graph(network)
    out = components_of(layer.name for layer in graph.layers
                        if _layer_kind(layer) not in ("QUANTIZE", "DEQUANTIZE"))
    for kind in ("DEQUANTIZE", "QUANTIZE"):  # a Q belongs to its DQ's reader
        for layer in graph.layers:
            if _layer_kind(layer) == kind:
                readers = graph.readers.get(layer.get_output(0).name, [])
                out[layer.name] = next((out[r.name] for r in readers if r.name in out), "other")
    return out


def audit(network: Any, plan: PlanLike, components: Optional[Mapping[str, str]] = None) -> list[ComponentAudit]:
    """One row per int8 component of ``plan`` present in ``network`` (in COMPONENTS order).

    ``components``: layer name -> component (default :func:`layer_components`).
    """
    plan = as_plan(plan)
    rows = {c: ComponentAudit(c) for c in COMPONENTS if plan.of(c) == "int8"}
    graph = _Graph(network)
    components = layer_components(network, graph) if components is None else components
    for layer in graph.layers:
        row = rows.get(components.get(layer.name, ""))
        if row is None:
            continue
        kind = _layer_kind(layer)
        if kind == "CONVOLUTION":
            row.convs += 1
            if graph.int8_conv(layer):
                row.convs_quantized += 1
            else:
                row.problems.append(f"{layer.name}: convolution without Q/DQ on its input and kernel")
        elif kind == "ELEMENTWISE" and _kind(_attr(layer, "op")) == "SUM" and graph.adds_feature_maps(layer):
            row.adds += 1
            inputs = [layer.get_input(i) for i in range(layer.num_inputs)]
            bad = [t.name for t in inputs
                   if graph.quantize_of(t) is None and not graph.fusable_conv_output(t)]
            if bad:
                row.problems.append(f"{layer.name}: input {', '.join(bad)} is neither a DQ output nor "
                                    "a fusable convolution")
            else:
                row.adds_fusable += 1
        elif kind == "DEQUANTIZE" and not graph.is_constant(layer.get_input(0)):
            q = graph.made_by(layer.get_input(0), "QUANTIZE")
            if q is not None and graph.is_constant(q.get_input(0)):
                continue  # a kernel
            row.dequantized += 1
            if _kind(layer.get_output(0).dtype) == "HALF":
                row.dequantized_fp16 += 1
            else:
                row.problems.append(f"{layer.name}: dequantizes to {_kind(layer.get_output(0).dtype)}, not fp16")
    return [r for r in rows.values() if r.convs or r.adds or r.dequantized]  # components present


def _share(done: int, total: int) -> str:
    return f"{done}/{total} ({100.0 * done / total:.0f}%)" if total else "-"


def format_audit(rows: Sequence[ComponentAudit], title: str = "int8 audit", *,
                 problems: int = 3) -> str:
    """A table of ``rows`` with the targets, and the first ``problems`` offenders per row."""
    if not rows:
        return f"{title}: no int8 component"
    head = (f"{title:<22} {'conv in+kernel Q/DQ':<20} {'add inputs DQ/fused':<20} "
            f"{'DQ activations fp16':<20} targets 100% 100% >=95%")
    lines = [head]
    for r in rows:
        lines.append(f"  {r.component:<20} {_share(r.convs_quantized, r.convs):<20} "
                     f"{_share(r.adds_fusable, r.adds):<20} {_share(r.dequantized_fp16, r.dequantized):<20} "
                     f"{'met' if r.ok else 'NOT MET'}")
        lines += [f"    {p}" for p in r.problems[:problems]]
        if len(r.problems) > problems:
            lines.append(f"    (+{len(r.problems) - problems} more)")
    return "\n".join(lines)


def audit_plan(weights: Any, config: Any, plan: PlanLike, *, nonkeyframe: bool = False) -> list[ComponentAudit]:
    """Audit the keyframe (or non-keyframe) network of ``config`` built on the emulator with
    ``plan``; without calibrated ranges every scale is 1/127 (placement does not depend on it)."""
    from trtnet import emulator
    from trtnet.network import build_keyframe, build_nonkeyframe

    plan = as_plan(plan)
    if not plan.amax:
        plan = plan.with_amax(AmaxRecorder())
    net = emulator.Network()
    builder = build_nonkeyframe if nonkeyframe else build_keyframe
    builder(net, emulator.trt, weights, config, plan=plan)
    return audit(net, plan)


def dcn_note(network: Any, plan: PlanLike) -> Optional[str]:
    """What happens to YOLACT++'s DCN convs under an int8 plan, or None when nothing does."""
    plan = as_plan(plan)
    components = layer_components(network)
    plugins = [n for n, c in components.items() if c == "dcn" and n.endswith(".conv2")]
    if not plugins or plan.of("backbone") != "int8":
        return None
    return (f"dcn: {len(plugins)} DCNv2 convs (offset conv + TensorRT's ModulatedDeformConv2d, which computes "
            f"fp32/fp16 only) stay {plan.of('dcn')} between the int8 backbone's quantized layers; not audited")


def report_lines(network: Any, trt: Any, plan: PlanLike) -> list[str]:
    """The audit table for ``python -m trtnet.build --dry-run`` (trtnet.builder.plan_summary)."""
    del trt  # the audit reads layer kinds by name: the same code for TensorRT and the emulator
    lines = format_audit(audit(network, plan), "component").splitlines()
    note = dcn_note(network, plan)
    return lines + ([f"  {note}"] if note else [])
