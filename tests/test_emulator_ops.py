"""Each emulated layer against independent NumPy math (naive loops, the formulas of NvInfer.h)."""

from __future__ import annotations

import numpy as np
import pytest

from trtnet import emulator

trt = emulator.trt
RNG = np.random.default_rng(1234)


def _input(net, name, arr):
    dtype = {np.float32: trt.float32, np.float16: trt.float16, np.int32: trt.int32, np.int64: trt.int64,
             np.uint8: trt.uint8, np.bool_: trt.bool, np.int8: trt.int8}[arr.dtype.type]
    return net.add_input(name, dtype, arr.shape)


def _run_one(build, *arrays):
    """Network: inputs x0, x1..., one layer from ``build(net, *tensors)``, output 'y'."""
    net = emulator.Network()
    tensors = [_input(net, f"x{i}", a) for i, a in enumerate(arrays)]
    layer = build(net, *tensors)
    layer.get_output(0).name = "y"
    net.mark_output(layer.get_output(0))
    return emulator.run(net, {f"x{i}": a for i, a in enumerate(arrays)})["y"]


# --- convolution -----------------------------------------------------------------------------
def _naive_conv(x, w, b, stride, pre, post, dil, groups):
    n, c, h, wd = x.shape
    k, cg, kh, kw = w.shape
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pre[0], post[0]), (pre[1], post[1])))
    ho = (xp.shape[2] - dil[0] * (kh - 1) - 1) // stride[0] + 1
    wo = (xp.shape[3] - dil[1] * (kw - 1) - 1) // stride[1] + 1
    out = np.zeros((n, k, ho, wo))
    kg = k // groups
    for o in range(k):
        g = o // kg
        for i in range(ho):
            for j in range(wo):
                patch = xp[:, g * cg:(g + 1) * cg,
                           i * stride[0]: i * stride[0] + dil[0] * (kh - 1) + 1: dil[0],
                           j * stride[1]: j * stride[1] + dil[1] * (kw - 1) + 1: dil[1]]
                out[:, o, i, j] = (patch * w[o]).sum(axis=(1, 2, 3)) + (b[o] if b is not None else 0)
    return out


CONV_CASES = [
    # c, k, kernel, stride, pre, post, dilation, groups
    (3, 4, (3, 3), (1, 1), (1, 1), (1, 1), (1, 1), 1),
    (4, 6, (3, 3), (2, 2), (1, 1), (1, 1), (1, 1), 2),
    (3, 5, (7, 7), (2, 2), (3, 3), (3, 3), (1, 1), 1),
    (4, 4, (3, 3), (2, 1), (1, 0), (0, 2), (2, 1), 1),  # asymmetric padding, dilation, strides
    (6, 6, (3, 3), (2, 2), (1, 1), (1, 1), (1, 1), 6),  # depthwise
    (6, 6, (3, 3), (1, 1), (2, 2), (2, 2), (2, 2), 6),  # depthwise dilated
    (5, 7, (1, 1), (1, 1), (0, 0), (0, 0), (1, 1), 1),  # 1x1
    (4, 8, (1, 1), (2, 2), (0, 0), (0, 0), (1, 1), 2),  # 1x1 strided, grouped
    (4, 5, (3, 3), (1, 1), (2, 1), (0, 2), (2, 1), 1),  # stride 1 (shifted GEMM): dilated, asymmetric
    (2, 3, (5, 3), (1, 1), (0, 0), (0, 0), (1, 1), 1),  # stride 1, no padding, non-square kernel
]


