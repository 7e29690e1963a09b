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
graph is recorded, then executed in NumPy. HALF tensors are computed in float32
and rounded to float16 per layer, approximating TensorRT's fp16 kernels.
"""

from __future__ import annotations

from . import trt
from .network import ITensor, Network
from .executor import run

__all__ = ["Network", "ITensor", "trt", "run"]
