"""Emulated ``IBuilderConfig``: the builder defaults that change numerics, modelled or refused.

TensorRT's builder config starts with ``BuilderFlag.TF32`` set: NvInfer.h (10.3 l.8317-8320,
11.1 l.9973-9976) "Allow (but not require) computations on tensors of type DataType::kFLOAT to
use TF32. TF32 computes inner products by rounding the inputs to 10-bit mantissas before
multiplying [...]. Enabled by default." Whether TensorRT then picks a TF32 tactic depends on
the GPU and the timing, so the emulator cannot know the result: it refuses to stand in for
such a build (:func:`check_config`) as soon as the network has a FLOAT convolution or matrix
multiply. Clear the flag (``config.clear_flag(trt.BuilderFlag.TF32)``) to get the exact fp32
numerics the emulator computes.

Of the other flags, those present in both 10.3 and 11.4 with the same value are listed in
``trt.BuilderFlag``; none of them is set by default, and none changes numerics except
SPARSE_WEIGHTS (left out, so it cannot be set here).

TensorRT 11 has one more default that changes numerics: ``kSTRICT_NANS`` is unset, i.e. the
builder may apply "0*x => 0, x-x => 0, or x/x => 1. These identities are not true when x is a
NaN or Inf" (NvInfer.h 11.1 l.10071-10072). The flag does not exist in 10.3, so it is not in the
emulator's enum; instead :func:`check_foldable_identities` refuses the networks where the
folding could apply (a SUB or DIV of a tensor with itself, a PROD with an all-zero constant),
whatever the config, as the emulator would compute NaN where TensorRT 11 may give 0 or 1.
"""

from __future__ import annotations

from . import trt_types as trt  # not .trt: that module re-exports this one's names


class EmulatorConfigError(ValueError):
    """A builder setting makes TensorRT's numerics differ from what the emulator computes."""


class IBuilderConfig:
    """Builder flags, with TensorRT's defaults (``trt.Builder.create_builder_config()``)."""

    __slots__ = ("_flags",)

    def __init__(self) -> None:
        self._flags = 1 << trt.BuilderFlag.TF32.value  # "Enabled by default" (see module docstring)

    @property
    def flags(self) -> int:
        """Bitmask of ``1 << BuilderFlag`` values, like the real property."""
        return self._flags

    @flags.setter
    def flags(self, value: int) -> None:
        self._flags = int(value)

    def set_flag(self, flag: trt.BuilderFlag) -> None:
        self._flags |= 1 << _flag(flag).value

    def clear_flag(self, flag: trt.BuilderFlag) -> None:
        self._flags &= ~(1 << _flag(flag).value)

    def get_flag(self, flag: trt.BuilderFlag) -> bool:
        return bool(self._flags >> _flag(flag).value & 1)


def _flag(flag) -> trt.BuilderFlag:
    if not isinstance(flag, trt.BuilderFlag):
        raise TypeError(f"expected a trt.BuilderFlag, got {flag!r}")
    return flag


def check_config(network, config: IBuilderConfig) -> None:
    """Refuse a builder config whose numerics the emulator does not reproduce for ``network``."""
    from . import layers as L

    if not config.get_flag(trt.BuilderFlag.TF32):
        return
    for layer in network._layers:
        if isinstance(layer, (L.IConvolutionLayer, L.IMatrixMultiplyLayer)) and \
                layer._output_dtypes()[0] == trt.DataType.FLOAT:
            raise EmulatorConfigError(
                f"BuilderFlag.TF32 is set (TensorRT's default, NvInfer.h kTF32 \"Enabled by default\"): "
                f"TensorRT may compute FLOAT layers such as {layer._name!r} ({type(layer).__name__}) with "
                "10-bit mantissas, which the emulator does not reproduce; clear it with "
                "config.clear_flag(trt.BuilderFlag.TF32) for fp32 numerics")


def check_foldable_identities(network) -> None:
    """Refuse the elementwise patterns TensorRT 11 folds by default (see the module docstring)."""
    from . import layers as L

    E = trt.ElementWiseOperation
    for layer in network._layers:
        if not isinstance(layer, L.IElementWiseLayer):
            continue
        op, (a, b) = layer._get("op"), layer._inputs[:2]
        folded = None
        if op in (E.SUB, E.DIV) and a is b:
            folded = f"{op.name} of {a._name!r} with itself"
        elif op == E.PROD:
            for t in (a, b):
                if isinstance(t._producer, L.IConstantLayer) and t._producer._get("weights").size \
                        and not t._producer._get("weights").numpy().any():
                    folded = f"PROD with the all-zero constant {t._name!r}"
        if folded:
            raise EmulatorConfigError(
                f"{layer._name}: {folded}: TensorRT 11's builder may fold it (0*x => 0, x-x => 0, x/x => 1 unless "
                "BuilderFlag.STRICT_NANS, NvInfer.h 11.1), which differs from the emulator for NaN/Inf inputs; "
                "compute the constant result directly")