@pytest.mark.parametrize("c,k,ks,stride,pre,post,dil,groups", CONV_CASES)
def test_convolution_matches_naive_loop(c, k, ks, stride, pre, post, dil, groups):
    x = RNG.standard_normal((2, c, 9, 11)).astype(np.float32)
    w = RNG.standard_normal((k, c // groups, *ks)).astype(np.float32)
    b = RNG.standard_normal(k).astype(np.float32)

    def build(net, t):
        layer = net.add_convolution_nd(t, k, ks, trt.Weights(w), trt.Weights(b))
        layer.stride_nd, layer.dilation_nd, layer.num_groups = stride, dil, groups
        layer.pre_padding, layer.post_padding = pre, post
        return layer

    y = _run_one(build, x)
    # float32 accumulation of <= 147 products of N(0,1) values: error ~1e-5.
    np.testing.assert_allclose(y, _naive_conv(x, w, b, stride, pre, post, dil, groups), rtol=1e-4, atol=1e-4)


def test_padding_nd_sets_pre_and_post_padding():
    net = emulator.Network()
    x = net.add_input("x", trt.float32, (1, 1, 5, 5))
    conv = net.add_convolution_nd(x, 1, (3, 3), trt.Weights(np.ones((1, 1, 3, 3), np.float32)))
    conv.padding_nd = (1, 2)
    assert tuple(conv.pre_padding) == (1, 2) and tuple(conv.post_padding) == (1, 2)
    assert tuple(conv.get_output(0).shape) == (1, 1, 5, 7)


# --- pooling, activation ------------------------------------------------------------------------
def test_max_pooling_ignores_padding():
    x = -np.abs(RNG.standard_normal((1, 2, 6, 7))).astype(np.float32)  # all negative: a zero pad would win

    def build(net, t):
        p = net.add_pooling_nd(t, trt.PoolingType.MAX, (3, 3))
        p.stride_nd, p.padding_nd = (2, 2), (1, 1)
        return p

    y = _run_one(build, x)
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    want = np.array([[[[xp[0, c, 2 * i: 2 * i + 3, 2 * j: 2 * j + 3].max() for j in range(4)] for i in range(3)]
                      for c in range(2)]])
    np.testing.assert_array_equal(y, want)


def test_average_pooling_excludes_padding_from_the_count():
    x = np.ones((1, 1, 4, 4), np.float32)

    def build(net, t):
        p = net.add_pooling_nd(t, trt.PoolingType.AVERAGE, (3, 3))
        p.padding_nd = (1, 1)
        return p

    np.testing.assert_allclose(_run_one(build, x), 1.0, rtol=1e-6)  # ones stay ones when pads are excluded


@pytest.mark.parametrize("kind,alpha,beta,fn", [
    ("RELU", 0, 0, lambda v: np.maximum(v, 0)),
    ("SIGMOID", 0, 0, lambda v: 1 / (1 + np.exp(-v))),
    ("TANH", 0, 0, np.tanh),
    ("LEAKY_RELU", 0.1, 0, lambda v: np.where(v >= 0, v, 0.1 * v)),
    ("CLIP", 0.0, 6.0, lambda v: np.clip(v, 0, 6)),  # ReLU6
])
def test_activation(kind, alpha, beta, fn):
    x = (RNG.standard_normal((1, 3, 4, 5)) * 5).astype(np.float32)

    def build(net, t):
        a = net.add_activation(t, getattr(trt.ActivationType, kind))
        a.alpha, a.beta = alpha, beta
        return a

    np.testing.assert_allclose(_run_one(build, x), fn(x.astype(np.float64)), rtol=1e-6, atol=1e-7)


# --- elementwise, unary ---------------------------------------------------------------------------
@pytest.mark.parametrize("op,fn", [("SUM", np.add), ("PROD", np.multiply), ("SUB", np.subtract),
                                   ("DIV", np.divide), ("MAX", np.maximum), ("MIN", np.minimum)])
def test_elementwise_broadcasts_dims_of_one(op, fn):
    a = RNG.standard_normal((2, 3, 4, 1)).astype(np.float32)
    b = (RNG.random((1, 3, 1, 5)) + 0.5).astype(np.float32)
    y = _run_one(lambda net, s, t: net.add_elementwise(s, t, getattr(trt.ElementWiseOperation, op)), a, b)
    assert y.shape == (2, 3, 4, 5)
    np.testing.assert_allclose(y, fn(a, b), rtol=1e-6)


def test_integer_div_truncates_toward_zero():
    a = np.array([7, -7, 7, -7], np.int32)
    b = np.array([2, 2, -2, -2], np.int32)
    y = _run_one(lambda net, s, t: net.add_elementwise(s, t, trt.ElementWiseOperation.DIV), a, b)
    np.testing.assert_array_equal(y, [3, -3, -3, 3])


def test_comparison_gives_bool():
    a, b = np.array([1.0, 2.0], np.float32), np.array([2.0, 1.0], np.float32)
    y = _run_one(lambda net, s, t: net.add_elementwise(s, t, trt.ElementWiseOperation.GREATER), a, b)
    assert y.dtype == np.bool_ and y.tolist() == [False, True]


def test_unary_exp():
    x = RNG.standard_normal((2, 3)).astype(np.float32)
    np.testing.assert_allclose(_run_one(lambda net, t: net.add_unary(t, trt.UnaryOperation.EXP), x), np.exp(x),
                               rtol=1e-6)


# --- resize ---------------------------------------------------------------------------------------
def _formula_linear_1d(v, out_len, transform):
    """Direct NvInfer.h formula, one output at a time: lerp at x_origin, indices clamped."""
    n = len(v)
    out = []
    for i in range(out_len):
        if transform == "HALF_PIXEL":
            x = (i + 0.5) * (n / out_len) - 0.5
        elif transform == "ALIGN_CORNERS":
            x = i * (n - 1) / (out_len - 1)
        else:
            x = i * (n / out_len)
        x0 = int(np.floor(x))
        lam = x - x0
        a, b = v[min(max(x0, 0), n - 1)], v[min(max(x0 + 1, 0), n - 1)]
        out.append(a * (1 - lam) + b * lam)
    return np.array(out)


def test_bilinear_half_pixel_upsample_matches_pytorch_align_corners_false():
    # F.interpolate(tensor([[[[1., 2.]]]]), size=(1, 4), mode='bilinear', align_corners=False)
    # = [1.0, 1.25, 1.75, 2.0] (PyTorch clamps the source coordinate at 0).
    x = np.array([[[[1.0, 2.0]]]], np.float32)

    def build(net, t):
        r = net.add_resize(t)
        r.shape = (1, 1, 1, 4)
        r.resize_mode = trt.InterpolationMode.LINEAR
        r.coordinate_transformation = trt.ResizeCoordinateTransformation.HALF_PIXEL
        return r

    np.testing.assert_allclose(_run_one(build, x)[0, 0, 0], [1.0, 1.25, 1.75, 2.0], rtol=1e-7)


@pytest.mark.parametrize("transform", ["HALF_PIXEL", "ALIGN_CORNERS", "ASYMMETRIC"])
@pytest.mark.parametrize("in_hw,out_hw", [((5, 7), (11, 3)), ((9, 4), (4, 9))])
def test_bilinear_resize_matches_the_documented_formula(transform, in_hw, out_hw):
    x = RNG.standard_normal((1, 2, *in_hw)).astype(np.float32)

    def build(net, t):
        r = net.add_resize(t)
        r.shape = (1, 2, *out_hw)
        r.resize_mode = trt.InterpolationMode.LINEAR
        r.coordinate_transformation = getattr(trt.ResizeCoordinateTransformation, transform)
        return r

    y = _run_one(build, x)
    rows = np.apply_along_axis(_formula_linear_1d, 2, x.astype(np.float64), out_hw[0], transform)
    want = np.apply_along_axis(_formula_linear_1d, 3, rows, out_hw[1], transform)
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-6)  # float32 coordinates vs float64


def test_nearest_resize_by_scales_rounds_as_configured():
    x = np.arange(4, dtype=np.float32).reshape(1, 1, 1, 4)

    def build(net, t):
        r = net.add_resize(t)
        r.scales = [1, 1, 1, 1.5]  # 4 -> floor(6.0) = 6
        r.resize_mode = trt.InterpolationMode.NEAREST
        r.coordinate_transformation = trt.ResizeCoordinateTransformation.HALF_PIXEL
        r.nearest_rounding = trt.ResizeRoundMode.HALF_UP
        return r

    # x_origin = (i + 0.5) * 4/6 - 0.5 = -0.167, 0.5, 1.167, 1.833, 2.5, 3.167 -> half up: 0, 1, 1, 2, 3, 3
    np.testing.assert_array_equal(_run_one(build, x)[0, 0, 0], [0, 1, 1, 2, 3, 3])


def test_single_pixel_upper_selector_reads_the_first_pixel():
    x = np.arange(4, dtype=np.float32).reshape(1, 1, 1, 4)

    def build(net, t, selector):
        r = net.add_resize(t)
        r.shape = (1, 1, 1, 1)
        r.resize_mode = trt.InterpolationMode.LINEAR
        r.coordinate_transformation = trt.ResizeCoordinateTransformation.HALF_PIXEL
        r.selector_for_single_pixel = selector
        return r

    upper = _run_one(lambda n, t: build(n, t, trt.ResizeSelector.UPPER), x)
    formula = _run_one(lambda n, t: build(n, t, trt.ResizeSelector.FORMULA), x)
    assert upper.item() == 0.0 and formula.item() == 1.5  # (0 + 0.5) * 4 - 0.5 = 1.5


# --- shape manipulation ------------------------------------------------------------------------------
def test_shuffle_transpose_reshape_with_placeholder_and_inferred_dim():
    x = RNG.standard_normal((2, 3, 4, 5)).astype(np.float32)

    def build(net, t):
        s = net.add_shuffle(t)
        s.first_transpose = (0, 2, 3, 1)
        s.reshape_dims = (0, -1, 3)
        s.second_transpose = (0, 2, 1)
        return s

    y = _run_one(build, x)
    np.testing.assert_array_equal(y, x.transpose(0, 2, 3, 1).reshape(2, 20, 3).transpose(0, 2, 1))


def test_concatenation_default_axis_is_rank_minus_three():
    a, b = np.zeros((1, 2, 3, 3), np.float32), np.ones((1, 4, 3, 3), np.float32)
    assert _run_one(lambda net, s, t: net.add_concatenation([s, t]), a, b).shape == (1, 6, 3, 3)
    a3, b3 = np.zeros((1, 2, 3), np.float32), np.ones((2, 2, 3), np.float32)
    assert _run_one(lambda net, s, t: net.add_concatenation([s, t]), a3, b3).shape == (3, 2, 3)


def test_slice_with_strides():
    x = np.arange(60, dtype=np.float32).reshape(3, 4, 5)
    y = _run_one(lambda net, t: net.add_slice(t, (1, 0, 4), (2, 2, 3), (1, 2, -2)), x)
    np.testing.assert_array_equal(y, x[1:3, 0:4:2, 4::-2])


def test_slice_out_of_bounds_is_an_error():
    x = np.zeros((4, 4), np.float32)
    with pytest.raises(IndexError, match="STRICT_BOUNDS"):
        _run_one(lambda net, t: net.add_slice(t, (2, 0), (3, 4), (1, 1)), x)


def test_gather_default_mode():
    x = RNG.standard_normal((2, 5, 3)).astype(np.float32)
    idx = np.array([[4, 0], [1, 1]], np.int32)
    y = _run_one(lambda net, t, i: net.add_gather(t, i, 1), x, idx)
    np.testing.assert_array_equal(y, np.take(x, idx, axis=1))


def test_shape_layer_gives_int64_runtime_dims():
    net = emulator.Network()
    x = net.add_input("x", trt.float32, (1, 3, -1, -1))
    s = net.add_shape(x)
    assert s.get_output(0).dtype == trt.DataType.INT64 and tuple(s.get_output(0).shape) == (4,)
    s.get_output(0).name = "s"
    net.mark_output(s.get_output(0))
    out = emulator.run(net, {"x": np.zeros((1, 3, 7, 9), np.float32)})["s"]
    assert out.dtype == np.int64 and out.tolist() == [1, 3, 7, 9]


# --- softmax, reduce, matrix multiply ----------------------------------------------------------------
def test_softmax_over_the_axes_bit():
    x = RNG.standard_normal((1, 6, 4)).astype(np.float32)

    def build(net, t):
        s = net.add_softmax(t)
        s.axes = 1 << 2
        return s

    e = np.exp(x.astype(np.float64) - x.max(axis=2, keepdims=True))
    np.testing.assert_allclose(_run_one(build, x), e / e.sum(axis=2, keepdims=True), rtol=1e-6)


def test_softmax_default_axis_is_channels_for_nchw():
    x = RNG.standard_normal((2, 3, 4, 5)).astype(np.float32)
    y = _run_one(lambda net, t: net.add_softmax(t), x)
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-6)


