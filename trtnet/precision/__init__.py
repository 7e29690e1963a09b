"""Precision: which numeric type each component computes in, and how int8 gets its ranges.

:mod:`.plans` is the vocabulary every room uses (presets, :class:`PrecisionPlan`, dtype maps,
the names calibration measures); it imports nothing of trtnet, and the network's layer helpers
read it, so it sits at the bottom with trtnet.config and trtnet.names (and this package's
``__init__`` only re-exports it). The rest runs networks and sits above trtnet.network:
:mod:`.calibration` (entropy/KL ranges and the cache), :mod:`.int8_audit` (Q/DQ placement against
NVIDIA's recommendations), :mod:`.int8_accuracy` (fake quantization), :mod:`.conditioned` (a
well-conditioned checkpoint to judge fp16/int8 on). These may import emulator, network and
media; never builder, runtime or a command.
"""

from trtnet.precision.plans import (
    ALWAYS_FP32,
    COMPONENTS,
    FP16,
    FP32,
    PRECISIONS,
    PRESETS,
    AmaxRecorder,
    PlanLike,
    PrecisionError,
    PrecisionPlan,
    as_plan,
    calibration_name,
    numpy_dtype,
    trt_dtype,
)

__all__ = ["ALWAYS_FP32", "COMPONENTS", "FP16", "FP32", "PRECISIONS", "PRESETS", "AmaxRecorder", "PlanLike",
           "PrecisionError", "PrecisionPlan", "as_plan", "calibration_name", "numpy_dtype", "trt_dtype"]
