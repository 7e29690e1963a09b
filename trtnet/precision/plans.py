"""Precision plans: which numeric type each component of the network computes in.

A plan maps component (backbone, fpn, proto, head, flow) -> 'fp32' | 'fp16' | 'int8'.
The network's layer helpers (trtnet/network/layers.py) consult it and insert the casts
(and later the quantize/dequantize pairs) themselves, so the model code never mentions
precision. The network is strongly typed: the plan is the only place types are chosen.

Preprocessing, box decoding, the class softmax and NMS always run in fp32 (they are
cheap and need the range); only the convolutional components follow the plan.

fp16: half weights and activations (casts at component borders). int8: explicit
quantization as strongly typed TensorRT wants it -- each convolution reads its input through
a Q/DQ pair (per-tensor scale = calibrated |max| / 127, looked up by tensor name in
``plan.amax``) and its kernel through a per-output-channel Q/DQ pair, each add reads its
residual input through a Q/DQ pair; the pairs dequantize to fp16, so what TensorRT does not
fuse into an int8 kernel (resizes, pools, unfused adds) runs in half precision
(trtnet.network.layers.Graph cites NVIDIA's placement recommendations; trtnet.precision.int8_audit
checks a built network against them). :class:`AmaxRecorder` lists the tensors a calibration must measure;
``python -m trtnet.calibrate`` measures them (trtnet.calibrate).

Presets (:data:`PRESETS`) name the variants of the paper's Table I: ``fp32``, ``fp16``,
``int8_backbone``, ``int8_backbone_fpn``, ``int8_all``, and ``upstream`` (the int8/fp16 mix
upstream deploys by default). A preset name is accepted wherever a plan is, also as the first
part of a custom plan (``int8_backbone_fpn,head=fp32``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Mapping, Optional, Union

COMPONENTS = ("backbone", "fpn", "proto", "head", "flow")
PRECISIONS = ("fp32", "fp16", "int8")
ALWAYS_FP32 = ("preprocess", "detect")
# Components that follow another's precision but never int8 (int8 there -> fp16): YOLACT++'s
# maskiou_net reads post-NMS sigmoid masks that no calibration measures (trtnet.network.maskiou);
# the DCNv2 convs (offset conv + TensorRT's ModulatedDeformConv2d, which computes fp32/fp16 only)
# follow the backbone (trtnet.network.deform_conv).
NEVER_INT8 = {"maskiou": "head", "dcn": "backbone"}


class PrecisionError(ValueError):
    """A precision plan names an unknown component or precision."""


@dataclass(frozen=True)
class PrecisionPlan:
    """Per-component precision; components not listed use ``default``."""

    components: Mapping[str, str] = field(default_factory=dict)
    default: str = "fp32"
    # int8: calibrated |max| of every activation a quantized layer reads, by tensor name
    # (from the calibration cache); symmetric scale = amax / 127.
    amax: Mapping[str, float] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.default not in PRECISIONS:
            raise PrecisionError(
                f"unknown precision {self.default!r}; expected one of {', '.join(PRECISIONS)}"
            )
        for comp, prec in self.components.items():
            if comp not in COMPONENTS:
                raise PrecisionError(
                    f"unknown component {comp!r} in precision plan; expected one of "
                    f"{', '.join(COMPONENTS)}"
                )
            if prec not in PRECISIONS:
                raise PrecisionError(
                    f"unknown precision {prec!r} for {comp}; expected one of {', '.join(PRECISIONS)}"
                )

    def of(self, component: str) -> str:
        """Precision of ``component`` ('fp32' for the always-fp32 stages)."""
        if component in ALWAYS_FP32:
            return "fp32"
        if component in NEVER_INT8:
            followed = self.of(NEVER_INT8[component])
            return "fp16" if followed == "int8" else followed
        if component not in COMPONENTS:
            raise PrecisionError(
                f"unknown component {component!r}; expected one of "
                f"{', '.join(COMPONENTS + ALWAYS_FP32)}"
            )
        return self.components.get(component, self.default)

    def with_amax(self, amax: Mapping[str, float]) -> "PrecisionPlan":
        """This plan with calibrated activation ranges (tensor name -> |max|)."""
        return PrecisionPlan(dict(self.components), self.default, amax)

    @property
    def uses_int8(self) -> bool:
        return any(self.of(c) == "int8" for c in COMPONENTS)

    def activation_scale(self, tensor: str, component: str) -> float:
        """INT8 scale of activation ``tensor`` read by an int8 ``component``."""
        amax = self.amax.get(tensor)
        if amax is None and calibration_name(tensor) != tensor:  # a cast reads its source's range
            amax = self.amax.get(calibration_name(tensor))
        if amax is None:
            raise PrecisionError(
                f"int8 {component}: no calibrated range for tensor {tensor!r}; calibrate the "
                f"network first (python -m trtnet.calibrate writes a cache; "
                f"trtnet.calibrate.load_plan applies it), or run {component} in fp16/fp32"
            )
        amax = float(amax)
        if not amax > 0.0 or amax != amax:
            raise PrecisionError(f"int8 {component}: calibrated range of {tensor!r} must be > 0, got {amax}")
        return amax / 127.0

    @classmethod
    def parse(cls, text: str) -> "PrecisionPlan":
        """``'fp16'`` (everything), a preset (``'int8_backbone_fpn'``) or
        ``'fp16,backbone=int8,head=fp32'`` (default or preset first, then overrides)."""
        default = "fp32"
        comps: dict[str, str] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            if "=" in part:
                comp, prec = (s.strip() for s in part.split("=", 1))
                comps[comp] = prec
            elif part in PRESETS:
                default = PRESETS[part].default
                comps = {**PRESETS[part].components, **comps}
            elif part in PRECISIONS:
                default = part
            else:
                raise PrecisionError(
                    f"unknown precision plan {part!r}; presets: {', '.join(PRESETS)}; or a "
                    f"precision ({', '.join(PRECISIONS)}) with per-component overrides like "
                    f"'fp16,backbone=int8' (components: {', '.join(COMPONENTS)})"
                )
        return cls(comps, default)

    @property
    def preset(self) -> Optional[str]:
        """Name of the preset this plan equals (None for a custom plan)."""
        for name, plan in PRESETS.items():
            if all(self.of(c) == plan.of(c) for c in COMPONENTS):
                return name
        return None

    def __str__(self) -> str:
        extra = ",".join(f"{c}={p}" for c, p in sorted(self.components.items()))
        return self.default + ("," + extra if extra else "")


FP32 = PrecisionPlan()
FP16 = PrecisionPlan(default="fp16")

# The paper's Table I variants (upstream's torch2trt int8 switches), by name. int8 components
# quantize their convolutions; the rest computes in fp16; preprocess, box decoding, the class
# softmax and NMS stay fp32 in every plan.
PRESETS: dict[str, PrecisionPlan] = {
    "fp32": FP32,
    "fp16": FP16,
    "int8_backbone": PrecisionPlan({"backbone": "int8"}, "fp16"),
    "int8_backbone_fpn": PrecisionPlan({"backbone": "int8", "fpn": "int8"}, "fp16"),
    "int8_all": PrecisionPlan(default="int8"),
    # upstream's deployed default (torch2trt_* switches of yolact_edge_config/_vid_config):
    # backbone, ProtoNet and flow net int8, FPN and head fp16. SPA belongs to our flow
    # component, so it is int8 here where upstream keeps it fp16.
    "upstream": PrecisionPlan({"backbone": "int8", "proto": "int8", "flow": "int8"}, "fp16"),
}

PlanLike = Union[PrecisionPlan, str, None]


def as_plan(plan: PlanLike) -> PrecisionPlan:
    """A PrecisionPlan from a plan, a preset name, its text form, or None (all fp32)."""
    if plan is None:
        return FP32
    if isinstance(plan, PrecisionPlan):
        return plan
    if isinstance(plan, str):
        return PrecisionPlan.parse(plan)
    raise TypeError(f"expected a PrecisionPlan, a string like 'fp16' or None, got {plan!r}")


def trt_dtype(trt, precision: str):
    """The TensorRT DataType activations of a ``precision`` component are kept in.

    int8 components keep fp16 activations between their Q/DQ pairs (explicit quantization).
    """
    return trt.DataType.FLOAT if precision == "fp32" else trt.DataType.HALF


def numpy_dtype(precision: str):
    """NumPy dtype of the weights (biases, kernels before quantization) of a ``precision`` component."""
    import numpy as np

    return np.float32 if precision == "fp32" else np.float16


_CAST_SUFFIX = re.compile(r"\.cast_[a-z0-9]+$")


def calibration_name(tensor: str) -> str:
    """The fp32 network's name of the tensor an int8 layer reads.

    A quantized layer reading another component's fp16 output reads a cast of it
    (``fpn/P3.cast_float``); its range is the source tensor's (``fpn/P3``).
    """
    while _CAST_SUFFIX.search(tensor):
        tensor = _CAST_SUFFIX.sub("", tensor)
    return tensor


class AmaxRecorder(dict):
    """An ``amax`` mapping that records which tensors int8 layers read (answering 1.0).

    Build a network once with ``plan.with_amax(recorder)`` to learn the tensors a
    calibration run has to measure: ``recorder.requested``, in network order.
    """

    def __init__(self) -> None:
        super().__init__()
        self.requested: list[str] = []

    def get(self, key, default=None):  # noqa: D102 (mapping protocol)
        if key not in self.requested:
            self.requested.append(key)
        return 1.0


# First part of a layer name (up to '.', '/' or '@') -> component.
COMPONENT_OF_PREFIX = {
    "preprocess": "preprocess", "preprocessed": "preprocess", "frame": "preprocess",
    "backbone": "backbone", "partial_backbone": "backbone",
    "fpn_phase_1": "fpn", "fpn_phase_2": "fpn", "fpn_phase_1_final": "fpn", "fpn": "fpn", "lateral3": "fpn",
    "proto_net": "proto", "proto": "proto",
    "prediction_layers": "head", "head": "head",
    "flow_net": "flow", "flow_net_pre_convs": "flow", "flow": "flow", "spa": "flow", "warp": "flow",
    "inverse_warp": "flow", "key": "flow",
    "decode": "detect", "decoded": "detect", "priors": "detect", "fastnms": "detect", "det": "detect",
    "maskiou_net": "maskiou", "maskiou": "detect", "mask_scores": "detect",
}
_PREFIX = re.compile(r"^[^./@]+")


def component_of(layer_name: str) -> str:
    """The component a layer belongs to ('other' for a name no table entry covers)."""
    m = _PREFIX.match(layer_name)
    return COMPONENT_OF_PREFIX.get(m.group(0) if m else "", "other")


_DCN_MARK = ".conv2.conv_offset_mask"


def components_of(layer_names) -> dict[str, str]:
    """Layer name -> component for a whole network: :func:`component_of`, except a YOLACT++ DCN
    block's conv2 layers (its offset conv, mask, the ModulatedDeformConv2d plugin, its relu) and
    bn2, which are component ``dcn`` (their names are the checkpoint keys a plain conv2 has too;
    a ``<block>.conv2.conv_offset_mask`` layer marks the block as deformable)."""
    names_ = list(layer_names)
    blocks = {n[: -len(_DCN_MARK)] for n in names_ if n.endswith(_DCN_MARK)}
    out = {}
    for n in names_:
        block = n.split(".conv2", 1)[0] if ".conv2" in n else n.split(".bn2", 1)[0]
        tail = n[len(block):]
        dcn = block in blocks and (tail in (".conv2", ".bn2") or tail.startswith((".conv2.", ".bn2.")))
        out[n] = "dcn" if dcn else component_of(n)
    return out