@pytest.mark.parametrize("op,fn", [("SUM", np.sum), ("MAX", np.max), ("AVG", np.mean)])
@pytest.mark.parametrize("keep", [True, False])
def test_reduce(op, fn, keep):
    x = RNG.standard_normal((2, 3, 4)).astype(np.float32)
    y = _run_one(lambda net, t: net.add_reduce(t, getattr(trt.ReduceOperation, op), 0b101, keep), x)
    np.testing.assert_allclose(y, fn(x.astype(np.float64), axis=(0, 2), keepdims=keep), rtol=1e-6)


@pytest.mark.parametrize("op0,op1", [("NONE", "NONE"), ("TRANSPOSE", "NONE"), ("NONE", "TRANSPOSE"),
                                     ("NONE", "VECTOR"), ("VECTOR", "NONE")])
def test_matrix_multiply(op0, op1):
    a = RNG.standard_normal((2, 3, 4)).astype(np.float32)
    b = RNG.standard_normal((2, 4, 5)).astype(np.float32)
    A = {"NONE": a, "TRANSPOSE": a.transpose(0, 2, 1).copy(), "VECTOR": a[:, 0, :].copy()}[op0]
    B = {"NONE": b, "TRANSPOSE": b.transpose(0, 2, 1).copy(), "VECTOR": b[:, :, 0].copy()}[op1]
    M = trt.MatrixOperation
    y = _run_one(lambda net, s, t: net.add_matrix_multiply(s, getattr(M, op0), t, getattr(M, op1)), A, B)
    full = np.matmul(a.astype(np.float64), b)  # [2, 3, 5]
    want = {("NONE", "VECTOR"): full[..., 0], ("VECTOR", "NONE"): full[:, 0, :]}.get((op0, op1), full)
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-6)


