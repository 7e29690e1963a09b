"""The emulator refuses what TensorRT refuses (issue 7): one test per rule.

Each rule cites NvInfer.h of TensorRT 10.3 and 11.1 in trtnet/emulator (layers.py, executor.py,
builder.py); where the versions differ the stricter one holds. Every refusal below was
accepted silently by the emulator before these rules; each test also builds the closest
legal network, so a rule that refuses too much fails as well.
"""

from __future__ import annotations

import numpy as np
import pytest

from trtnet import emulator
from trtnet.emulator import EmulatorConfigError, EmulatorTypeError

trt = emulator.trt
F32 = np.float32


def _const(net, arr, name=None):
    arr = np.asarray(arr)
    layer = net.add_constant(arr.shape, trt.Weights(np.ascontiguousarray(arr).reshape(arr.shape)))
    if name:
        layer.name = layer.get_output(0).name = name
    return layer.get_output(0)


def _check(layer):
    """Infer the layer's output types and shapes, as the builder does (raises on a refusal)."""
    t = layer.get_output(0)
    return t.dtype, tuple(t.shape)


# --- attribute writes ---------------------------------------------------------------------------
def test_writing_an_attribute_the_layer_does_not_have_raises():
    net = emulator.Network()
    x = net.add_input("x", trt.float32, (1, 2, 4, 4))
    layer = net.add_resize(x)
    layer.resize_mode = trt.InterpolationMode.LINEAR  # a real attribute: fine
    with pytest.raises(AttributeError, match="align_corners"):
        layer.align_corners = False  # PyTorch's name; TensorRT's IResizeLayer has no such attribute
    assert not hasattr(layer, "align_corners")


def test_writing_an_attribute_the_tensor_or_network_does_not_have_raises():
    net = emulator.Network()
    x = net.add_input("x", trt.float32, (2,))
    x.name = "renamed"  # settable in TensorRT too
    with pytest.raises(AttributeError, match="dynamic_range"):
        x.dynamic_range = (-1.0, 1.0)  # 10.3 only and meaningless in a strongly typed network
    with pytest.raises(AttributeError, match="precision"):
        net.precision = trt.float16
    with pytest.raises(AttributeError):
        net.usage = None  # the emulator's own record is not replaceable either


def test_writing_a_read_only_attribute_raises():
    net = emulator.Network()
    layer = net.add_identity(net.add_input("x", trt.float32, (2,)))
    with pytest.raises(AttributeError):
        layer.num_inputs = 3


# --- unique names -------------------------------------------------------------------------------
def _two_unary(net, layer_names, tensor_names):
    x = net.add_input("x", trt.float32, (2,))
    a = net.add_unary(x, trt.UnaryOperation.ABS)
    b = net.add_unary(a.get_output(0), trt.UnaryOperation.NEG)
    a.name, b.name = layer_names
    a.get_output(0).name, b.get_output(0).name = tensor_names
    net.mark_output(b.get_output(0))
    return net


def test_repeated_layer_names_are_refused():
    emulator.validate(_two_unary(emulator.Network(), ("abs", "neg"), ("a", "y")))  # distinct: fine
    net = _two_unary(emulator.Network(), ("op", "op"), ("a", "y"))
    with pytest.raises(ValueError, match=r"repeated layer name\(s\) \['op'\]"):
        emulator.run(net, {"x": np.zeros(2, F32)})


def test_repeated_tensor_names_are_refused_also_between_intermediates():
    net = emulator.Network()
    x = net.add_input("x", trt.float32, (2,))
    a = net.add_unary(x, trt.UnaryOperation.ABS)
    b = net.add_unary(x, trt.UnaryOperation.NEG)
    c = net.add_elementwise(a.get_output(0), b.get_output(0), trt.ElementWiseOperation.SUM)
    a.get_output(0).name = b.get_output(0).name = "t"  # neither is a network input or output
    c.get_output(0).name = "y"
    net.mark_output(c.get_output(0))
    with pytest.raises(ValueError, match=r"repeated tensor name\(s\) \['t'\]"):
        emulator.validate(net)


def test_a_layer_and_a_tensor_may_share_a_name():
    # Layer names and tensor names are separate namespaces (trtnet names a layer and its output alike).
    emulator.validate(_two_unary(emulator.Network(), ("a", "y"), ("a", "y")))


# --- quantize / dequantize -----------------------------------------------------------------------
def _activation(net, dtype=trt.float32):
    return net.add_input("x", dtype, (1, 3, 2, 2))


def test_quantize_axis_defaults_to_per_tensor():
    net = emulator.Network()
    q = net.add_quantize(_activation(net), _const(net, np.array(0.1, F32)), trt.int8)
    dq = net.add_dequantize(q.get_output(0), _const(net, np.array(0.1, F32)), trt.float32)
    assert q.axis == -1 and dq.axis == -1  # NvInfer.h: "The default value is -1."


