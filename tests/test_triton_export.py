"""``trtnet export-triton``: every config.pbtxt parses with Triton's own schema
(tritonclient's model_config_pb2, where an unknown field is an error), the repository has
the documented layout and values, and bad input is refused before anything is written."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import numpy as np
import pytest

from trtnet import names
from trtnet.export_triton import main as export_main

text_format = pytest.importorskip("google.protobuf.text_format")
model_config_pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2")

MAX_BATCH = 4


def parse(path) -> "model_config_pb2.ModelConfig":
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


@pytest.fixture(scope="module")
def video_weights(reference_dir):
    return reference_dir / "vid_resnet50" / "weights.pth"


@pytest.fixture(scope="module")
def engines(tmp_path_factory, video_weights):
    """Stand-in engine files with sidecars as trtnet.build writes them for --max-batch 4
    (the I/O of the real networks, batch dimension dynamic)."""
    from trtnet import emulator
    from trtnet.config import get_config
    from trtnet.builder.sidecar import sidecar_path, tensor_entries
    from trtnet.network.yolact_edge import build_keyframe, build_nonkeyframe
    from trtnet.network.weights import load_weights

    folder = tmp_path_factory.mktemp("engines")
    store = load_weights(video_weights)
    files = {}
    for role, build in (("keyframe", build_keyframe), ("nonkeyframe", build_nonkeyframe)):
        network = emulator.Network()
        build(network, emulator.trt, store, get_config("yolact_edge_vid_resnet50"))
        io = tensor_entries(network, emulator.trt)
        for entry in io:
            entry["shape"] = [-1, *entry["shape"][1:]]
        engine = folder / f"{role}.engine"
        engine.write_bytes(b"not a real plan: the exporter only copies it")
        profile = {names.INPUT: {"min": [1, 64, 64, 3], "opt": [1, 550, 550, 3], "max": [MAX_BATCH, 1080, 1920, 3]}}
        sidecar_path(engine).write_text(json.dumps({"network": role, "config": "yolact_edge_vid_resnet50",
                                                    "io": io, "optimization_profile": profile}))
        files[role] = engine
    plugin = folder / "libtrtnet_plugins.so"
    plugin.write_bytes(b"\x7fELF stand-in")
    return files, plugin


def export(tmp_path, engines, *extra) -> tuple[int, object]:
    files, plugin = engines
    repo = tmp_path / "repo"
    code = export_main(["-o", str(repo), "--keyframe-engine", str(files["keyframe"]),
                        "--nonkeyframe-engine", str(files["nonkeyframe"]), "--plugin-library", str(plugin), *extra])
    return code, repo


def test_tensorrt_repository_parses_and_batches_from_the_profile(tmp_path, engines):
    code, repo = export(tmp_path, engines, "--max-streams", "6", "--idle-timeout", "30", "--keyframe-interval", "4")
    assert code == 0
    key = parse(repo / "yolact_edge_keyframe" / "config.pbtxt")
    assert key.platform == "tensorrt_plan" and key.max_batch_size == MAX_BATCH
    assert list(key.dynamic_batching.preferred_batch_size) == [2, 4]
    assert {i.name: list(i.dims) for i in key.input} == {names.INPUT: [-1, -1, 3]}
    outputs = {o.name: o for o in key.output}
    assert list(outputs[names.PROTO].dims) == [138, 138, 32]  # batch dimension left to Triton
    assert list(outputs[names.DET_COUNT].dims) == [1] and list(outputs[names.DET_COUNT].reshape.shape) == []
    assert {names.FPN1_P4, names.FPN1_P5, names.FPN1_LATERAL3} <= set(outputs)
    nonkey = parse(repo / "yolact_edge_nonkeyframe" / "config.pbtxt")
    assert {names.KEY_FPN1_P4, names.KEY_FPN1_P5, names.KEY_LATERAL3, names.INPUT} == {i.name for i in nonkey.input}
    assert (repo / "yolact_edge_keyframe" / "1" / "model.plan").read_bytes() == engines[0]["keyframe"].read_bytes()
    assert (repo / "plugins" / "libtrtnet_plugins.so").is_file()

    orch = parse(repo / "yolact_edge" / "config.pbtxt")
    assert orch.backend == "python" and orch.max_batch_size == 6
    seq = orch.sequence_batching
    assert seq.max_sequence_idle_microseconds == 30_000_000 and seq.oldest.max_candidate_sequences == 6
    kinds = {c.name: c.control[0].kind for c in seq.control_input}
    S = model_config_pb2.ModelSequenceBatching.Control
    assert kinds == {"START": S.CONTROL_SEQUENCE_START, "END": S.CONTROL_SEQUENCE_END,
                     "READY": S.CONTROL_SEQUENCE_READY, "CORRID": S.CONTROL_SEQUENCE_CORRID}
    params = {k: v.string_value for k, v in orch.parameters.items()}
    assert params["keyframe_model"] == "yolact_edge_keyframe" and params["keyframe_interval"] == "4"
    assert params["idle_timeout_s"] == "30.0"
    assert (repo / "yolact_edge" / "1" / "model.py").read_text().startswith("from trtnet.triton.orchestrator")
    readme = (repo / "README.md").read_text()
    assert "--backend-config=tensorrt,plugins=" in readme and "LD_PRELOAD=" in readme and "perf_analyzer" in readme
    # Normal permissions, no temporary folder left beside it.
    mode = stat.S_IMODE((repo / "yolact_edge" / "config.pbtxt").stat().st_mode)
    assert mode == 0o666 & ~_umask()
    assert [p.name for p in tmp_path.iterdir()] == ["repo"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_emulator_repository_declares_the_engine_io(tmp_path, video_weights):
    repo = tmp_path / "repo"
    assert export_main(["-o", str(repo), "--backend", "emulator", "--weights", str(video_weights)]) == 0
    for model in ("yolact_edge", "yolact_edge_keyframe", "yolact_edge_nonkeyframe"):
        parse(repo / model / "config.pbtxt")
    key = parse(repo / "yolact_edge_keyframe" / "config.pbtxt")
    assert key.backend == "python" and not key.platform
    assert {k: v.string_value for k, v in key.parameters.items()}["role"] == "keyframe"
    assert (repo / "yolact_edge_keyframe" / "1" / "weights.pth").read_bytes() == video_weights.read_bytes()
    assert not (repo / "plugins").exists()


def _with_mask_scores(engines, tmp_path, roles=("keyframe", "nonkeyframe")):
    """Copies of the stand-in engines whose sidecars list a YOLACT++ mask_scores output."""
    from trtnet.builder.sidecar import sidecar_path

    files, plugin = engines
    out = {}
    for role, engine in files.items():
        meta = json.loads(sidecar_path(engine).read_text())
        if role in roles:
            scores = next(e for e in meta["io"] if e["name"] == names.DET_SCORES)
            meta["io"].append({**scores, "name": names.MASK_SCORES})
        out[role] = tmp_path / f"rescored_{role}.engine"
        out[role].write_bytes(engine.read_bytes())
        sidecar_path(out[role]).write_text(json.dumps(meta))
    return out, plugin


def test_mask_scores_are_declared_and_requested_when_the_engines_output_them(tmp_path, engines):
    (tmp_path / "plain").mkdir()
    code, plain = export(tmp_path / "plain", engines)
    assert code == 0
    orch = parse(plain / "yolact_edge" / "config.pbtxt")
    assert {o.name: list(o.dims) for o in orch.output}["mask_scores"] == [-1]  # always answered
    assert "mask_scores" not in dict(orch.parameters)  # the box scores then
    (tmp_path / "rescored").mkdir()
    code, repo = export(tmp_path / "rescored", _with_mask_scores(engines, tmp_path))
    assert code == 0
    orch = parse(repo / "yolact_edge" / "config.pbtxt")
    assert orch.parameters["mask_scores"].string_value == "1"
    key = parse(repo / "yolact_edge_keyframe" / "config.pbtxt")
    assert list({o.name: o for o in key.output}[names.MASK_SCORES].dims) == [100]


def test_engines_that_disagree_on_mask_scores_are_refused(tmp_path, engines, capsys):
    (tmp_path / "x").mkdir()
    code, repo = export(tmp_path / "x", _with_mask_scores(engines, tmp_path, roles=("keyframe",)))
    assert code == 1 and not repo.exists()
    assert "only the keyframe engine outputs 'mask_scores'" in capsys.readouterr().err


@pytest.mark.parametrize("case, message", [
    ("no_sidecar", "has no sidecar"),
    ("wrong_role", "is a keyframe engine, given as the nonkeyframe engine"),
    ("missing_engine", "not found"),
    ("output_exists", "exists; choose another folder or pass --overwrite"),
    ("no_parent", "does not exist"),
    ("corrupt_sidecar", "is not a trtnet engine sidecar"),
])
def test_bad_input_is_refused_before_writing(tmp_path, engines, capsys, case, message):
    files, plugin = engines
    key, nonkey, out = files["keyframe"], files["nonkeyframe"], tmp_path / "repo"
    if case == "no_sidecar":
        key = tmp_path / "bare.engine"
        key.write_bytes(b"x")
    elif case == "wrong_role":
        nonkey = files["keyframe"]
    elif case == "missing_engine":
        key = tmp_path / "nope.engine"
    elif case == "output_exists":
        out.mkdir()
        (out / "keep.txt").write_text("mine")
    elif case == "no_parent":
        out = tmp_path / "missing" / "repo"
    elif case == "corrupt_sidecar":
        key = tmp_path / "corrupt.engine"
        key.write_bytes(b"x")
        (tmp_path / "corrupt.engine.json").write_text("{not json")
    before = sorted(p.name for p in tmp_path.iterdir())
    code = export_main(["-o", str(out), "--keyframe-engine", str(key), "--nonkeyframe-engine", str(nonkey),
                        "--plugin-library", str(plugin)])
    err = capsys.readouterr().err
    assert code == 1 and message in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    if case == "output_exists":
        assert (out / "keep.txt").read_text() == "mine"


@pytest.mark.parametrize("argv, message", [
    (["--backend", "emulator"], "needs --weights"),
    (["--keyframe-engine", "k.engine"], "needs --keyframe-engine and --nonkeyframe-engine"),
    (["--backend", "emulator", "--weights", "w.pth", "--keyframe-engine", "k"], "contradicts --backend emulator"),
    (["--weights", "w.pth", "--keyframe-engine", "k", "--nonkeyframe-engine", "n"], "belong to --backend emulator"),
    (["--backend", "emulator", "--weights", "w.pth", "--keyframe-interval", "0"], "--keyframe-interval must be >= 1"),
    (["--backend", "emulator", "--weights", "w.pth", "--idle-timeout", "0"], "--idle-timeout must be > 0"),
])
def test_contradictory_flags_are_usage_errors(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        export_main(["-o", str(tmp_path / "repo"), *argv])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_an_image_config_is_refused(tmp_path, reference_dir, capsys):
    code = export_main(["-o", str(tmp_path / "repo"), "--backend", "emulator",
                        "--weights", str(reference_dir / "mobilenetv2" / "weights.pth")])
    assert code == 1 and "is not a video config" in capsys.readouterr().err
    assert not (tmp_path / "repo").exists()


def test_overwrite_replaces_a_repository_whole(tmp_path, engines):
    code, repo = export(tmp_path, engines)
    (repo / "stale.txt").write_text("old")
    code, repo = export(tmp_path, engines, "--overwrite", "--name", "cams")
    assert code == 0 and not (repo / "stale.txt").exists() and (repo / "cams" / "config.pbtxt").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repo"]


def test_python_dash_m_spelling_runs(tmp_path):
    done = subprocess.run([sys.executable, "-m", "trtnet", "export-triton", "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "examples:" in done.stdout and "--keyframe-engine" in done.stdout
