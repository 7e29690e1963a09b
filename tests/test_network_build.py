"""python -m trtnet.build: argument checking and the path up to TensorRT's Builder.

No GPU/TensorRT runtime here: with the real bindings over stub libraries the build must
stop at trt.Builder with a clear BuildError, not anywhere earlier.
"""

from __future__ import annotations

import argparse

import pytest

from trtnet import build
from trtnet.media.files import write_atomically


def test_frame_size_parses_height_by_width():
    assert build.parse_frame_size("480x640") == (480, 640)
    with pytest.raises(argparse.ArgumentTypeError, match="HEIGHTxWIDTH"):
        build.parse_frame_size("480")


def test_unknown_config_is_reported(tmp_path, capsys):
    w = tmp_path / "w.safetensors"
    w.write_bytes(b"")
    assert build.main(["--config", "yolact_nope", "--weights", str(w), "-o", str(tmp_path / "e")]) == 1
    assert "unknown config 'yolact_nope'" in capsys.readouterr().err


def test_missing_weights_file_is_reported(tmp_path, capsys):
    rc = build.main(["--config", "yolact_edge_resnet50", "--weights", str(tmp_path / "none.safetensors"),
                     "-o", str(tmp_path / "e")])
    assert rc == 1
    assert "weights file not found" in capsys.readouterr().err


def test_real_bindings_fail_only_at_builder(trt):
    with pytest.raises(build.BuildError, match="could not create a builder"):
        build.build_engine(trt, {}, "yolact_edge_resnet50")


def test_engine_file_is_written_atomically(tmp_path):
    out = tmp_path / "model.engine"  # the folder must exist: write_atomically never creates it
    write_atomically(out, b"abc")
    write_atomically(out, b"defg")
    assert out.read_bytes() == b"defg"
    assert [p.name for p in out.parent.iterdir()] == ["model.engine"]


def _store(config_name: str):
    from trtnet.network.random_weights import random_weights
    from trtnet.network.weights import WeightStore

    return WeightStore(random_weights(config_name))


def test_config_is_recognised_from_the_weights():
    assert build.resolve_config(_store("yolact_edge_mobilenetv2"), None).name == "yolact_edge_mobilenetv2"


def test_weights_of_another_config_are_refused_before_tensorrt():
    with pytest.raises(build.BuildError, match=r"do not fit config yolact_edge_resnet50 .*\n  backbone\."):
        build.resolve_config(_store("yolact_edge_mobilenetv2"), "yolact_edge_resnet50")


def test_nonkeyframe_engine_of_an_image_config_is_refused(tmp_path, capsys):
    from safetensors.numpy import save_file

    from trtnet.network.random_weights import random_weights

    path = tmp_path / "m.safetensors"
    save_file(random_weights("yolact_edge_mobilenetv2"), str(path))
    assert build.main(["--weights", str(path), "-o", str(tmp_path / "e"), "--nonkeyframe"]) == 1
    assert "--nonkeyframe needs a video config with a flow net; yolact_edge_mobilenetv2" in capsys.readouterr().err
    assert not (tmp_path / "e").exists()