def test_per_tensor_scale_is_0d():
    net = emulator.Network()
    x = _activation(net)
    _check(net.add_quantize(x, _const(net, np.array(0.1, F32)), trt.int8))  # shape (): per-tensor
    q = net.add_quantize(x, _const(net, np.array([0.1], F32)), trt.int8)  # shape (1,): per-channel
    q.axis = 0
    with pytest.raises(ValueError, match="1-D .per-channel.*not weights"):
        _check(q)


def test_per_channel_quantize_only_on_constant_weights():
    net = emulator.Network()
    scale = _const(net, np.full(3, 0.1, F32))
    q = net.add_quantize(_activation(net), scale, trt.int8)
    q.axis = 1
    with pytest.raises(ValueError, match="supported only for weights"):
        _check(q)
    w = net.add_quantize(_const(net, np.ones((3, 3, 1, 1), F32)), scale, trt.int8)
    w.axis = 0
    dq = net.add_dequantize(w.get_output(0), scale, trt.float32)
    dq.axis = 0
    assert _check(dq) == (trt.float32, (3, 3, 1, 1))


def test_per_channel_dequantize_only_of_quantized_weights():
    net = emulator.Network()
    dq = net.add_dequantize(net.add_input("q", trt.int8, (3, 2)), _const(net, np.full(3, 0.1, F32)), trt.float32)
    dq.axis = 0
    with pytest.raises(ValueError, match="supported only for weights"):
        _check(dq)


def test_per_channel_scale_needs_its_axis():
    net = emulator.Network()
    scale = _const(net, np.full(3, 0.1, F32))
    w = net.add_quantize(_const(net, np.ones((3, 4), F32)), scale, trt.int8)  # axis left at -1
    with pytest.raises(ValueError, match="quantization axis"):
        _check(w)
    w.axis = 1  # 4 values on that axis, 3 scales
    with pytest.raises(ValueError, match="3 values, axis 1"):
        _check(w)


def test_quantize_scale_has_the_input_type():
    # 10.3: "For strongly typed networks, input data type must match the scale data type."
    net = emulator.Network()
    x = _activation(net, trt.float16)
    with pytest.raises(EmulatorTypeError, match="scale .* is FLOAT but input 'x' is HALF"):
        net.add_quantize(x, _const(net, np.array(0.1, F32)), trt.int8)
    half_scale = net.add_cast(_const(net, np.array(0.1, F32)), trt.float16).get_output(0)  # Constant -> Cast
    assert _check(net.add_quantize(x, half_scale, trt.int8))[0] == trt.int8


def test_dequantize_output_type_is_its_scale_type():
    # 10.3: "output data type is inferred from scale data type".
    net = emulator.Network()
    q = net.add_quantize(_activation(net), _const(net, np.array(0.1, F32)), trt.int8).get_output(0)
    with pytest.raises(EmulatorTypeError, match="scale .* is FLOAT but output_type is HALF"):
        net.add_dequantize(q, _const(net, np.array(0.1, F32)), trt.float16)
    half = net.add_dequantize(q, _const(net, np.array(0.1, np.float16)), trt.float16)
    assert _check(half)[0] == trt.float16
    half.to_type = trt.float32  # a later change must stay consistent with the scale
    with pytest.raises(EmulatorTypeError, match="output_type is FLOAT"):
        _check(half)


def test_scale_must_be_a_build_time_constant():
    net = emulator.Network()
    q = net.add_quantize(_activation(net), net.add_input("s", trt.float32, ()), trt.int8)
    with pytest.raises(ValueError, match="build-time constant"):
        _check(q)


@pytest.mark.parametrize("value", [0.0, -0.1, np.inf])
def test_scale_must_be_strictly_positive(value):
    net = emulator.Network()
    q = net.add_quantize(_activation(net), _const(net, np.array(value, F32)), trt.int8)
    with pytest.raises(ValueError, match="strictly positive"):
        _check(q)


def test_smallest_positive_scale_is_accepted():
    net = emulator.Network()
    tiny = np.array(np.finfo(F32).smallest_subnormal, F32)
    _check(net.add_quantize(_activation(net), _const(net, tiny), trt.int8))


def test_quantize_input_must_not_be_a_scalar():
    net = emulator.Network()
    q = net.add_quantize(net.add_input("x", trt.float32, ()), _const(net, np.array(0.1, F32)), trt.int8)
    with pytest.raises(ValueError, match="scalar"):
        _check(q)


# --- casts and unary ops ------------------------------------------------------------------------
@pytest.mark.parametrize("src,to", [("INT32", "UINT8"), ("UINT8", "INT32"), ("BOOL", "UINT8"),
                                    ("UINT8", "BOOL"), ("INT64", "UINT8")])
def test_uint8_casts_only_to_and_from_float_or_half(src, to):
    net = emulator.Network()
    x = net.add_input("x", getattr(trt.DataType, src), (2,))
    with pytest.raises(EmulatorTypeError, match="UINT8 only to and from FLOAT or HALF"):
        net.add_cast(x, getattr(trt.DataType, to))


