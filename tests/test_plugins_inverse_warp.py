"""InverseWarp CPU twin (trtnet._C.inverse_warp): upstream reference data, the NumPy
reference (trtnet.plugins.reference), float16, broadcasting and edge cases.

The twin does the reference's float32 operations in the same order with one rounding
each, so against the NumPy reference it is compared bit for bit; against upstream
PyTorch (another operation order inside grid_sample) with a few float32 ulps.
"""

from __future__ import annotations

import numpy as np
import pytest

from compiled import compiled_extension
from trtnet.plugins import reference



C = compiled_extension()

LEVELS = ("P4", "P5")


@pytest.fixture(scope="module")
def vid(reference_dir):
    return np.load(reference_dir / "vid_resnet50" / "outputs.npz")


def _level(vid, level):
    return (vid[f"nonkey/warp/keyframe_{level}"], vid[f"nonkey/flow/flow_{level}"],
            vid[f"nonkey/flow/scale_{level}"], vid[f"nonkey/flow/bias_{level}"])


@pytest.mark.parametrize("level", LEVELS)
def test_deformed_matches_upstream_grid_sample(vid, level):
    feature, flow, _, _ = _level(vid, level)
    out = C.inverse_warp(feature, flow)
    # Upstream grid_sample rounds in another order: measured 4.8e-7 (P4), 2.4e-7 (P5)
    # on values up to ~7; 2e-6 leaves room for a few float32 ulps, not for a wrong pixel.
    np.testing.assert_allclose(out, vid[f"nonkey/warp/deformed_{level}"], rtol=0, atol=2e-6)


@pytest.mark.parametrize("level", LEVELS)
def test_warped_matches_upstream_scale_and_bias(vid, level):
    feature, flow, scale, bias = _level(vid, level)
    out = C.inverse_warp(feature, flow, scale, bias)
    np.testing.assert_allclose(out, vid[f"nonkey/warp/warped_{level}"], rtol=0, atol=2e-6)


@pytest.mark.parametrize("level", LEVELS)
def test_twin_is_bit_identical_to_numpy_reference_on_upstream_inputs(vid, level):
    feature, flow, scale, bias = _level(vid, level)
    np.testing.assert_array_equal(C.inverse_warp(feature, flow, scale, bias),
                                  reference.inverse_warp(feature, flow, scale, bias))


@pytest.mark.parametrize("seed", range(4))
def test_twin_is_bit_identical_to_numpy_reference_randomized(seed):
    rng = np.random.default_rng(seed)
    n, c, h, w = int(rng.integers(1, 3)), int(rng.integers(1, 40)), int(rng.integers(2, 23)), int(rng.integers(2, 37))
    feature = rng.standard_normal((n, c, h, w), dtype=np.float32)
    flow = (rng.standard_normal((n, 2, h, w)) * 3).astype(np.float32)  # up to ~1.5 maps away
    scale = rng.standard_normal((1 if seed % 2 else n, 1 if seed > 1 else c, h, w), dtype=np.float32)
    bias = rng.standard_normal((n, c if seed % 2 else 1, h, w), dtype=np.float32)
    divisor = float(rng.choice([8.0, 4.0, 1.0]))
    np.testing.assert_array_equal(C.inverse_warp(feature, flow, scale, bias, flow_divisor=divisor),
                                  reference.inverse_warp(feature, flow, scale, bias, flow_divisor=divisor))


def test_float16_is_the_float32_result_rounded_once(vid):
    feature, flow, scale, bias = (a.astype(np.float16) for a in _level(vid, "P4"))
    out = C.inverse_warp(feature, flow, scale, bias)
    assert out.dtype == np.float16
    # Same float32 math on the (exactly upcast) half inputs, one rounding to half at the end.
    expected = reference.inverse_warp(*(a.astype(np.float32) for a in (feature, flow, scale, bias))).astype(np.float16)
    np.testing.assert_array_equal(out, expected)


def test_float16_against_upstream_within_half_precision(vid):
    feature, flow, scale, bias = _level(vid, "P4")
    out = C.inverse_warp(*(a.astype(np.float16) for a in (feature, flow, scale, bias))).astype(np.float32)
    # Inputs rounded to half (rel. 2^-11 each) then output rounded: measured 6.6e-3 on values up to 7.
    np.testing.assert_allclose(out, vid["nonkey/warp/warped_P4"], rtol=0, atol=2e-2)


def test_flow_far_outside_samples_zero_so_output_is_bias():
    rng = np.random.default_rng(1)
    feature = rng.standard_normal((1, 3, 5, 6), dtype=np.float32)
    flow = np.full((1, 2, 5, 6), 1e6, np.float32)
    flow[0, 1] = -3e38
    bias = rng.standard_normal((1, 3, 5, 6), dtype=np.float32)
    scale = np.full((1, 3, 5, 6), 2.0, np.float32)
    np.testing.assert_array_equal(C.inverse_warp(feature, flow, scale, bias), bias)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_flow_samples_zero(bad):
    rng = np.random.default_rng(2)
    feature = rng.standard_normal((2, 4, 7, 9), dtype=np.float32)
    flow = np.zeros((2, 2, 7, 9), np.float32)
    flow[1, 0, 3, 4] = bad   # x only
    flow[0, 1, 0, 0] = bad   # y only
    out = C.inverse_warp(feature, flow)
    assert np.all(out[1, :, 3, 4] == 0) and np.all(out[0, :, 0, 0] == 0)
    untouched = np.ones(out.shape, bool)
    untouched[1, :, 3, 4] = untouched[0, :, 0, 0] = False
    np.testing.assert_array_equal(out[untouched], reference.inverse_warp(feature, np.nan_to_num(flow, posinf=0, neginf=0))[untouched])