# --- cast, quantize ------------------------------------------------------------------------------------
def test_quantize_rounds_half_to_even_and_saturates():
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, 1000.0, -1000.0, 0.49], np.float32)

    def build(net, t):
        scale = net.add_constant((), trt.Weights(np.array(1.0, np.float32)))
        return net.add_quantize(t, scale.get_output(0), trt.DataType.INT8)

    y = _run_one(build, x)
    assert y.dtype == np.int8
    assert y.tolist() == [0, 2, 2, 0, -2, 127, -128, 0]


def test_per_channel_quantize_dequantize_of_weights():
    # Per-channel Q/DQ only on weights (a constant), axis 0: scales [0.5, 0.25] per row.
    w = np.array([[5.0, -5.0], [1.0, 1.0]], np.float32)

    def build(net, t):
        scale = net.add_constant((2,), trt.Weights(np.array([0.5, 0.25], np.float32))).get_output(0)
        q = net.add_quantize(net.add_constant((2, 2), trt.Weights(w)).get_output(0), scale, trt.DataType.INT8)
        dq = net.add_dequantize(q.get_output(0), scale, trt.DataType.FLOAT)
        q.axis = dq.axis = 0
        q.get_output(0).name = "q"
        return net.add_elementwise(t, dq.get_output(0), trt.ElementWiseOperation.SUM)

    np.testing.assert_array_equal(_run_one(build, np.zeros((2, 2), np.float32)), w)


