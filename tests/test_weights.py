"""trtnet.network.weights: checkpoint lookup errors and BatchNorm folding."""

from __future__ import annotations

import numpy as np
import pytest

from trtnet.network.weights import (
    MissingWeightError, WeightShapeError, WeightStore, fold_batchnorm, load_weights,
)


def _bn_store(rng, out=4, cin=3, k=3):
    return {
        "m.conv.weight": rng.standard_normal((out, cin, k, k)).astype(np.float16),
        "m.bn.weight": rng.uniform(0.5, 1.5, out).astype(np.float32),
        "m.bn.bias": rng.standard_normal(out).astype(np.float32),
        "m.bn.running_mean": rng.standard_normal(out).astype(np.float32),
        "m.bn.running_var": rng.uniform(0.01, 2.0, out).astype(np.float32),
    }


def test_fold_batchnorm_equals_conv_then_bn():
    # A 1x1 conv is a matrix product, so the folded layer must give BN(W x) exactly up
    # to float32 rounding of the folded weights (relative 1e-6).
    rng = np.random.default_rng(0)
    d = {k: v.astype(np.float64) for k, v in _bn_store(rng, out=5, cin=7, k=1).items()}
    x = rng.standard_normal((7, 11))
    w = d["m.conv.weight"].reshape(5, 7)
    ref = (w @ x - d["m.bn.running_mean"][:, None]) / np.sqrt(d["m.bn.running_var"][:, None] + 1e-5)
    ref = ref * d["m.bn.weight"][:, None] + d["m.bn.bias"][:, None]
    k, b = fold_batchnorm(d["m.conv.weight"], None, d["m.bn.weight"], d["m.bn.bias"],
                          d["m.bn.running_mean"], d["m.bn.running_var"])
    assert k.dtype == np.float32 and b.dtype == np.float32
    got = k.reshape(5, 7).astype(np.float64) @ x + b[:, None]
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-6)


def test_conv_bn_lookup_folds_and_returns_float32():
    store = WeightStore(_bn_store(np.random.default_rng(1)))
    k, b = store.conv_bn("m.conv", "m.bn", in_channels=3, out_channels=4, kernel=3)
    assert k.shape == (4, 3, 3, 3) and b.shape == (4,)
    assert k.dtype == np.float32 and b.dtype == np.float32


def test_missing_key_names_the_key_and_the_layer():
    store = WeightStore(_bn_store(np.random.default_rng(2)))
    with pytest.raises(MissingWeightError) as err:
        store.conv_bn("m.conv", "m.bn2", in_channels=3)
    msg = str(err.value)
    assert "'m.bn2.weight'" in msg and "'m.conv'" in msg


def test_wrong_shape_says_expected_and_found():
    store = WeightStore(_bn_store(np.random.default_rng(3)))
    with pytest.raises(WeightShapeError) as err:
        store.conv("m.conv", in_channels=8, bias=False, layer="backbone.layers.0.0.conv1")
    msg = str(err.value)
    assert "(4, 3, 3, 3)" in msg and "expected (?, 8, ?, ?)" in msg
    assert "backbone.layers.0.0.conv1" in msg


def test_depthwise_conv_expects_one_input_channel_per_group():
    rng = np.random.default_rng(4)
    store = WeightStore({"dw.weight": rng.standard_normal((6, 1, 3, 3)).astype(np.float32)})
    w, b = store.conv("dw", in_channels=6, groups=6, bias=False)
    assert w.shape == (6, 1, 3, 3) and b is None


def test_safetensors_file_round_trip(tmp_path):
    from safetensors.numpy import save_file

    data = _bn_store(np.random.default_rng(5))
    path = tmp_path / "w.safetensors"
    save_file(data, str(path))
    store = load_weights(path)
    assert sorted(store.keys()) == sorted(data)
    np.testing.assert_array_equal(store.get("m.conv.weight", layer="t"),
                                  data["m.conv.weight"].astype(np.float32))


def test_unsupported_file_type_is_a_clear_error(tmp_path):
    path = tmp_path / "w.onnx"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match="expected .safetensors or .pth"):
        load_weights(path)


def test_resolve_config_refuses_a_partial_checkpoint_naming_the_first_difference():
    from trtnet.network.random_weights import random_weights
    from trtnet.network.weights import WeightConfigError, WeightStore, resolve_config

    tensors = random_weights("yolact_edge_mobilenetv2")
    del tensors["proto_net.0.weight"]
    with pytest.raises(WeightConfigError, match=r"do not fit config yolact_edge_mobilenetv2 \(\d+ differences\):\n  .*proto_net\.0\.weight"):
        resolve_config(WeightStore(tensors), None)
