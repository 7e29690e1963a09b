"""The converter on checkpoints of every dbolya/yolact config (reference/checkpoint_shapes).

Each checkpoint is synthesised exactly as its JSON lays it out (keys, order, shapes; fpn.*
names; float16 values, int64 0-d num_batches_tracked) and written as a real torch zip
checkpoint by tests/convert_helpers.py. The float tensors are views at random offsets into
one shared random storage (as torch writes tied tensors), so files stay small while every
tensor's values are known. Checked: it converts, every value survives, and it is recognised
as its own config (ties broken by upstream's released file name); which configs each fits;
the message when nothing breaks a tie; a DCN / maskiou checkpoint given as a plain config.
"""

from __future__ import annotations

import json

import convert_helpers as ch
import numpy as np
import pytest
from safetensors import safe_open

from trtnet.network.weight_spec import (
    AmbiguousConfigError,
    compare,
    config_from_filename,
    expected_shapes,
    fitting_configs,
    recognise,
)
from weights_convert import convert, load_state_dict
from weights_convert.errors import ConfigMismatchError

FAMILY = ("yolact_base", "yolact_im400", "yolact_im700", "yolact_darknet53", "yolact_resnet50",
          "yolact_plus_base", "yolact_plus_resnet50")

# Which configs a checkpoint of each can build (same keys and shapes after the fpn.* rename).
FITS = {
    "yolact_base": ["yolact_edge", "yolact_base", "yolact_im400", "yolact_im700"],
    "yolact_im400": ["yolact_edge", "yolact_base", "yolact_im400", "yolact_im700"],
    "yolact_im700": ["yolact_edge", "yolact_base", "yolact_im400", "yolact_im700"],
    "yolact_darknet53": ["yolact_darknet53"],
    "yolact_resnet50": ["yolact_edge_resnet50", "yolact_resnet50"],
    "yolact_plus_base": ["yolact_plus_base"],
    "yolact_plus_resnet50": ["yolact_plus_resnet50"],
}
# What breaks each tie: dbolya's fpn.* naming rules out the yolact_edge twin; only upstream's
# file name tells yolact_base, im400 and im700 apart.
CHOSEN_BY = {"yolact_base": "file name", "yolact_im400": "file name", "yolact_im700": "file name",
             "yolact_resnet50": "fpn naming"}


def _json_shapes(reference_dir, name: str) -> dict:
    path = reference_dir / "checkpoint_shapes" / f"{name}_config.json"
    return {k: tuple(v) for k, v in json.loads(path.read_text())["shapes"].items()}


def _renamed(key: str) -> str:
    """The converter's documented rename of dbolya's FPN keys (weights_convert.statedict)."""
    if key.startswith("fpn.lat_layers."):
        return "fpn_phase_1." + key[4:]
    return "fpn_phase_2." + key[4:] if key.startswith("fpn.") else key


def _write_checkpoint(path, shapes: dict, seed: int = 0) -> dict:
    """A torch zip checkpoint with exactly ``shapes`` (in order); returns key -> values."""
    rng = np.random.default_rng(seed)
    biggest = max(int(np.prod(s)) for s in shapes.values())
    pool = rng.standard_normal(2 * biggest).astype(np.float16)
    storages = {"pool": ch.Storage(pool)}
    tensors, values = {}, {}
    for i, (key, shape) in enumerate(shapes.items()):
        n = int(np.prod(shape))
        if key.endswith("num_batches_tracked"):
            assert shape == ()
            storages[f"i{i}"] = ch.Storage(np.array([i], np.int64))
            tensors[key] = ch.Tensor(f"i{i}", ())
            values[key] = np.array(i, np.int64)
        elif key.endswith("running_var"):   # positive, so the networks built from it are finite
            storages[f"v{i}"] = ch.Storage(rng.uniform(0.5, 1.5, shape).astype(np.float16))
            tensors[key] = ch.Tensor(f"v{i}", shape)
            values[key] = storages[f"v{i}"].data.reshape(shape)
        else:
            offset = int(rng.integers(0, biggest))
            tensors[key] = ch.Tensor("pool", shape, offset=offset)
            values[key] = pool[offset:offset + n].reshape(shape)
    ch.write_zip(path, tensors, storages)
    return values