def test_cast_uint8_to_float_and_float_to_int_truncates():
    u = np.array([0, 128, 255], np.uint8)
    assert _run_one(lambda net, t: net.add_cast(t, trt.DataType.FLOAT), u).tolist() == [0.0, 128.0, 255.0]
    f = np.array([1.7, -1.7, 2.5], np.float32)
    assert _run_one(lambda net, t: net.add_cast(t, trt.DataType.INT32), f).tolist() == [1, -1, 2]


def test_half_layers_round_their_results_to_float16():
    x = np.array([1.0, 2.0 ** -11], np.float16)  # 1 + 2^-11 is not representable in fp16
    y = _run_one(lambda net, s, t: net.add_elementwise(s, t, trt.ElementWiseOperation.SUM), x[:1], x[1:])
    assert y.dtype == np.float16 and y.item() == 1.0


def test_half_convolution_is_float32_math_rounded_to_float16():
    x = RNG.standard_normal((1, 4, 6, 6)).astype(np.float16)
    w = (RNG.standard_normal((3, 4, 3, 3)) * 0.2).astype(np.float16)

    def build(net, t):
        c = net.add_convolution_nd(t, 3, (3, 3), trt.Weights(w), trt.Weights(np.zeros(3, np.float16)))
        c.padding_nd = (1, 1)
        return c

    y = _run_one(build, x)
    assert y.dtype == np.float16
    want = _naive_conv(x.astype(np.float32), w.astype(np.float32), None, (1, 1), (1, 1), (1, 1), (1, 1), 1)
    # Only the final rounding to fp16 differs from float64 math: half an fp16 ulp (2^-11 relative).
    np.testing.assert_allclose(y.astype(np.float64), want, rtol=2 ** -11, atol=1e-6)


