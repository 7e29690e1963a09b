"""Truncated, corrupted and wrong inputs give one clear ConverterError, and the CLI one line."""

from __future__ import annotations

import os

import numpy as np
import pytest

import convert_helpers as h
from weights_convert import (CheckpointError, ConfigMismatchError, ConverterError,
                             UnsupportedDtypeError, convert, load_state_dict)
from weights_convert.__main__ import main

FORMATS = "checkpoint_formats"


def _cut(src, dst, n: int):
    dst.write_bytes(src.read_bytes()[:n])
    return dst


def _flip(src, dst, pos: int):
    data = bytearray(src.read_bytes())
    data[pos] ^= 0xFF
    dst.write_bytes(bytes(data))
    return dst


@pytest.mark.parametrize("keep", [0.01, 0.5, 0.999])
def test_truncated_zip_is_reported(reference_dir, tmp_path, keep):
    src = reference_dir / FORMATS / "zip_fp32.pth"
    bad = _cut(src, tmp_path / "t.pth", int(src.stat().st_size * keep))
    with pytest.raises(CheckpointError, match="not a readable zip archive .truncated"):
        load_state_dict(bad)


@pytest.mark.parametrize("keep, match", [
    (2000, "corrupted or truncated pickle"),          # inside the object pickle
    (500_000, "file is truncated: storage '\\d+' ends at byte \\d+, the file has 500000"),
])
def test_truncated_legacy_file_is_reported(reference_dir, tmp_path, keep, match):
    bad = _cut(reference_dir / FORMATS / "legacy_fp32.pth", tmp_path / "t.pth", keep)
    with pytest.raises(CheckpointError, match=match):
        load_state_dict(bad)


def test_corrupted_storage_fails_its_crc(reference_dir, tmp_path):
    bad = _flip(reference_dir / FORMATS / "zip_fp32.pth", tmp_path / "c.pth", 50_000)
    with pytest.raises(CheckpointError, match="storage zip_fp32/data/6 fails its CRC check"):
        convert(bad, tmp_path / "out.safetensors")
    assert not (tmp_path / "out.safetensors").exists()
    assert sorted(os.listdir(tmp_path)) == ["c.pth"]   # the temp file is gone too


def test_corrupted_pickle_is_reported(reference_dir, tmp_path):
    bad = _flip(reference_dir / FORMATS / "zip_fp32.pth", tmp_path / "c.pth", 2000)
    with pytest.raises(CheckpointError, match="cannot read zip_fp32/data.pkl .corrupted"):
        load_state_dict(bad)


def test_corrupted_legacy_storage_count_is_reported(reference_dir, tmp_path):
    # byte 4841 is the first storage's element count (checked against its pickled record)
    bad = _flip(reference_dir / FORMATS / "legacy_fp32.pth", tmp_path / "c.pth", 4841)
    with pytest.raises(CheckpointError, match="holds 191 elements, its record says 64"):
        load_state_dict(bad)


@pytest.mark.parametrize("content, match", [
    (b"", "empty file"),
    (b"hello, I am not a checkpoint" * 10, "not a PyTorch checkpoint"),
])
def test_not_a_checkpoint(tmp_path, content, match):
    (tmp_path / "x.pth").write_bytes(content)
    with pytest.raises(CheckpointError, match=match):
        load_state_dict(tmp_path / "x.pth")


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        convert(tmp_path / "nope.pth", tmp_path / "out.safetensors")


def test_given_config_mismatch_names_first_key_with_shapes(reference_dir, tmp_path):
    # a ResNet-50 video checkpoint is not the ResNet-101 yolact_edge_vid
    with pytest.raises(ConfigMismatchError) as err:
        convert(reference_dir / "vid_resnet50/weights.pth", tmp_path / "o.safetensors",
                config="yolact_edge_vid")
    assert ("does not match config yolact_edge_vid: backbone.layers.2.6.conv1.weight: missing "
            "(expected shape (256, 1024, 1, 1))") in str(err.value)
    assert not (tmp_path / "o.safetensors").exists()


def test_given_config_class_count_mismatch(reference_dir, tmp_path):
    with pytest.raises(ConfigMismatchError, match=(
            r"yolact_edge_resnet50: prediction_layers.0.conf_layer.weight: expected shape "
            r"\(243, 256, 3, 3\), found \(123, 256, 3, 3\)")):
        convert(reference_dir / "vid_resnet50/weights.pth", tmp_path / "o.safetensors",
                config="yolact_edge_resnet50")


def test_partial_checkpoint_with_config_is_an_error(reference_dir, tmp_path):
    with pytest.raises(ConfigMismatchError, match="backbone.layers.0.1.conv1.weight: missing"):
        convert(reference_dir / FORMATS / "zip_fp32.pth", tmp_path / "o.safetensors",
                config="yolact_edge_resnet50")


def test_unknown_config_name(reference_dir, tmp_path):
    with pytest.raises(ConverterError, match="unknown config 'yolact_edge_r18'; known configs"):
        convert(reference_dir / FORMATS / "zip_fp32.pth", tmp_path / "o.safetensors",
                config="yolact_edge_r18")


def test_unsupported_dtype_is_named(tmp_path):
    tensors, storages = h.simple({"w": np.zeros(4, np.float32)})
    pkl = h.dumps(h.ODict([("w", h.Reduce(h.Global("torch._utils", "_rebuild_tensor_v2"), (
        h.PersId(("storage", h.Global("torch", "ComplexFloatStorage"), "0", "cpu", 2)),
        0, (2,), (1,), False, h.ODict())))]))
    h.write_zip(tmp_path / "c.pth", tensors, storages, data_pkl=pkl)
    with pytest.raises(UnsupportedDtypeError, match="complex64 tensors .torch.ComplexFloatStorage"):
        load_state_dict(tmp_path / "c.pth")


