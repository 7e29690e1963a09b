"""Precision plans: which numeric type each component of the network computes in.

A plan maps component (backbone, fpn, proto, head, flow) -> 'fp32' | 'fp16' | 'int8'.
The network's layer helpers (trtnet/network/layers.py) consult it and insert the casts
(and later the quantize/dequantize pairs) themselves, so the model code never mentions
precision. The network is strongly typed: the plan is the only place types are chosen.

Preprocessing, box decoding and NMS always run in fp32 (they are cheap and need the
range); only the convolutional components follow the plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Optional, Union

COMPONENTS = ("backbone", "fpn", "proto", "head", "flow")
PRECISIONS = ("fp32", "fp16", "int8")
ALWAYS_FP32 = ("preprocess", "detect")


class PrecisionError(ValueError):
    """A precision plan names an unknown component or precision."""


@dataclass(frozen=True)
class PrecisionPlan:
    """Per-component precision; components not listed use ``default``."""

    components: Mapping[str, str] = field(default_factory=dict)
    default: str = "fp32"

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
        if component not in COMPONENTS:
            raise PrecisionError(
                f"unknown component {component!r}; expected one of "
                f"{', '.join(COMPONENTS + ALWAYS_FP32)}"
            )
        return self.components.get(component, self.default)

    @classmethod
    def parse(cls, text: str) -> "PrecisionPlan":
        """``'fp16'`` (everything) or ``'fp16,backbone=int8,head=fp32'`` (default first)."""
        default = "fp32"
        comps: dict[str, str] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            if "=" in part:
                comp, prec = (s.strip() for s in part.split("=", 1))
                comps[comp] = prec
            else:
                default = part
        return cls(comps, default)

    def __str__(self) -> str:
        extra = ",".join(f"{c}={p}" for c, p in sorted(self.components.items()))
        return self.default + ("," + extra if extra else "")


FP32 = PrecisionPlan()
FP16 = PrecisionPlan(default="fp16")

PlanLike = Union[PrecisionPlan, str, None]


def as_plan(plan: PlanLike) -> PrecisionPlan:
    """A PrecisionPlan from a plan, its text form, or None (all fp32)."""
    if plan is None:
        return FP32
    if isinstance(plan, PrecisionPlan):
        return plan
    if isinstance(plan, str):
        return PrecisionPlan.parse(plan)
    raise TypeError(f"expected a PrecisionPlan, a string like 'fp16' or None, got {plan!r}")


def trt_dtype(trt, precision: str):
    """The TensorRT DataType activations of a ``precision`` component are kept in.

    int8 components keep fp32 activations between their Q/DQ pairs (explicit quantization).
    """
    return trt.DataType.HALF if precision == "fp16" else trt.DataType.FLOAT


def numpy_dtype(precision: str):
    """NumPy dtype of the weights of a ``precision`` component."""
    import numpy as np

    return np.float16 if precision == "fp16" else np.float32


def require_supported(plan: Optional[PrecisionPlan]) -> None:
    """int8 needs calibration scales that the builder does not take yet: say so clearly."""
    if plan is None:
        return
    used = {plan.of(c) for c in COMPONENTS}
    if "int8" in used:
        raise PrecisionError(
            "int8 components need calibration scales (trtnet.calibrate), which this build "
            f"does not support yet; plan was {plan}"
        )
