"""Checkpoint layouts and dtypes torch can write, made byte by byte (tests/convert_helpers).

Values are compared exactly: the converter only moves bytes (and widens bfloat16/float64
by the documented policy).
"""

from __future__ import annotations

import numpy as np
import pytest
from safetensors.numpy import load_file

import convert_helpers as h
from weights_convert import convert, load_state_dict

RNG = np.random.default_rng(7)
BASE = RNG.standard_normal((4, 6)).astype(np.float32)
STATE = {
    "w32": BASE,
    "w16": BASE.astype(np.float16),
    "w64": BASE.astype(np.float64),
    "i64": np.arange(-3, 3, dtype=np.int64).reshape(2, 3),
    "i32": np.array([-(2 ** 31), 2 ** 31 - 1], np.int32),
    "i16": np.array([-5, 7], np.int16),
    "i8": np.array([-128, 127], np.int8),
    "u8": np.array([0, 255], np.uint8),
    "flag": np.array([True, False, True]),
    "count": np.array(12345678901, np.int64),        # 0-d, like num_batches_tracked
    "empty": np.zeros((0, 3), np.float32),
}
WRITERS = {
    "zip": h.write_zip,
    "zip-big-endian": lambda p, t, s: h.write_zip(p, t, s, byteorder="big"),
    "zip-deflated": lambda p, t, s: h.write_zip(p, t, s, compress=True),
    "legacy": h.write_legacy,
    "legacy-tar": h.write_tar,
}


def _with_views():
    tensors, storages = h.simple(STATE)
    # views into w32's storage (key "0"): offset, transposed (non-contiguous), strided rows
    tensors["view_offset"] = h.Tensor("0", (2, 6), offset=12)
    tensors["transposed"] = h.Tensor("0", (6, 4), strides=(1, 6))
    tensors["every_other_row"] = h.Tensor("0", (2, 6), strides=(12, 1), offset=6)
    return tensors, storages


EXPECTED_VIEWS = {
    "view_offset": BASE[2:],
    "transposed": BASE.T,
    "every_other_row": BASE[1::2],
}


@pytest.mark.parametrize("fmt", WRITERS)
def test_every_dtype_and_view_reads_exactly(tmp_path, fmt):
    WRITERS[fmt](tmp_path / "c.pth", *_with_views())
    got = load_state_dict(tmp_path / "c.pth")
    for key, want in {**STATE, **EXPECTED_VIEWS}.items():
        if want.dtype == np.float64:   # default policy: float64 -> float32
            want = want.astype(np.float32)
        assert got[key].dtype == want.dtype, key
        assert got[key].shape == want.shape, key
        np.testing.assert_array_equal(got[key], want, err_msg=key)


@pytest.mark.parametrize("fmt", WRITERS)
def test_safetensors_output_equals_the_checkpoint(tmp_path, fmt):
    WRITERS[fmt](tmp_path / "c.pth", *_with_views())
    convert(tmp_path / "c.pth", tmp_path / "o.safetensors", durable=False)
    out = load_file(str(tmp_path / "o.safetensors"))
    assert set(out) == set(STATE) | set(EXPECTED_VIEWS)
    np.testing.assert_array_equal(out["transposed"], BASE.T)
    assert out["count"].shape == () and out["count"] == 12345678901
    assert out["empty"].shape == (0, 3)


def test_arrays_are_writable_and_never_alias_each_other(tmp_path):
    h.write_zip(tmp_path / "c.pth", *_with_views())
    got = load_state_dict(tmp_path / "c.pth")
    assert all(a.flags.writeable and a.flags.c_contiguous for a in got.values())
    got["w32"][:] = 0
    np.testing.assert_array_equal(got["view_offset"], BASE[2:])