def test_fp16_overflow_is_an_error_not_inf(tmp_path):
    tensors, storages = h.simple({"bn.running_var": np.array([1.0, 1e6], np.float32)})
    h.write_zip(tmp_path / "big.pth", tensors, storages)
    with pytest.raises(ConverterError, match="'bn.running_var' holds values up to 1e\\+06, "
                                             "outside the float16 range"):
        convert(tmp_path / "big.pth", tmp_path / "o.safetensors", dtype="fp16")
    assert not (tmp_path / "o.safetensors").exists()


def test_tensor_reaching_past_its_storage_is_reported(tmp_path):
    tensors, storages = h.simple({"w": np.zeros(4, np.float32)})
    tensors["w"] = h.Tensor("0", (3, 2))
    h.write_zip(tmp_path / "c.pth", tensors, storages)
    with pytest.raises(CheckpointError, match="tensor 'w' .* reaches byte 24 of a 16-byte storage"):
        load_state_dict(tmp_path / "c.pth")


def test_existing_output_is_untouched_on_failure(reference_dir, tmp_path):
    out = tmp_path / "o.safetensors"
    out.write_bytes(b"previous")
    bad = _flip(reference_dir / FORMATS / "zip_fp32.pth", tmp_path / "c.pth", 50_000)
    with pytest.raises(CheckpointError):
        convert(bad, out)
    assert out.read_bytes() == b"previous"


@pytest.mark.parametrize("args, match", [
    (["{d}/t.pth", "{d}/o.safetensors"], "weights_convert: error: {d}/t.pth: not a readable zip archive"),
    (["{ref}/vid_resnet50/weights.pth", "{d}/o.safetensors", "--config", "yolact_edge"],
     "weights_convert: error: {ref}/vid_resnet50/weights.pth does not match config yolact_edge: "),
    (["{d}/none.pth", "{d}/o.safetensors"], "weights_convert: error: checkpoint not found: {d}/none.pth"),
])
def test_cli_error_is_one_line_and_nonzero(reference_dir, tmp_path, capsys, args, match):
    _cut(reference_dir / FORMATS / "zip_fp32.pth", tmp_path / "t.pth", 5000)
    fill = dict(d=tmp_path, ref=reference_dir)
    rc = main([a.format(**fill) for a in args])
    err = capsys.readouterr().err
    assert rc == 1
    assert err.startswith(match.format(**fill)) and err.count("\n") == 1
    assert not (tmp_path / "o.safetensors").exists()


def test_cli_unwritable_output_directory(reference_dir, tmp_path, capsys):
    rc = main([str(reference_dir / FORMATS / "zip_fp32.pth"),
               str(tmp_path / "missing_dir" / "o.safetensors")])
    err = capsys.readouterr().err
    assert rc == 1 and err.startswith("weights_convert: error: ") and err.count("\n") == 1
    assert "missing_dir does not exist" in err and not (tmp_path / "missing_dir").exists()


def test_broadcast_view_memory_bomb_is_refused(tmp_path):
    # one stored element viewed with stride 0 as 2**40 elements (4 TiB as float32)
    tensors, storages = h.simple({"w": np.zeros(1, np.float32)})
    tensors["w"] = h.Tensor("0", (2 ** 40,), strides=(0,))
    h.write_zip(tmp_path / "bomb.pth", tensors, storages)
    with pytest.raises(CheckpointError, match="would take 4398046511104 bytes .* refusing"):
        load_state_dict(tmp_path / "bomb.pth")


def test_storage_size_differing_from_its_record_is_reported(tmp_path):
    tensors, storages = h.simple({"w": np.zeros(4, np.float32)})
    pkl = h.dumps(h.ODict([("w", h.Reduce(h.Global("torch._utils", "_rebuild_tensor_v2"), (
        h.PersId(("storage", h.Global("torch", "FloatStorage"), "0", "cpu", 8)),
        0, (4,), (1,), False, h.ODict())))]))
    h.write_zip(tmp_path / "c.pth", tensors, storages, data_pkl=pkl)
    with pytest.raises(CheckpointError, match="storage archive/data/0 holds 16 bytes, its "
                                              "record says 8 x 4 bytes"):
        load_state_dict(tmp_path / "c.pth")


def test_quantized_tensor_is_unsupported_not_unsafe(tmp_path):
    tensors, storages = h.simple({"w": np.zeros(4, np.float32)})
    pkl = h.dumps(h.ODict([("w", h.Reduce(h.Global("torch._utils", "_rebuild_qtensor"), ()))]))
    h.write_zip(tmp_path / "q.pth", tensors, storages, data_pkl=pkl)
    with pytest.raises(UnsupportedDtypeError, match="holds quantized tensors "
                                                    r"\(torch._utils._rebuild_qtensor\)"):
        load_state_dict(tmp_path / "q.pth")


def test_torchscript_archive_is_named(tmp_path):
    import zipfile

    with zipfile.ZipFile(tmp_path / "ts.pt", "w") as z:
        z.writestr("model/data.pkl", h.dumps({}))
        z.writestr("model/constants.pkl", h.dumps(()))
        z.writestr("model/code/__torch__/yolact.py", "")
    with pytest.raises(CheckpointError, match="a TorchScript archive .torch.jit.save., not a "
                                              "torch.save state dict"):
        load_state_dict(tmp_path / "ts.pt")
