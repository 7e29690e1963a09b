"""The emulated network as a whole: strong typing errors, dynamic dims, inputs, fetch, plugins."""

from __future__ import annotations

import numpy as np
import pytest

import emulator_every_op
from trtnet import emulator
from trtnet.emulator.layers import EmulatorTypeError

trt = emulator.trt


def _conv(net, x, dtype=np.float32, c=3, k=4):
    w = np.ones((k, c, 3, 3), dtype)
    return net.add_convolution_nd(x, k, (3, 3), trt.Weights(w))


# --- strongly typed rules ----------------------------------------------------------------------
def test_elementwise_of_mismatched_types_is_rejected_naming_both_tensors():
    net = emulator.Network()
    a = net.add_input("a", trt.float32, (1, 3))
    b = net.add_input("b", trt.float16, (1, 3))
    with pytest.raises(EmulatorTypeError, match=r"SUM of 'a' \(FLOAT\) and 'b' \(HALF\).*same type"):
        net.add_elementwise(a, b, trt.ElementWiseOperation.SUM)


def test_convolution_of_an_int8_tensor_is_rejected():
    net = emulator.Network()
    x = net.add_input("q", trt.int8, (1, 3, 8, 8))
    with pytest.raises(EmulatorTypeError, match="'q' is INT8.*DequantizeLayer"):
        _conv(net, x, np.int8)


def test_convolution_weights_must_match_the_input_type():
    net = emulator.Network()
    x = net.add_input("x", trt.float16, (1, 3, 8, 8))
    with pytest.raises(EmulatorTypeError, match="kernel weights are FLOAT but input 'x' is HALF"):
        _conv(net, x, np.float32)


def test_activation_on_uint8_is_rejected():
    net = emulator.Network()
    x = net.add_input("frame", trt.uint8, (1, 4))
    with pytest.raises(EmulatorTypeError, match="UINT8 is not allowed.*allowed: FLOAT, HALF"):
        net.add_activation(x, trt.ActivationType.RELU)


def test_concatenation_of_mixed_types_is_rejected():
    net = emulator.Network()
    a = net.add_input("a", trt.float32, (1, 3))
    b = net.add_input("b", trt.float16, (1, 3))
    with pytest.raises(EmulatorTypeError, match="same type"):
        net.add_concatenation([a, b])


def test_cast_to_int8_points_to_quantize():
    net = emulator.Network()
    a = net.add_input("a", trt.float32, (1, 3))
    with pytest.raises(EmulatorTypeError, match="add_quantize"):
        net.add_cast(a, trt.DataType.INT8)


def test_elementwise_needs_equal_ranks():
    net = emulator.Network()
    a = net.add_input("a", trt.float32, (1, 3, 4))
    b = net.add_input("b", trt.float32, (3, 4))
    layer = net.add_elementwise(a, b, trt.ElementWiseOperation.SUM)
    with pytest.raises(ValueError, match="same rank"):
        layer.get_output(0).shape


def test_wrong_kernel_size_names_the_expected_layout():
    net = emulator.Network()
    x = net.add_input("x", trt.float32, (1, 3, 8, 8))
    conv = net.add_convolution_nd(x, 4, (3, 3), trt.Weights(np.ones(10, np.float32)))
    with pytest.raises(ValueError, match=r"kernel has 10 values, expected 108 = 4 x 3 x 3 x 3"):
        conv.get_output(0).shape