def test_explicitly_quantized_convolution_takes_its_kernel_from_a_dequantize_layer():
    # INT8 pattern of strongly typed TensorRT: Q/DQ on the activation and (per channel) on the
    # kernel, the kernel fed as input 1 of the convolution (empty Weights in add_convolution_nd).
    x = RNG.standard_normal((1, 3, 6, 6)).astype(np.float32)
    w = RNG.standard_normal((4, 3, 3, 3)).astype(np.float32)
    x_scale, w_scale = np.float32(0.03), (np.abs(w).reshape(4, -1).max(axis=1) / 127).astype(np.float32)

    def build(net, t):
        def qdq(tensor, scale, axis):
            s = net.add_constant(scale.shape, trt.Weights(np.ascontiguousarray(scale))).get_output(0)
            q = net.add_quantize(tensor, s, trt.DataType.INT8)
            dq = net.add_dequantize(q.get_output(0), s, trt.DataType.FLOAT)
            q.axis = dq.axis = axis
            return dq.get_output(0)

        kernel = net.add_constant(w.shape, trt.Weights(w)).get_output(0)
        conv = net.add_convolution_nd(qdq(t, np.array(x_scale), 0), 4, (3, 3), trt.Weights(trt.DataType.FLOAT))
        conv.set_input(1, qdq(kernel, w_scale, 0))
        conv.padding_nd = (1, 1)
        return conv

    y = _run_one(build, x)
    fake_x = np.clip(np.round(x / x_scale), -128, 127) * x_scale  # np.round is half-to-even too
    fake_w = np.clip(np.round(w / w_scale[:, None, None, None]), -128, 127) * w_scale[:, None, None, None]
    want = _naive_conv(fake_x, fake_w, None, (1, 1), (1, 1), (1, 1), (1, 1), 1)
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("op,fn", [("SUM", np.add), ("PROD", np.multiply), ("DIV", np.divide), ("SUB", np.subtract)])
def test_half_elementwise_is_float32_math_rounded_once(op, fn):
    a = RNG.standard_normal((3, 50)).astype(np.float16)
    b = (RNG.random((3, 50)) + 0.5).astype(np.float16)
    y = _run_one(lambda net, s, t: net.add_elementwise(s, t, getattr(trt.ElementWiseOperation, op)), a, b)
    assert y.dtype == np.float16
    np.testing.assert_array_equal(y, fn(a.astype(np.float32), b.astype(np.float32)).astype(np.float16))