def test_bfloat16_becomes_float32_exactly(tmp_path):
    values = np.array([1.0, -2.5, 3.140625, 2.0 ** 100, -0.0], np.float32)  # exact in bfloat16
    bits = (values.view(np.uint32) >> 16).astype(np.uint16)
    tensors = {"bf": h.Tensor("0", (5,))}
    storages = {"0": h.Storage(bits, "bfloat16")}
    for writer in (h.write_zip, h.write_legacy):
        writer(tmp_path / "b.pth", tensors, storages)
        got = load_state_dict(tmp_path / "b.pth")["bf"]
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got.view(np.uint32), values.view(np.uint32))


def test_parameter_and_tensor_subclass_records(tmp_path):
    # torch.nn.Parameter pickles through _rebuild_parameter; torch >= 2 may wrap tensors
    # in _rebuild_from_type_v2(func, torch.Tensor, args, state)
    tensors, storages = h.simple({"a": BASE, "b": BASE[:1]})
    v2 = h.Global("torch._utils", "_rebuild_tensor_v2")

    def args(key, shape):
        return (h.PersId(("storage", h.Global("torch", "FloatStorage"), key, "cpu", 24 if key == "0" else 6)),
                0, shape, (6, 1), False, h.ODict())

    obj = h.ODict([
        ("a", h.Reduce(h.Global("torch._utils", "_rebuild_parameter"),
                       (h.Reduce(v2, args("0", (4, 6))), True, h.ODict()))),
        ("b", h.Reduce(h.Global("torch._tensor", "_rebuild_from_type_v2"),
                       (v2, h.Global("torch", "Tensor"), args("1", (1, 6)), {}))),
    ])
    h.write_zip(tmp_path / "p.pth", tensors, storages, data_pkl=h.dumps(obj))
    got = load_state_dict(tmp_path / "p.pth")
    np.testing.assert_array_equal(got["a"], BASE)
    np.testing.assert_array_equal(got["b"], BASE[:1])


@pytest.mark.parametrize("wrap", ["state_dict", "model", "model_state_dict"])
def test_state_dict_wrapped_in_a_training_checkpoint(tmp_path, wrap):
    tensors, storages = h.simple({"conv.weight": BASE})
    h.write_zip(tmp_path / "w.pth", tensors, storages, wrap=wrap)
    result = convert(tmp_path / "w.pth", tmp_path / "o.safetensors", durable=False)
    assert f"entry {wrap!r}" in result.notes[0]
    np.testing.assert_array_equal(load_file(str(tmp_path / "o.safetensors"))["conv.weight"], BASE)


def test_data_parallel_prefix_is_removed(tmp_path):
    tensors, storages = h.simple({"module.conv.weight": BASE, "module.conv.bias": BASE[0]})
    h.write_zip(tmp_path / "dp.pth", tensors, storages)
    assert sorted(load_state_dict(tmp_path / "dp.pth")) == ["conv.bias", "conv.weight"]


def test_dtype_fp16_casts_floats_only(tmp_path):
    h.write_zip(tmp_path / "c.pth", *h.simple(STATE))
    got = load_state_dict(tmp_path / "c.pth", dtype="fp16")
    assert {k for k, v in got.items() if v.dtype == np.float16} == {"w32", "w16", "w64", "empty"}
    np.testing.assert_array_equal(got["w32"], BASE.astype(np.float16))
    np.testing.assert_array_equal(got["i64"], STATE["i64"])


def test_yolact_fpn_keys_are_renamed_like_upstream(tmp_path):
    tensors, storages = h.simple({"fpn.lat_layers.0.weight": BASE, "fpn.pred_layers.0.bias": BASE[0],
                                  "fpn.downsample_layers.1.bias": BASE[1]})
    h.write_zip(tmp_path / "y.pth", tensors, storages)
    assert sorted(load_state_dict(tmp_path / "y.pth")) == [
        "fpn_phase_1.lat_layers.0.weight", "fpn_phase_2.downsample_layers.1.bias",
        "fpn_phase_2.pred_layers.0.bias"]
