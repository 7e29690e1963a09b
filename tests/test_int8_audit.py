"""INT8 placement (trtnet.precision.int8_audit): every int8 preset meets NVIDIA's Q/DQ placement targets,
with the type rules of TensorRT 10.3 and 11 on every Q/DQ pair; the audit itself catches
each kind of misplacement (tiny hand-built networks).

The network tests build graphs only (random weights, placeholder scales): about 20 s.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

from trtnet import emulator
from trtnet.network.random_weights import random_weights
from trtnet.precision.int8_audit import FP16_TARGET, ComponentAudit, audit, audit_plan, format_audit, report_lines
from trtnet.network import build_keyframe, build_nonkeyframe
from trtnet.network.layers import RELU, Graph, add, conv
from trtnet.precision import PRESETS, AmaxRecorder, as_plan
from trtnet.network.weights import WeightStore

trt = emulator.trt
INT8_PRESETS = [name for name, plan in PRESETS.items() if plan.uses_int8]
NETWORKS = [("yolact_edge_mobilenetv2", False), ("yolact_edge_vid_resnet50", True)]


@functools.lru_cache(maxsize=None)
def _weights(config: str) -> WeightStore:
    return WeightStore.load(random_weights(config))


@functools.lru_cache(maxsize=None)
def _built(config: str, nonkeyframe: bool, preset: str):
    net = emulator.Network()
    builder = build_nonkeyframe if nonkeyframe else build_keyframe
    tensors = builder(net, trt, _weights(config), config, plan=as_plan(preset).with_amax(AmaxRecorder()))
    return net, tensors


@pytest.mark.parametrize("preset", INT8_PRESETS)
@pytest.mark.parametrize("config, nonkeyframe", NETWORKS, ids=["mobilenetv2-keyframe", "vid_resnet50-nonkeyframe"])
def test_every_int8_preset_meets_the_placement_targets(config, nonkeyframe, preset):
    net, _ = _built(config, nonkeyframe, preset)
    rows = audit(net, preset)
    int8 = [c for c in ("backbone", "fpn", "proto", "head", "flow") if as_plan(preset).of(c) == "int8"]
    present = [r.component for r in rows]
    assert set(present) <= set(int8) and "backbone" in present
    for r in rows:  # 100% convs, 100% adds, >= 95% fp16 (in fact all)
        assert r.convs > 0 and r.convs_quantized == r.convs, format_audit(rows)
        assert r.adds_fusable == r.adds and r.dequantized_fp16 == r.dequantized > 0, format_audit(rows)
        assert r.ok and not r.problems
    if nonkeyframe and as_plan(preset).of("flow") == "int8":  # SPA's two residual adds
        assert next(r for r in rows if r.component == "flow").adds == 2


@pytest.mark.parametrize("preset", ["int8_all", "int8_backbone_fpn"])
@pytest.mark.parametrize("config, nonkeyframe", NETWORKS, ids=["mobilenetv2-keyframe", "vid_resnet50-nonkeyframe"])
def test_every_qdq_pair_follows_the_strongly_typed_rules_of_both_versions(config, nonkeyframe, preset):
    # NvInfer.h 10.3: Q input type == scale type; DQ output type inferred from the scale type.
    # 11.1: a HALF scale must match the Q input; DQ to_type explicit. Per-tensor scales are
    # 0-D; per-channel (1-D) only on constant weights, axis 0 (output channels).
    net, _ = _built(config, nonkeyframe, preset)
    layers = [net.get_layer(i) for i in range(net.num_layers)]
    producer = {layer.get_output(0).name: layer for layer in layers}
    qs = [layer for layer in layers if layer.type == trt.LayerType.QUANTIZE]
    dqs = [layer for layer in layers if layer.type == trt.LayerType.DEQUANTIZE]
    assert qs and len(qs) == len(dqs)
    for q in qs:
        x, scale = q.get_input(0), q.get_input(1)
        assert scale.dtype == x.dtype, q.name
        assert producer[scale.name].type == trt.LayerType.CONSTANT
        if len(tuple(scale.shape)) == 1:
            assert producer[x.name].type == trt.LayerType.CONSTANT and q.axis == 0, q.name
        else:
            assert tuple(scale.shape) == (), q.name
    for dq in dqs:
        assert dq.get_output(0).dtype == dq.get_input(1).dtype == trt.DataType.HALF, dq.name
        assert producer[dq.get_input(0).name].type == trt.LayerType.QUANTIZE


def test_outputs_of_int8_components_carry_no_qdq():
    # "none on outputs": no Q reads a tensor that only a Q reads, and no network output is a DQ.
    net, tensors = _built("yolact_edge_mobilenetv2", False, "int8_all")
    outputs = [net.get_output(i) for i in range(net.num_outputs)]
    producer = {net.get_layer(i).get_output(0).name: net.get_layer(i) for i in range(net.num_layers)}
    assert all(t.name not in producer or producer[t.name].type != trt.LayerType.DEQUANTIZE for t in outputs)


def test_the_dry_run_prints_the_audit_per_component(tmp_path, capsys):
    from safetensors.numpy import save_file

    from trtnet import build

    path = tmp_path / "m.safetensors"
    save_file(random_weights("yolact_edge_mobilenetv2"), str(path))
    assert build.main(["--weights", str(path), "--precision-plan", "int8_backbone_fpn", "--dry-run"]) == 0
    out = capsys.readouterr().out
    section = out.split("int8 audit:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert [line.split()[0] for line in section[1:]] == ["backbone", "fpn"]
    assert section[1].split()[1:] == ["52/52", "(100%)", "10/10", "(100%)", "52/52", "(100%)", "met"]
    net, _ = _built("yolact_edge_mobilenetv2", False, "int8_backbone_fpn")
    assert [f"  {line}" for line in report_lines(net, trt, "int8_backbone_fpn")] == section


def test_audit_plan_formats_one_row_per_int8_component():
    rows = audit_plan(_weights("yolact_edge_mobilenetv2"), "yolact_edge_mobilenetv2", "int8_backbone_fpn")
    text = format_audit(rows, "keyframe")
    assert [r.component for r in rows] == ["backbone", "fpn"]
    assert text.splitlines()[1].split() == ["backbone", "52/52", "(100%)", "10/10", "(100%)", "52/52", "(100%)", "met"]
    assert format_audit([], "keyframe") == "keyframe: no int8 component"


# -- the audit catches each misplacement ----------------------------------------------------


def _tiny_graph(plan: str = "int8_backbone") -> Graph:
    rng = np.random.default_rng(0)
    w = {f"backbone.c{i}.{k}": (rng.standard_normal(s) * 0.1).astype(np.float32)
         for i in range(3) for k, s in (("weight", (4, 4, 3, 3)), ("bias", (4,)))}
    return Graph(emulator.Network(), trt, w, as_plan(plan).with_amax(AmaxRecorder()))


def _residual_block(g: Graph, **add_kw):
    x = g.network.add_input("x", trt.DataType.FLOAT, (1, 4, 8, 8))
    y = conv(g, x, "backbone.c0", act=RELU, component="backbone")
    z = conv(g, y, "backbone.c1", component="backbone")
    return x, y, add(g, z, y, "backbone.add", component="backbone", **add_kw)


def _audit(g: Graph) -> ComponentAudit:
    (row,) = audit(g.network, g.plan)
    return row


def test_a_correct_residual_block_passes():
    g = _tiny_graph()
    _residual_block(g)
    row = _audit(g)
    assert (row.convs, row.convs_quantized, row.adds, row.adds_fusable) == (2, 2, 1, 1)
    assert (row.dequantized, row.dequantized_fp16) == (2, 2) and row.ok  # y's pair is shared


def test_a_conv_branch_read_twice_cannot_fuse():
    g = _tiny_graph()
    x, y, out = _residual_block(g)
    z = g.network.get_layer([g.network.get_layer(i).name for i in range(g.network.num_layers)].index("backbone.add")).get_input(0)
    g.network.mark_output(z)  # the branch conv's output is now read beyond the add
    row = _audit(g)
    assert row.adds_fusable == 0 and "backbone.add: input backbone.c1 is neither a DQ output nor a fusable convolution" in row.problems


def test_a_kernel_without_per_channel_qdq_is_reported():
    g = _tiny_graph()
    x = g.network.add_input("x", trt.DataType.FLOAT, (1, 4, 8, 8))
    conv(g, x, "backbone.c0", component="backbone")
    conv_layer = next(g.network.get_layer(i) for i in range(g.network.num_layers)
                      if g.network.get_layer(i).name == "backbone.c0")
    q = next(g.network.get_layer(i) for i in range(g.network.num_layers)
             if g.network.get_layer(i).name == "backbone.c0.kernel.quantize")
    q.axis = 1  # wrong per-channel axis (4 input channels: the shape still fits)
    row = _audit(g)
    assert row.convs_quantized == 0 and row.problems == ["backbone.c0: convolution without Q/DQ on its input and kernel"]
    assert conv_layer.num_inputs == 2


def test_an_unquantized_residual_input_is_reported():
    g = _tiny_graph()
    x = g.network.add_input("x", trt.DataType.HALF, (1, 4, 8, 8))
    z = conv(g, x, "backbone.c0", component="backbone")
    layer = g.network.add_elementwise(z, x, trt.ElementWiseOperation.SUM)  # identity without Q/DQ
    layer.name = "backbone.add"
    row = _audit(g)
    assert row.adds == 1 and row.adds_fusable == 0 and not row.ok
    assert row.problems == ["backbone.add: input x is neither a DQ output nor a fusable convolution"]


@pytest.mark.parametrize("fp16, ok", [(19, True), (18, False)])
def test_the_fp16_target_is_95_percent_inclusive(fp16, ok):
    assert FP16_TARGET == 0.95
    assert ComponentAudit("backbone", dequantized=20, dequantized_fp16=fp16).ok is ok


def test_every_kernel_channel_spans_the_int8_range():
    # Per output channel, scale = max|k| / 127 (in fp16, rounded up): the largest weight of a
    # channel quantizes to +-127, none clips. A scale 25% too large (max |q| = 102) or too
    # small (clipping) fails here, where the accuracy band could miss it (kernel rounding is a
    # small part of the int8 error).
    net, _ = _built("yolact_edge_mobilenetv2", False, "int8_backbone")
    layers = [net.get_layer(i) for i in range(net.num_layers)]
    producer = {layer.get_output(0).name: layer for layer in layers}
    checked = 0
    for q in layers:
        if q.type != trt.LayerType.QUANTIZE or producer[q.get_input(0).name].type != trt.LayerType.CONSTANT:
            continue
        kernel = producer[q.get_input(0).name].weights.numpy().astype(np.float32)
        scale = producer[q.get_input(1).name].weights.numpy().astype(np.float32)
        steps = np.abs(kernel.reshape(len(scale), -1)).max(axis=1) / scale
        # rounding the scale up to fp16 costs at most one ulp (2**-10 relative)
        assert np.all(steps <= 127.0) and np.all(steps[steps > 0] >= 127.0 / (1 + 2.0 ** -10)), q.name
        checked += 1
    assert checked == 52