def test_zero_flow_on_a_grid_reproduces_the_feature():
    rng = np.random.default_rng(3)
    feature = rng.standard_normal((1, 5, 35, 35), dtype=np.float32)
    out = C.inverse_warp(feature, np.zeros((1, 2, 35, 35), np.float32))
    # x * 2/(W-1) - 1 then back to pixels is x up to a float32 rounding: weights of 1 - 1e-7.
    np.testing.assert_allclose(out, feature, rtol=0, atol=1e-5)


@pytest.mark.parametrize("shape", [(1, 3, 1, 6), (1, 3, 6, 1), (1, 2, 1, 1)])
def test_one_pixel_axis_uses_a_zero_grid_step(shape):
    rng = np.random.default_rng(4)
    feature = rng.standard_normal(shape, dtype=np.float32)
    flow = (rng.standard_normal((shape[0], 2) + shape[2:]) * 0.3).astype(np.float32)
    np.testing.assert_array_equal(C.inverse_warp(feature, flow), reference.inverse_warp(feature, flow))


def test_channels_not_a_multiple_of_the_kernel_slice_and_batch_of_three():
    rng = np.random.default_rng(5)
    feature = rng.standard_normal((3, 37, 4, 33), dtype=np.float32)  # 37 = 2 * 16 + 5, 33 = 32 + 1
    flow = rng.standard_normal((3, 2, 4, 33), dtype=np.float32)
    np.testing.assert_array_equal(C.inverse_warp(feature, flow), reference.inverse_warp(feature, flow))


def test_non_contiguous_inputs_are_accepted():
    rng = np.random.default_rng(6)
    feature = rng.standard_normal((1, 8, 10, 12), dtype=np.float32)[:, ::2]
    flow = rng.standard_normal((1, 2, 10, 12), dtype=np.float32)[:, ::-1]
    np.testing.assert_array_equal(C.inverse_warp(feature, flow), reference.inverse_warp(feature, flow))


def test_bad_flow_shape_is_named():
    with pytest.raises(ValueError, match=r"flow must be \[N, 2, H, W\]"):
        C.inverse_warp(np.zeros((1, 3, 4, 5), np.float32), np.zeros((1, 3, 4, 5), np.float32))


def test_bad_scale_shape_is_named():
    with pytest.raises(ValueError, match=r"scale must be \[N or 1, C or 1, H, W\]"):
        C.inverse_warp(np.zeros((1, 3, 4, 5), np.float32), np.zeros((1, 2, 4, 5), np.float32),
                       np.zeros((1, 2, 4, 5), np.float32))


def test_mixed_dtypes_are_refused():
    with pytest.raises(TypeError, match="flow must have the dtype of feature"):
        C.inverse_warp(np.zeros((1, 3, 4, 5), np.float32), np.zeros((1, 2, 4, 5), np.float16))


def test_integer_feature_is_refused():
    with pytest.raises(TypeError, match="float32 or float16"):
        C.inverse_warp(np.zeros((1, 3, 4, 5), np.int32), np.zeros((1, 2, 4, 5), np.int32))


def test_zero_flow_divisor_is_refused():
    with pytest.raises(ValueError, match="flow_divisor"):
        C.inverse_warp(np.zeros((1, 3, 4, 5), np.float32), np.zeros((1, 2, 4, 5), np.float32), flow_divisor=0.0)


# --- the emulated plugin takes the inputs the C++ plugin takes ---------------------------------
def _warp_layer(n_inputs, num_inputs):
    from trtnet import emulator
    from trtnet.plugins.specs import INVERSE_WARP

    trt = emulator.trt
    net = emulator.Network()
    shapes = [(1, 3, 4, 5), (1, 2, 4, 5), (1, 3, 4, 5), (1, 3, 4, 5)][:n_inputs]
    inputs = [net.add_input(f"x{i}", trt.float32, s) for i, s in enumerate(shapes)]
    creator = trt.get_plugin_registry().get_creator(INVERSE_WARP.name, INVERSE_WARP.version, INVERSE_WARP.namespace)
    plugin = INVERSE_WARP.create_plugin(trt, creator, "warp", num_inputs=num_inputs)
    layer = net.add_plugin_v3(inputs, [], plugin)
    net.mark_output(layer.get_output(0))
    return net, {f"x{i}": np.random.default_rng(i).standard_normal(s).astype(np.float32) for i, s in enumerate(shapes)}


@pytest.mark.parametrize("n_inputs", [2, 3, 4])
@pytest.mark.parametrize("declared", ["layer", "field"])
def test_emulated_plugin_takes_two_to_four_inputs_like_the_cpp_plugin(n_inputs, declared):
    # inverse_warp_plugin.cpp: feature, flow[, scale[, bias]]; a third input is the scale alone.
    from trtnet import emulator

    net, feeds = _warp_layer(n_inputs, 0 if declared == "layer" else n_inputs)
    (out,) = emulator.run(net, feeds).values()
    scale = feeds["x2"] if n_inputs > 2 else None
    bias = feeds["x3"] if n_inputs > 3 else None
    np.testing.assert_array_equal(out, reference.inverse_warp(feeds["x0"], feeds["x1"], scale, bias))


def test_emulated_plugin_refuses_a_layer_that_contradicts_num_inputs():
    from trtnet.emulator.layers import EmulatorTypeError

    with pytest.raises(EmulatorTypeError, match="the layer has 2 inputs, the num_inputs field says 4"):
        _warp_layer(2, 4)