@pytest.mark.parametrize("other", ["FLOAT", "HALF"])
def test_uint8_casts_to_and_from_floats_are_allowed(other):
    net = emulator.Network()
    f = net.add_cast(net.add_input("x", trt.uint8, (2,)), getattr(trt.DataType, other)).get_output(0)
    assert net.add_cast(f, trt.uint8).get_output(0).dtype == trt.uint8


def test_float_to_uint8_outside_0_256_is_refused_at_run_time():
    def run(values):
        net = emulator.Network()
        layer = net.add_cast(net.add_input("x", trt.float32, (len(values),)), trt.uint8)
        layer.get_output(0).name = "y"
        net.mark_output(layer.get_output(0))
        return emulator.run(net, {"x": np.array(values, F32)})["y"]

    # Truncation toward zero first: -0.99 -> 0 and 255.99 -> 255 are defined.
    assert run([-0.99, 0.0, 255.99]).tolist() == [0, 0, 255]
    for bad in (256.0, -1.0):
        with pytest.raises(ValueError, match=r"undefined outside \[0, 256\)"):
            run([bad])


@pytest.mark.parametrize("op", ["ABS", "NEG", "EXP"])
def test_unary_ops_take_float_inputs_only(op):
    net = emulator.Network()
    with pytest.raises(EmulatorTypeError, match="INT32 is not allowed"):
        net.add_unary(net.add_input("x", trt.int32, (2,)), getattr(trt.UnaryOperation, op))
    net.add_unary(net.add_input("f", trt.float16, (2,)), getattr(trt.UnaryOperation, op))


def test_unary_not_takes_bool_only():
    net = emulator.Network()
    with pytest.raises(EmulatorTypeError, match="FLOAT is not allowed"):
        net.add_unary(net.add_input("x", trt.float32, (2,)), trt.UnaryOperation.NOT)
    net.add_unary(net.add_input("b", trt.bool, (2,)), trt.UnaryOperation.NOT)


# --- builder defaults that change numerics ------------------------------------------------------
def _conv_net(dtype=trt.float32):
    net = emulator.Network()
    np_type = trt.nptype(dtype)
    conv = net.add_convolution_nd(net.add_input("x", dtype, (1, 1, 3, 3)), 1, (1, 1),
                                  trt.Weights(np.ones(1, np_type)))
    conv.name = conv.get_output(0).name = "conv"
    net.mark_output(conv.get_output(0))
    return net


def test_builder_config_starts_with_tf32_like_tensorrt():
    config = trt.IBuilderConfig()
    assert config.get_flag(trt.BuilderFlag.TF32)  # NvInfer.h kTF32: "Enabled by default."
    assert config.flags == 1 << 6
    config.clear_flag(trt.BuilderFlag.TF32)
    assert not config.get_flag(trt.BuilderFlag.TF32) and config.flags == 0


def test_tf32_default_is_refused_for_float_convolutions():
    x = {"x": np.ones((1, 1, 3, 3), F32)}
    with pytest.raises(EmulatorConfigError, match="TF32.*'conv'"):
        emulator.run(_conv_net(), x, config=trt.IBuilderConfig())
    exact = trt.IBuilderConfig()
    exact.clear_flag(trt.BuilderFlag.TF32)
    assert emulator.run(_conv_net(), x, config=exact)["conv"].sum() == 9.0


def test_tf32_does_not_concern_half_networks():
    # TF32 only applies to "tensors of type DataType::kFLOAT".
    emulator.validate(_conv_net(trt.float16), trt.IBuilderConfig())


@pytest.mark.parametrize("op", ["SUB", "DIV"])
def test_subtracting_or_dividing_a_tensor_by_itself_is_refused(op):
    # TensorRT 11 folds x-x => 0 and x/x => 1 unless STRICT_NANS (unset by default, 11-only).
    net = emulator.Network()
    x = net.add_input("x", trt.float32, (2,))
    layer = net.add_elementwise(x, x, getattr(trt.ElementWiseOperation, op))
    layer.get_output(0).name = "y"
    net.mark_output(layer.get_output(0))
    with pytest.raises(EmulatorConfigError, match=f"{op} of 'x' with itself"):
        emulator.run(net, {"x": np.array([np.inf, 1.0], F32)})


def test_multiplying_by_an_all_zero_constant_is_refused_but_by_a_nonzero_one_is_not():
    def net_times(values):
        net = emulator.Network()
        x = net.add_input("x", trt.float32, (2,))
        layer = net.add_elementwise(x, _const(net, np.array(values, F32), "c"), trt.ElementWiseOperation.PROD)
        net.mark_output(layer.get_output(0))
        return net

    emulator.validate(net_times([0.0, 1e-30]))
    with pytest.raises(EmulatorConfigError, match="all-zero constant 'c'"):
        emulator.validate(net_times([0.0, 0.0]))
