"""The converter on the real torch.save checkpoints of the reference data.

Every tensor must reproduce the sha256 in ``weights_index.json`` (computed by PyTorch
itself from the values it loads): exact, no tolerance. The yolact_edge indexes record 0-d
tensors (``num_batches_tracked``) with shape [1], the YOLACT++ one with []; torch stores
them as shape ().
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import load_file

from weights_convert import __version__, convert, load_state_dict

CASES = {
    "vid_resnet50/weights.pth": "yolact_edge_vid_resnet50",
    "mobilenetv2/weights.pth": "yolact_edge_mobilenetv2",
    # dbolya/yolact: DCNv2 backbone, 9 anchors, maskiou_net, FPN keys fpn.* (renamed)
    "yolact_plus_resnet50/weights.pth": "yolact_plus_resnet50",
    "checkpoint_formats/zip_fp32.pth": None,      # partial state dicts: no config
    "checkpoint_formats/legacy_fp32.pth": None,
    "checkpoint_formats/wrapped_fp32.pth": None,
}


def _yolact_fpn_name(key: str) -> str:
    """dbolya/yolact's fpn.* keys under the names the converter writes (as yolact_edge's
    load_weights renames them: lat_layers to fpn_phase_1, the rest to fpn_phase_2)."""
    if key.startswith("fpn.lat_layers."):
        return "fpn_phase_1." + key[4:]
    return "fpn_phase_2." + key[4:] if key.startswith("fpn.") else key


def _index(path: Path) -> dict:
    index = json.loads((path.parent / "weights_index.json").read_text())
    return {_yolact_fpn_name(k): v for k, v in index.items()}


def _sha(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tobytes()
                          ).hexdigest()


def _index_shape(a: np.ndarray) -> list:
    return list(a.shape) if a.ndim else [1]


def _assert_matches_index(tensors: dict, index: dict) -> None:
    assert sorted(tensors) == sorted(index)
    for key, want in index.items():
        a = tensors[key]
        assert str(a.dtype) == want["dtype"], key
        # yolact_edge's indexes write a 0-d tensor as [1], the yolact_plus_resnet50 one as []
        assert want["shape"] in (list(a.shape), _index_shape(a)), key
        assert _sha(a) == want["sha256"], key


@pytest.fixture(scope="module")
def converted(reference_dir, tmp_path_factory) -> dict:
    """Each case converted once with defaults: name -> (ConversionResult, output path)."""
    out = {}
    for i, name in enumerate(CASES):
        dst = tmp_path_factory.mktemp("converted") / f"{i}.safetensors"
        out[name] = (convert(reference_dir / name, dst, durable=False), dst)
    return out


@pytest.mark.parametrize("name", CASES)
def test_load_state_dict_reproduces_every_checksum(reference_dir, name):
    path = reference_dir / name
    _assert_matches_index(load_state_dict(path), _index(path))


@pytest.mark.parametrize("name", CASES)
def test_converted_safetensors_reproduce_every_checksum(reference_dir, converted, name):
    _assert_matches_index(load_file(str(converted[name][1])), _index(reference_dir / name))


@pytest.mark.parametrize("name", CASES)
def test_config_is_recognised_from_keys_and_shapes(converted, name):
    result = converted[name][0]
    assert result.config == CASES[name]
    if CASES[name] is None:   # partial dicts still convert, with a warning naming the closest
        assert result.closest_config == "yolact_edge_resnet50"
        assert any("closest is yolact_edge_resnet50" in w for w in result.warnings)
    else:
        assert result.warnings == []


def test_yolact_checkpoint_keys_are_renamed_with_a_note(reference_dir, converted):
    result, out = converted["yolact_plus_resnet50/weights.pth"]
    raw = json.loads((reference_dir / "yolact_plus_resnet50/weights_index.json").read_text())
    assert sum(k.startswith("fpn.") for k in raw) == 16  # 3 lat + 3 pred + 2 downsample, w + b
    assert any("renamed YOLACT keys fpn.*" in n for n in result.notes)
    with safe_open(str(out), "np") as f:
        assert f.metadata()["config"] == "yolact_plus_resnet50"
        assert not any(k.startswith("fpn.") for k in f.keys())  # noqa: SIM118 (safe_open has no __iter__)


def test_metadata_names_config_source_hash_and_converter(reference_dir, converted):
    src = reference_dir / "mobilenetv2/weights.pth"
    out = converted["mobilenetv2/weights.pth"][1]
    with safe_open(str(out), "np") as f:
        meta = f.metadata()
    assert meta["config"] == "yolact_edge_mobilenetv2"
    assert meta["source_sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    assert meta["converter_version"] == f"weights_convert {__version__}"


def test_wrapped_state_dict_is_found_under_its_key(converted):
    result = converted["checkpoint_formats/wrapped_fp32.pth"][0]
    assert any("'state_dict'" in n for n in result.notes)


def test_fp32_to_fp16_rounds_every_float_tensor(reference_dir, tmp_path):
    src = reference_dir / "checkpoint_formats/zip_fp32.pth"
    index = _index(src)
    out = tmp_path / "h.safetensors"
    convert(src, out, dtype="fp16", durable=False)
    half = load_file(str(out))
    full = load_state_dict(src)   # exact float32 values (checksums checked above)
    for key, want in index.items():
        if want["dtype"] == "int64":
            assert half[key].dtype == np.int64 and _sha(half[key]) == want["sha256"]
        else:  # round-to-nearest-even, as torch's .half()
            assert half[key].dtype == np.float16
            np.testing.assert_array_equal(half[key], full[key].astype(np.float16))


def test_fp16_checkpoint_widened_to_fp32_is_exact(reference_dir, tmp_path):
    src = reference_dir / "mobilenetv2/weights.pth"
    out = tmp_path / "f.safetensors"
    convert(src, out, dtype="fp32", durable=False)
    wide = load_file(str(out))
    index = _index(src)
    for key, want in index.items():
        a = wide[key]
        if want["dtype"] == "float16":
            assert a.dtype == np.float32
            a = a.astype(np.float16)    # float16 -> float32 -> float16 is the identity
        assert _sha(a) == want["sha256"], key


def test_given_config_that_matches_converts(reference_dir, tmp_path):
    result = convert(reference_dir / "mobilenetv2/weights.pth", tmp_path / "m.safetensors",
                     config="yolact_edge_mobilenetv2_config", durable=False)
    assert result.config == "yolact_edge_mobilenetv2" and result.warnings == []


def test_video_checkpoint_for_image_config_keeps_flow_keys_with_warning(reference_dir, tmp_path):
    out = tmp_path / "v.safetensors"
    result = convert(reference_dir / "vid_resnet50/weights.pth", out,
                     config="yolact_edge_youtubevis_resnet50", durable=False)
    assert result.config == "yolact_edge_youtubevis_resnet50"
    assert len(result.warnings) == 1
    assert "37 keys are not part of config yolact_edge_youtubevis_resnet50" in result.warnings[0]
    assert "flow_net.pred3.scale.bias" in load_file(str(out))


def test_every_reference_checkpoint_is_covered(reference_dir):
    found = {str(p.relative_to(reference_dir)) for p in reference_dir.glob("*/*.pth")}
    assert found == set(CASES)


def test_load_state_dict_reads_converted_safetensors_back(reference_dir, converted):
    name = "checkpoint_formats/legacy_fp32.pth"
    _assert_matches_index(load_state_dict(converted[name][1]), _index(reference_dir / name))


def test_cli_converts_partial_checkpoint_with_warning(reference_dir, tmp_path, capsys):
    from weights_convert.__main__ import main

    out = tmp_path / "p.safetensors"
    rc = main([str(reference_dir / "checkpoint_formats/legacy_fp32.pth"), str(out)])
    captured = capsys.readouterr()
    assert rc == 0 and out.is_file()
    assert captured.err.startswith("warning: the checkpoint matches no yolact_edge config; "
                                   "closest is yolact_edge_resnet50, which differs in 324 keys: "
                                   "backbone.layers.0.1.conv1.weight: missing")
    assert "36 tensors" in captured.out and "config none (closest: yolact_edge_resnet50)" in captured.out


@pytest.mark.parametrize("name", ["vid_resnet50/weights.pth", "checkpoint_formats/legacy_fp32.pth"])
def test_checkpoint_shapes_without_reading_data(reference_dir, converted, name):
    from weights_convert import checkpoint_shapes

    want = {k: tuple(v["shape"]) for k, v in _index(reference_dir / name).items()}
    for path in (reference_dir / name, converted[name][1]):
        got = checkpoint_shapes(path)
        assert {k: s or (1,) for k, s in got.items()} == want