@pytest.mark.parametrize("name", FAMILY)
def test_family_checkpoint_converts_and_is_recognised_as_itself(reference_dir, tmp_path, name):
    shapes = _json_shapes(reference_dir, name)
    src = tmp_path / f"{name}_54_800000.pth"   # upstream's released naming
    values = _write_checkpoint(src, shapes, seed=len(shapes))
    out = tmp_path / "out.safetensors"
    result = convert(src, out, durable=False)
    assert result.config == name
    assert result.warnings == []
    assert result.tensors == len(shapes)
    chosen = [n for n in result.notes if n.startswith(f"config {name} chosen by its ")]
    if name in CHOSEN_BY:
        note = (f"config {name} chosen by its {CHOSEN_BY[name]} among {', '.join(FITS[name])} "
                "(same keys and shapes)")
        assert chosen == [note]
    else:
        assert chosen == []
    with safe_open(str(out), "np") as f:
        assert f.metadata()["config"] == name
        assert list(f.keys()) == sorted(_renamed(k) for k in shapes)  # safetensors sorts keys
        for key, want in values.items():
            got = f.get_tensor(_renamed(key))
            assert got.dtype == want.dtype and got.shape == want.shape, key
            np.testing.assert_array_equal(got, want, err_msg=key)


@pytest.mark.parametrize("name", FAMILY)
def test_recognition_table(reference_dir, name):
    shapes = {_renamed(k): s for k, s in _json_shapes(reference_dir, name).items()}
    assert shapes == expected_shapes(name)
    assert fitting_configs(shapes) == FITS[name]
    # dbolya's fpn.* naming rules out yolact_edge; the released name picks the config
    found = recognise(shapes, fpn_naming="yolact", filename=f"/models/{name}_54_800000.pth")
    assert found.config == name and found.diffs == []
    assert list(found.fitting) == FITS[name]
    assert found.chosen_by == CHOSEN_BY.get(name, "shapes")


def test_tie_without_a_telling_name_says_which_configs_fit_and_how_to_choose(reference_dir, tmp_path):
    src = tmp_path / "weights.pth"
    _write_checkpoint(src, _json_shapes(reference_dir, "yolact_im700"))
    with pytest.raises(ConfigMismatchError) as err:
        convert(src, tmp_path / "o.safetensors", durable=False)
    msg = str(err.value)
    assert ("fits 3 configs with the same keys and shapes: yolact_base (550x550), yolact_im400 (400x400), "
            "yolact_im700 (700x700)") in msg
    assert "--config NAME" in msg and "<config>_<epoch>_<iteration>.pth" in msg
    assert "yolact_edge" not in msg   # fpn.* keys: a dbolya/yolact checkpoint
    assert not (tmp_path / "o.safetensors").exists()
    # --config decides
    result = convert(src, tmp_path / "o.safetensors", config="yolact_im700", durable=False)
    assert result.config == "yolact_im700" and result.warnings == []


def test_yolact_edge_naming_breaks_the_tie_the_other_way():
    shapes = expected_shapes("yolact_edge_resnet50")
    assert recognise(shapes, fpn_naming="yolact_edge").config == "yolact_edge_resnet50"
    assert recognise(shapes, fpn_naming="yolact").config == "yolact_resnet50"
    # without a naming hint (a converted file): the two build the same network, so either will do
    found = recognise(shapes)
    assert (found.config, found.chosen_by) == ("yolact_edge_resnet50", "equivalent configs")
    # but yolact_base's twins differ in input size: nothing decides
    with pytest.raises(AmbiguousConfigError, match=r"fits 4 configs .*: yolact_edge \(550x550\), yolact_base "
                                                   r"\(550x550\), yolact_im400 \(400x400\), yolact_im700"):
        recognise(expected_shapes("yolact_base"), filename="model.safetensors")


