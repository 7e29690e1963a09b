"""python -m trtnet.build: argument checking and the path up to TensorRT's Builder.

No GPU/TensorRT runtime here: with the real bindings over stub libraries the build must
stop at trt.Builder with a clear BuildError, not anywhere earlier.
"""

from __future__ import annotations

import argparse

import pytest

from trtnet import build


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
    out = tmp_path / "sub" / "model.engine"
    build.write_atomically(out, b"abc")
    build.write_atomically(out, b"defg")
    assert out.read_bytes() == b"defg"
    assert [p.name for p in out.parent.iterdir()] == ["model.engine"]
