"""Reduced precision against fp32, and against what quantization alone predicts.

For a precision plan, three emulator passes on the same frame:

* reference: the fp32 network (exact against upstream);
* measured: the network built with the plan (casts, fp16 layers, the Q/DQ pairs the layer
  helpers insert);
* predicted: the fp32 network with quantization simulated here, independently of the Q/DQ
  code under test: each int8-component convolution reads its input rounded to
  round(x / s) * s (s = calibrated |max| / 127, per tensor) and its kernel rounded per output
  channel; each int8-component add reads its inputs rounded likewise, except a convolution's
  output read by nothing else (TensorRT fuses the add into that convolution). All in fp32.

If the network quantizes the right tensors with the right scales on the right axes, the
measured error equals the predicted one up to the fp16 rounding the int8 network adds
(activations between int8 kernels are fp16). A wrong scale, axis or tensor moves the
measured error away from the prediction (see tests/test_int8_accuracy.py).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Optional, Sequence

import numpy as np

from trtnet import names
from trtnet.precision import COMPONENTS, PlanLike, as_plan, calibration_name

COMPARED = (*names.BACKBONE, *names.FPN, names.PROTO, names.LOC, names.CONF, names.MASK)
SCORE_THRESHOLD = 0.3  # detections compared: reference score above this
MATCH_IOU = 0.5


def relative_l2(x: np.ndarray, ref: np.ndarray) -> float:
    """||x - ref|| / ||ref|| (float64)."""
    ref = np.asarray(ref, np.float64)
    return float(np.linalg.norm(np.asarray(x, np.float64) - ref) / max(np.linalg.norm(ref), 1e-30))


def fake_quantize(x: np.ndarray, scale: Any, axis: Optional[int] = None) -> np.ndarray:
    """Symmetric int8 rounding in fp32: clip(round_half_even(x / s), -128, 127) * s."""
    s = np.asarray(scale, np.float32)
    if axis is not None:
        shape = [1] * x.ndim
        shape[axis] = -1
        s = s.reshape(shape)
    return (np.clip(np.rint(x.astype(np.float32) / s), -128, 127) * s).astype(np.float32)


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    lt = np.maximum(box[:2], boxes[:, :2])
    rb = np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=1)
    area = lambda b: np.prod(np.clip(b[..., 2:] - b[..., :2], 0, None), axis=-1)  # noqa: E731
    return inter / np.maximum(area(box) + area(boxes) - inter, 1e-12)


def detection_agreement(out: Mapping[str, np.ndarray], ref: Mapping[str, np.ndarray],
                        threshold: float = SCORE_THRESHOLD) -> tuple[int, int]:
    """(matched, total): reference detections scoring above ``threshold`` that ``out`` has
    too (same class, IoU >= 0.5, any score), matched one to one in score order."""
    def dets(o):
        n = int(o[names.DET_COUNT][0])
        return o[names.DET_BOXES][0, :n], o[names.DET_SCORES][0, :n], o[names.DET_CLASSES][0, :n]

    rb, rs, rc = dets(ref)
    ob, _, oc = dets(out)
    free = np.ones(len(oc), bool)
    wanted = np.flatnonzero(rs > threshold)
    matched = 0
    for i in wanted:
        ok = free & (oc == rc[i])
        if ok.any():
            iou = np.where(ok, _iou(rb[i], ob) if len(ob) else 0.0, -1.0)
            j = int(np.argmax(iou))
            if iou[j] >= MATCH_IOU:
                free[j] = False
                matched += 1
    return matched, len(wanted)


def _layers(network: Any) -> list[Any]:
    return [network.get_layer(i) for i in range(network.num_layers)]


def _fused_into_add(network: Any) -> set[str]:
    """Names of conv(+activation) outputs read only by one add (TensorRT fuses those adds)."""
    from trtnet.precision.int8_audit import _layer_kind  # IActivationLayer.type is the ActivationType

    layers = _layers(network)
    producer = {layer.get_output(0).name: layer for layer in layers}
    readers: dict[str, int] = {}
    for layer in layers:
        for i in range(layer.num_inputs):
            t = layer.get_input(i)
            if t is not None:
                readers[t.name] = readers.get(t.name, 0) + 1
    outputs = {network.get_output(i).name for i in range(network.num_outputs)}

    def once(name: str) -> bool:
        return readers.get(name, 0) == 1 and name not in outputs

    fused = set()
    for name, layer in producer.items():
        src = layer
        if _layer_kind(src) == "ACTIVATION" and once(src.get_input(0).name):
            src = producer.get(src.get_input(0).name)
        if src is not None and _layer_kind(src) == "CONVOLUTION" and once(name):
            fused.add(name)
    return fused


@contextlib.contextmanager
def simulated_quantization(network: Any, plan: PlanLike) -> Iterator[None]:
    """While active, ``network`` (an fp32 emulator network) runs its int8-``plan`` convs and
    adds on fake-quantized inputs (see the module docstring); scales from ``plan.amax``."""
    from trtnet import emulator
    from trtnet.emulator import kernels
    from trtnet.precision.plans import component_of

    plan = as_plan(plan)
    trt = emulator.trt
    int8 = {layer.name for layer in _layers(network)
            if component_of(layer.name) in COMPONENTS and plan.of(component_of(layer.name)) == "int8"}
    convs, adds = {}, {}
    fused = _fused_into_add(network)
    for layer in _layers(network):
        if layer.name not in int8:
            continue
        if layer.type == trt.LayerType.CONVOLUTION:
            convs[id(layer)] = layer
        elif (layer.type == trt.LayerType.ELEMENTWISE and layer.op == trt.ElementWiseOperation.SUM
              and len(tuple(layer.get_input(0).shape)) == 4
              and tuple(layer.get_input(0).shape) == tuple(layer.get_input(1).shape)):
            adds[id(layer)] = layer  # residual / top-down adds of feature maps

    if not convs:  # nothing of this network is int8 (the keyframe network of a flow-only plan)
        yield
        return

    def scale_of(tensor: Any) -> float:
        return float(plan.amax[calibration_name(tensor.name)]) / 127.0

    conv_class = type(next(iter(convs.values())))
    add_class = type(next(iter(adds.values()))) if adds else None
    conv_plain = conv_class._execute
    add_plain = add_class._execute if add_class else None
    kernels_q: dict[int, np.ndarray] = {}

    def conv_execute(layer: Any, xs: list) -> list:
        if id(layer) not in convs:
            return conv_plain(layer, xs)
        k, ks, st, pre, post, dil, groups = layer._geometry()
        x = fake_quantize(xs[0], scale_of(layer.get_input(0)))
        if id(layer) not in kernels_q:
            w = np.asarray(layer.kernel.numpy(), np.float32).reshape(k, -1, *ks)
            amax = np.abs(w.reshape(k, -1)).max(axis=1)
            kernels_q[id(layer)] = fake_quantize(w, np.where(amax > 0, amax / 127.0, 1.0), axis=0)
        bias = layer.bias.numpy().astype(np.float32) if layer.bias.size else None
        return [kernels.conv2d(x, kernels_q[id(layer)], bias, st, pre, post, dil, groups)]

    def add_execute(layer: Any, xs: list) -> list:
        if id(layer) in adds:
            xs = [x if layer.get_input(i).name in fused else fake_quantize(x, scale_of(layer.get_input(i)))
                  for i, x in enumerate(xs)]
        return add_plain(layer, xs)

    conv_class._execute = conv_execute
    if add_class:
        add_class._execute = add_execute
    try:
        yield
    finally:
        conv_class._execute = conv_plain
        if add_class:
            add_class._execute = add_plain


@dataclass
class PrecisionReport:
    """Per-tensor relative L2 errors vs fp32 (measured, predicted) and detection agreement."""

    plan: str
    measured: dict[str, float] = field(default_factory=dict)
    predicted: dict[str, float] = field(default_factory=dict)
    detections: tuple[int, int] = (0, 0)


def run_network(builder: Any, weights: Any, config: Any, inputs: Mapping[str, np.ndarray], plan: PlanLike,
                fetch: Sequence[str], *, simulate: Optional[PlanLike] = None,
                outputs: bool = True) -> dict[str, np.ndarray]:
    """Build with ``builder`` (build_keyframe / build_nonkeyframe) on the emulator and run;
    with ``simulate``, the (fp32) network runs under :func:`simulated_quantization`;
    ``outputs=False``: only what ``fetch`` needs runs."""
    from trtnet import emulator

    net = emulator.Network()
    tensors = builder(net, emulator.trt, weights, config, plan=plan)  # noqa: F841 - keeps the weights alive
    with (simulated_quantization(net, simulate) if simulate is not None
          else contextlib.nullcontext()):
        return emulator.run(net, dict(inputs), fetch=list(fetch), outputs=outputs)


def compare(out: Mapping[str, np.ndarray], ref: Mapping[str, np.ndarray],
            tensors: Sequence[str] = COMPARED) -> dict[str, float]:
    return {t: relative_l2(out[t], ref[t]) for t in tensors if t in out and t in ref}


def format_reports(reports: Sequence[PrecisionReport], tensors: Sequence[str] = COMPARED) -> str:
    """Rows: plan; columns: tensors as measured/predicted relative L2 (%), detections."""
    short = [t.split("/")[-1] for t in tensors]
    lines = [f"{'plan':<18}" + "".join(f"{s:>13}" for s in short) + "   dets>0.3 matched"]
    for r in reports:
        cells = []
        for t in tensors:
            m, p = r.measured.get(t), r.predicted.get(t)
            cells.append("-" if m is None else f"{100 * m:.2f}" + ("" if p is None else f"/{100 * p:.2f}"))
        matched, total = r.detections
        lines.append(f"{r.plan:<18}" + "".join(f"{c:>13}" for c in cells) + f"   {matched}/{total}")
    return "\n".join(lines)