def test_dcn_and_maskiou_checkpoint_as_plain_config_is_an_error(reference_dir, tmp_path):
    src = tmp_path / "yolact_plus_resnet50_54_800000.pth"
    _write_checkpoint(src, _json_shapes(reference_dir, "yolact_plus_resnet50"))
    with pytest.raises(ConfigMismatchError) as err:
        convert(src, tmp_path / "o.safetensors", config="yolact_resnet50", durable=False)
    msg = str(err.value)
    assert "does not match config yolact_resnet50: prediction_layers.0.bbox_layer.weight: expected shape " \
           "(12, 256, 3, 3), found (36, 256, 3, 3)" in msg
    assert ("extra keys of a deformable (DCNv2) backbone conv (YOLACT++) in 13 modules (backbone.layers.1.0.conv2, "
            "backbone.layers.1.1.conv2, backbone.layers.1.2.conv2 and 10 more)") in msg
    assert "extra keys of the YOLACT++ mask re-scoring net (maskiou_net) in 6 modules" in msg


def test_extra_dcn_keys_alone_block_a_plain_config():
    # 3 anchors, no maskiou: only the DCN parts differ, and they are not "kept unused"
    shapes = dict(expected_shapes("yolact_resnet50"))
    shapes["backbone.layers.1.0.conv2.bias"] = (128,)
    shapes["backbone.layers.1.0.conv2.conv_offset_mask.weight"] = (27, 128, 3, 3)
    shapes["backbone.layers.1.0.conv2.conv_offset_mask.bias"] = (27,)
    diffs = compare(expected_shapes("yolact_resnet50"), shapes)
    assert [d.kind for d in diffs] == ["extra"] * 3 and all(d.blocking for d in diffs)
    assert str(diffs[0]).endswith("a part of a deformable (DCNv2) backbone conv (YOLACT++) it would drop")
    assert fitting_configs(shapes) == []
    assert recognise(shapes).config is None
    # unused extras (semantic_seg_conv-like heads, flow layers) still do not block
    shapes = dict(expected_shapes("yolact_resnet50"))
    shapes["flow_net.upflow2.weight"] = (2, 2, 3, 3)
    assert fitting_configs(shapes) == ["yolact_edge_resnet50", "yolact_resnet50"]


@pytest.mark.parametrize("filename, config", [
    ("yolact_plus_base_54_800000.pth", "yolact_plus_base"),
    ("/x/yolact_im700_54_800000.pth", "yolact_im700"),
    ("yolact_im700_54_800000_interrupt.pth", "yolact_im700"),   # upstream drops "interrupt"
    ("yolact_edge_resnet50_54_800000.pth", "yolact_edge_resnet50"),
    ("yolact_im400.safetensors", "yolact_im400"),               # named exactly after a config
    ("yolact_base_config.pth", "yolact_base"),
    ("yolact_base_54_last.pth", None),                          # upstream's int(iteration) fails
    ("yolact_base_54.pth", None),                               # "yolact" is no config
    ("weights.pth", None),
    ("yolact_plus_54_800000.pth", None),
])
def test_config_from_filename_reads_names_as_upstream(filename, config):
    assert config_from_filename(filename) == config


def test_build_side_recognition_uses_the_recorded_config(reference_dir, tmp_path, capsys):
    from safetensors.numpy import save_file

    from trtnet.build import main
    from trtnet.network.weights import WeightConfigError, WeightStore, resolve_config

    src = tmp_path / "weights.pth"
    _write_checkpoint(src, _json_shapes(reference_dir, "yolact_im700"))
    out = tmp_path / "model.safetensors"
    convert(src, out, config="yolact_im700", durable=False)
    assert resolve_config(WeightStore.load(out)).name == "yolact_im700"   # metadata "config"
    bare = tmp_path / "bare.safetensors"   # the same tensors without the converter's metadata
    save_file(load_state_dict(out), str(bare))
    with pytest.raises(WeightConfigError, match="fits 4 configs"):
        resolve_config(WeightStore.load(bare))
    named = tmp_path / "yolact_im700_54_800000.safetensors"
    bare.rename(named)
    assert resolve_config(WeightStore.load(named)).name == "yolact_im700"   # upstream's naming
    assert main(["--weights", str(tmp_path / "model.safetensors"), "--dry-run"]) == 0
    assert "resizes every frame to 700x700" in capsys.readouterr().out
