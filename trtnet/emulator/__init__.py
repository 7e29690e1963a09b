"""NumPy emulator of the TensorRT ``INetworkDefinition`` subset trtnet uses.

Usage (the model code is the same as for real TensorRT)::

    from trtnet import emulator
    net = emulator.Network()            # strongly typed, like TRT 11
    trt = emulator.trt                  # same names as the ``tensorrt`` module
    x = net.add_input("frame", trt.DataType.UINT8, (1, -1, -1, 3))
    ...
    out = emulator.run(net, {"frame": img}, fetch=["backbone/C3"])   # outputs + C3
    c3 = emulator.run(net, {"frame": img}, fetch=["backbone/C3"], outputs=False)  # C3 only

Layers follow TensorRT's documented semantics (NvInfer.h), not PyTorch's; the
graph is recorded, then executed in NumPy (only the layers the requested tensors
need; intermediates are freed after their last use). Choices worth knowing:

* Strongly typed like TensorRT 11 (and 10.x with STRONGLY_TYPED): types flow from
  inputs and constants; mismatches (elementwise of FLOAT and HALF, convolution of
  INT8, ...) raise ``EmulatorTypeError`` at ``add_*`` time. Per-layer precision
  does not exist; use ``add_cast`` or Q/DQ. Convolution weights must have the
  input's type (conservative: what passes here builds on TensorRT).
* HALF tensors are computed in float32 and each layer's result is rounded to
  float16 -- an approximation of TensorRT's fp16 kernels (which may accumulate in
  fp16 or fp32 and fuse layers).
* Quantize: ``clamp(round_half_even(x / scale), -128, 127)``; dequantize ``q * scale``.
* Cast float -> integer truncates toward zero; float -> UINT8 outside [0, 256) raises
  (undefined in TensorRT).
* Resize LINEAR/NEAREST with the NvInfer.h coordinate formulas, source indices
  clamped to the input (HALF_PIXEL + LINEAR reproduces PyTorch bilinear,
  align_corners=False); CUBIC is not emulated.
* Plugins (FastNMS, InverseWarp) run through CPU twins computing with
  :mod:`trtnet.plugins.reference`, found via ``trt.get_plugin_registry()``.
* At least as strict as TensorRT: attribute writes the real class does not have
  raise; layer names and tensor names must be unique (checked by ``validate``, which ``run``
  calls); Q/DQ, cast and unary type rules of NvInfer.h 10.3 and 11.1 (the stricter of the two);
  a builder config with TF32 (TensorRT's default) is refused (``run(..., config=)``).
* ``network.usage`` records the API calls, attributes and enum members used, and
  ``trt.names_used`` the names read from ``emulator.trt``; tests check them against
  the real TensorRT bindings (tests/test_trt_conformance.py).

Room rule: the emulator imports only trtnet.plugins (the CPU twins and specs) and
trtnet.names/config; everything above it (network, precision, builder, runtime) may use it.
Inside, ``trt_types`` holds the types and enums and ``trt`` re-exports them, so layers import
``trt_types`` and no module here imports ``trt`` back.
"""

from __future__ import annotations

from . import trt
from .layers import EmulatorTypeError
from .network import ITensor, Network
from .builder import EmulatorConfigError
from .executor import run, summary, validate

__all__ = ["Network", "ITensor", "EmulatorTypeError", "EmulatorConfigError", "trt", "run", "summary", "validate"]