# --- dynamic dims, inputs -------------------------------------------------------------------------
def test_dynamic_dims_resolve_at_run_time():
    net = emulator.Network()
    x = net.add_input("x", trt.float32, (1, 3, -1, -1))
    conv = _conv(net, x)
    conv.stride_nd, conv.padding_nd = (2, 2), (1, 1)
    assert tuple(conv.get_output(0).shape) == (1, 4, -1, -1)
    conv.get_output(0).name = "y"
    net.mark_output(conv.get_output(0))
    for h, w in ((9, 10), (20, 7)):
        y = emulator.run(net, {"x": np.zeros((1, 3, h, w), np.float32)})["y"]
        assert y.shape == (1, 4, (h + 1) // 2, (w + 1) // 2)


def test_input_of_the_wrong_dtype_is_rejected():
    net = emulator.Network()
    x = net.add_input("frame", trt.uint8, (1, -1, -1, 3))
    net.mark_output(net.add_identity(x).get_output(0))
    with pytest.raises(TypeError, match="input 'frame' is UINT8 .*got a float32 array"):
        emulator.run(net, {"frame": np.zeros((1, 4, 4, 3), np.float32)})


def test_input_of_the_wrong_shape_is_rejected():
    net = emulator.Network()
    x = net.add_input("frame", trt.uint8, (1, -1, -1, 3))
    net.mark_output(net.add_identity(x).get_output(0))
    with pytest.raises(ValueError, match=r"must have shape \(1, -1, -1, 3\)"):
        emulator.run(net, {"frame": np.zeros((1, 4, 4, 4), np.uint8)})


def test_missing_and_unknown_inputs_are_named():
    net = emulator.Network()
    x = net.add_input("x", trt.float32, (2,))
    net.mark_output(net.add_identity(x).get_output(0))
    with pytest.raises(KeyError, match="missing input 'x'"):
        emulator.run(net, {})
    with pytest.raises(KeyError, match=r"unknown input\(s\) \['y'\]"):
        emulator.run(net, {"x": np.zeros(2, np.float32), "y": np.zeros(2, np.float32)})


# --- fetch ----------------------------------------------------------------------------------------
def test_fetch_returns_named_intermediates_and_runs_only_what_they_need():
    net = emulator.Network()
    x = net.add_input("x", trt.float32, (1, 3, 6, 6))
    conv = _conv(net, x)
    conv.get_output(0).name = "conv"
    relu = net.add_activation(conv.get_output(0), trt.ActivationType.RELU)
    relu.get_output(0).name = "relu"
    bad = net.add_resize(relu.get_output(0))  # never configured: running it would fail
    net.mark_output(bad.get_output(0))
    out = emulator.run(net, {"x": np.ones((1, 3, 6, 6), np.float32)}, fetch=["conv", "relu"], outputs=False)
    assert set(out) == {"conv", "relu"}
    assert out["conv"][0, 0, 2, 2] == 27.0  # 3x3x3 ones


def test_fetch_adds_to_the_marked_outputs():
    net = emulator.Network()
    x = net.add_input("x", trt.float32, (2,))
    a = net.add_unary(x, trt.UnaryOperation.NEG)
    a.get_output(0).name = "neg"
    b = net.add_unary(a.get_output(0), trt.UnaryOperation.ABS)
    b.get_output(0).name = "abs"
    net.mark_output(b.get_output(0))
    out = emulator.run(net, {"x": np.array([1.0, -2.0], np.float32)}, fetch=["neg"])
    assert out["neg"].tolist() == [-1.0, 2.0] and out["abs"].tolist() == [1.0, 2.0]


def test_fetching_an_unknown_name_is_an_error():
    net = emulator.Network()
    net.add_input("x", trt.float32, (1,))
    with pytest.raises(KeyError, match="no tensor named 'nope'"):
        emulator.run(net, {"x": np.zeros(1, np.float32)}, fetch=["nope"])


# --- plugins ------------------------------------------------------------------------------------
def _plugin(name, **fields):
    from trtnet.plugins import specs

    creator = trt.get_plugin_registry().get_creator(name, "1", "trtnet")
    return specs.get_spec(name).create_plugin(trt, creator, name, fields)


def test_registry_returns_none_for_unknown_plugins():
    assert trt.get_plugin_registry().get_creator("NoSuchPlugin", "1", "trtnet") is None


def test_fast_nms_plugin_layer_has_the_spec_outputs():
    net = emulator.Network()
    boxes = net.add_input("boxes", trt.float32, (1, 50, 4))
    scores = net.add_input("scores", trt.float32, (1, 50, 5))
    coeffs = net.add_input("coeffs", trt.float32, (1, 50, 8))
    layer = net.add_plugin_v3([boxes, scores, coeffs], [], _plugin("FastNMS", max_det=7))
    names = ["count", "boxes", "scores", "classes", "coeffs"]
    for i, n in enumerate(names):
        layer.get_output(i).name = f"det/{n}"
        net.mark_output(layer.get_output(i))
    rng = np.random.default_rng(0)
    xy = rng.random((1, 50, 2), dtype=np.float32) * 0.8
    b = np.concatenate([xy, xy + 0.1], axis=2).astype(np.float32)
    s = rng.random((1, 50, 5), dtype=np.float32)
    s /= s.sum(axis=2, keepdims=True)
    out = emulator.run(net, {"boxes": b, "scores": s, "coeffs": rng.standard_normal((1, 50, 8)).astype(np.float32)})
    assert out["det/count"].dtype == np.int32 and out["det/count"].shape == (1,)
    assert out["det/boxes"].shape == (1, 7, 4) and out["det/classes"].dtype == np.int32
    assert out["det/coeffs"].shape == (1, 7, 8)
    assert 0 < out["det/count"][0] <= 7


def test_plugin_with_an_unknown_field_is_an_error():
    creator = trt.get_plugin_registry().get_creator("FastNMS", "1", "trtnet")
    field = trt.PluginField("topk", np.array([1], np.int32), trt.PluginFieldType.INT32)  # alive until the call
    with pytest.raises(KeyError, match="unknown field"):
        creator.create_plugin("nms", trt.PluginFieldCollection([field]), trt.TensorRTPhase.BUILD)


def test_inverse_warp_with_zero_flow_is_the_identity():
    net = emulator.Network()
    feat = net.add_input("feat", trt.float32, (1, 3, 5, 6))
    flow = net.add_input("flow", trt.float32, (1, 2, 5, 6))
    layer = net.add_plugin_v3([feat, flow], [], _plugin("InverseWarp"))
    layer.get_output(0).name = "warped"
    net.mark_output(layer.get_output(0))
    f = np.random.default_rng(0).standard_normal((1, 3, 5, 6)).astype(np.float32)
    out = emulator.run(net, {"feat": f, "flow": np.zeros((1, 2, 5, 6), np.float32)})["warped"]
    np.testing.assert_allclose(out, f, rtol=1e-6, atol=1e-6)


# --- the every-op network -------------------------------------------------------------------------
def test_every_op_network_runs_for_two_frame_sizes():
    net = emulator.Network()
    emulator_every_op.build(net, trt)
    for h, w in ((40, 30), (17, 64)):
        frame = np.random.default_rng(h).integers(0, 256, (1, h, w, 3), dtype=np.uint8)
        out = emulator.run(net, {"frame": frame})
        assert out["t/reduce"].shape == (1, 64) and np.isfinite(out["t/reduce"]).all()
        assert out["t/shape"].tolist() == [1, 64, 2]
        assert out["t/plugin_v3"].shape == (1, 8, 8, 8)


def test_per_layer_precision_is_refused_in_a_strongly_typed_network():
    net = emulator.Network()
    x = net.add_input("x", trt.float32, (1, 3))
    layer = net.add_activation(x, trt.ActivationType.RELU)
    with pytest.raises(AttributeError, match="strongly typed.*add_cast"):
        layer.set_output_type(0, trt.DataType.HALF)


def test_summary_lists_every_layer_with_its_output_shape_and_type():
    net = emulator.Network()
    x = net.add_input("x", trt.float32, (1, 3, -1, -1))
    conv = _conv(net, x)
    conv.name = "backbone.conv1"
    text = emulator.summary(net)
    assert "input  x: (1, 3, -1, -1) FLOAT" in text
    assert "backbone.conv1 [Convolution] -> " in text and "(1, 4, -1, -1) FLOAT" in text


def test_outputs_need_unique_names():
    net = emulator.Network()
    x = net.add_input("x", trt.float32, (2,))
    for op in (trt.UnaryOperation.ABS, trt.UnaryOperation.NEG):
        layer = net.add_unary(x, op)
        layer.get_output(0).name = "y"
        net.mark_output(layer.get_output(0))
    with pytest.raises(ValueError, match=r"repeated tensor name\(s\) \['y'\]"):
        emulator.run(net, {"x": np.zeros(2, np.float32)})


def _constant_branch_network():
    net = emulator.Network()
    x = net.add_input("x", trt.float32, (2,))
    c = net.add_constant((2,), trt.Weights(np.array([-1.0, 2.0], np.float32)))
    u = net.add_unary(c.get_output(0), trt.UnaryOperation.ABS)
    s = net.add_elementwise(x, u.get_output(0), trt.ElementWiseOperation.SUM)
    s.get_output(0).name = "y"
    net.mark_output(s.get_output(0))
    return net, u


def test_layers_fed_only_by_constants_are_computed_once(monkeypatch):
    from trtnet.emulator import layers

    net, _ = _constant_branch_network()
    calls = []
    original = layers.IUnaryLayer._execute
    monkeypatch.setattr(layers.IUnaryLayer, "_execute", lambda self, xs: calls.append(1) or original(self, xs))
    for _ in range(3):
        y = emulator.run(net, {"x": np.zeros(2, np.float32)})["y"]
    assert y.tolist() == [1.0, 2.0] and len(calls) == 1


def test_changing_an_attribute_invalidates_folded_constants():
    net, unary = _constant_branch_network()
    assert emulator.run(net, {"x": np.zeros(2, np.float32)})["y"].tolist() == [1.0, 2.0]
    unary.op = trt.UnaryOperation.NEG
    assert emulator.run(net, {"x": np.zeros(2, np.float32)})["y"].tolist() == [1.0, -2.0]
