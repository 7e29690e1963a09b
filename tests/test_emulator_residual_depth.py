"""Emulator cost on residual networks (filed by the network helper for the emulator owner).

Shape and dtype inference recurse through every path of the graph without memoising, so
their cost doubles with each residual block: ``x = x + f(x)`` gives 2**depth paths.
ResNet-50 has 16 blocks (MobileNetV2: 10, plus FPN adds); a MobileNetV2 keyframe pass takes
~150 s of which most is shape inference, ResNet-50 does not finish. The count below is
the number of ITensor._shape evaluations for ONE shape query at the end of a chain of 16
residual adds: linear inference needs a few dozen, exponential 2**16.
"""

from __future__ import annotations

from trtnet import emulator
from trtnet.emulator.tensor import ITensor


def test_shape_query_is_linear_in_residual_depth(monkeypatch):
    trt = emulator.trt
    net = emulator.Network()
    x = net.add_input("x", trt.DataType.FLOAT, (1, 4, 8, 8))
    for _ in range(16):
        y = net.add_activation(x, trt.ActivationType.RELU).get_output(0)
        x = net.add_elementwise(x, y, trt.ElementWiseOperation.SUM).get_output(0)
    calls = {"n": 0}
    original = ITensor._shape

    def counting(self):
        calls["n"] += 1
        return original(self)

    monkeypatch.setattr(ITensor, "_shape", counting)
    assert tuple(x.shape) == (1, 4, 8, 8)
    assert calls["n"] < 1000, f"{calls['n']} shape evaluations for one query (exponential in depth)"
