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
    (["--nonkeyframe-engine", "n.engine"], "needs --keyframe-engine"),
    (["--backend", "emulator", "--weights", "w.pth", "--keyframe-engine", "k"], "contradicts --backend emulator"),
    (["--weights", "w.pth", "--keyframe-engine", "k", "--nonkeyframe-engine", "n"], "belong to --backend emulator"),
    (["--backend", "emulator", "--weights", "w.pth", "--keyframe-interval", "0"], "--keyframe-interval must be >= 1"),
    (["--backend", "emulator", "--weights", "w.pth", "--idle-timeout", "0"], "--idle-timeout must be > 0"),
])
def test_contradictory_flags_are_usage_errors(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        export_main(["-o", str(tmp_path / "repo"), *argv])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err




def test_overwrite_replaces_a_repository_whole(tmp_path, engines):
    code, repo = export(tmp_path, engines)
    (repo / "stale.txt").write_text("old")
    code, repo = export(tmp_path, engines, "--overwrite", "--name", "cams")
    assert code == 0 and not (repo / "stale.txt").exists() and (repo / "cams" / "config.pbtxt").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repo"]


def test_python_dash_m_spelling_runs(tmp_path):
    done = subprocess.run([sys.executable, "-m", "trtnet", "export-triton", "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "examples:" in done.stdout and "--keyframe-engine" in done.stdout


# -- image configs: the keyframe model alone, every frame a keyframe ---------------------------------


@pytest.fixture(scope="module")
def image_engines(tmp_path_factory, reference_dir):
    """Stand-in keyframe engines of image configs, sidecars as trtnet.build writes them: the
    mobilenetv2 network's I/O (yolact_edge_mobilenetv2), and the same plus the mask_scores output
    under yolact_plus_resnet50 (a YOLACT++ engine's outputs are these two lists' union)."""
    from trtnet import emulator
    from trtnet.builder.sidecar import sidecar_path, tensor_entries
    from trtnet.config import get_config
    from trtnet.network.weights import load_weights
    from trtnet.network.yolact_edge import build_keyframe

    folder = tmp_path_factory.mktemp("image_engines")
    network = emulator.Network()
    build_keyframe(network, emulator.trt, load_weights(reference_dir / "mobilenetv2" / "weights.pth"),
                   get_config("yolact_edge_mobilenetv2"))
    io = tensor_entries(network, emulator.trt)
    for entry in io:
        entry["shape"] = [-1, *entry["shape"][1:]]
    scores = next(e for e in io if e["name"] == names.DET_SCORES)
    profile = {names.INPUT: {"min": [1, 64, 64, 3], "opt": [1, 550, 550, 3], "max": [MAX_BATCH, 1080, 1920, 3]}}
    files = {}
    for config, entries in (("yolact_edge_mobilenetv2", io),
                            ("yolact_plus_resnet50", [*io, {**scores, "name": names.MASK_SCORES}])):
        engine = folder / f"{config}.engine"
        engine.write_bytes(b"not a real plan: the exporter only copies it")
        sidecar_path(engine).write_text(json.dumps({"network": "keyframe", "config": config, "io": entries,
                                                    "optimization_profile": profile}))
        files[config] = engine
    plugin = folder / "libtrtnet_plugins.so"
    plugin.write_bytes(b"\x7fELF stand-in")
    return files, plugin


def _image_export(tmp_path, image_engines, config, *extra):
    files, plugin = image_engines
    repo = tmp_path / "repo"
    return export_main(["-o", str(repo), "--keyframe-engine", str(files[config]), "--plugin-library", str(plugin),
                        *extra]), repo


def _assert_keyframes_only(repo, config: str) -> dict:
    """The layout of an image config's repository; the orchestrator's parameters."""
    assert {p.name for p in repo.iterdir()} - {"plugins"} == {"README.md", "yolact_edge", "yolact_edge_keyframe"}
    orch = parse(repo / "yolact_edge" / "config.pbtxt")
    params = {k: v.string_value for k, v in orch.parameters.items()}
    assert "nonkeyframe_model" not in params and params["keyframe_model"] == "yolact_edge_keyframe"
    assert params["keyframe_interval"] == "1" and "motion_threshold" not in params and params["config"] == config
    # the client-facing outputs are a video config's, mask_scores included
    from trtnet.triton.export import orchestrator_specs

    assert [o.name for o in orch.output] == [s.name for s in orchestrator_specs()[1]]
    readme = (repo / "README.md").read_text()
    assert "every frame is a keyframe" in readme and "_nonkeyframe" not in readme
    return params


def test_an_image_config_exports_the_keyframe_model_alone(tmp_path, image_engines, capsys):
    from trtnet.network.yolact_edge import KEYFRAME_OUTPUTS

    code, repo = _image_export(tmp_path, image_engines, "yolact_edge_mobilenetv2")
    assert code == 0, capsys.readouterr().err
    params = _assert_keyframes_only(repo, "yolact_edge_mobilenetv2")
    assert "mask_scores" not in params  # no re-scoring: the box scores are served as mask scores
    key = parse(repo / "yolact_edge_keyframe" / "config.pbtxt")
    assert key.platform == "tensorrt_plan" and key.max_batch_size == MAX_BATCH
    assert {o.name for o in key.output} == set(KEYFRAME_OUTPUTS)  # no keyframe state: nothing reads it
    assert (repo / "yolact_edge_keyframe" / "1" / "model.plan").read_bytes() == \
        image_engines[0]["yolact_edge_mobilenetv2"].read_bytes()
    assert (repo / "plugins" / "libtrtnet_plugins.so").is_file()
    assert "models yolact_edge, yolact_edge_keyframe)" in capsys.readouterr().out


def test_a_rescoring_image_config_serves_its_mask_scores(tmp_path, image_engines):
    code, repo = _image_export(tmp_path, image_engines, "yolact_plus_resnet50")
    assert code == 0
    params = _assert_keyframes_only(repo, "yolact_plus_resnet50")
    assert params["mask_scores"] == "1"  # the orchestrator requests the engine's mask_scores
    key = {o.name: o for o in parse(repo / "yolact_edge_keyframe" / "config.pbtxt").output}
    assert key[names.MASK_SCORES].data_type == model_config_pb2.TYPE_FP32 and list(key[names.MASK_SCORES].dims) == [100]


def test_an_image_config_exports_on_the_emulator_backend(tmp_path, reference_dir):
    weights = reference_dir / "mobilenetv2" / "weights.pth"
    repo = tmp_path / "repo"
    assert export_main(["-o", str(repo), "--backend", "emulator", "--weights", str(weights)]) == 0
    _assert_keyframes_only(repo, "yolact_edge_mobilenetv2")
    key = parse(repo / "yolact_edge_keyframe" / "config.pbtxt")
    assert key.backend == "python" and {k: v.string_value for k, v in key.parameters.items()}["role"] == "keyframe"
    assert (repo / "yolact_edge_keyframe" / "1" / "weights.pth").read_bytes() == weights.read_bytes()


@pytest.mark.parametrize("flags, message", [
    (["--keyframe-interval", "2"], "--keyframe-interval 2: yolact_edge_mobilenetv2 has no flow network"),
    (["--motion-threshold", "0"], "--motion-threshold: yolact_edge_mobilenetv2 is an image config"),
])
@pytest.mark.parametrize("backend", ["tensorrt", "emulator"])
def test_video_only_flags_are_usage_errors_for_an_image_config(tmp_path, image_engines, reference_dir, capsys,
                                                                backend, flags, message):
    if backend == "tensorrt":
        code, repo = _image_export(tmp_path, image_engines, "yolact_edge_mobilenetv2", *flags)
    else:
        repo = tmp_path / "repo"
        code = export_main(["-o", str(repo), "--backend", "emulator",
                            "--weights", str(reference_dir / "mobilenetv2" / "weights.pth"), *flags])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
    assert not repo.exists() and [p.name for p in tmp_path.iterdir()] == []


def test_interval_one_is_an_image_configs_own_schedule(tmp_path, image_engines):
    code, repo = _image_export(tmp_path, image_engines, "yolact_edge_mobilenetv2", "--keyframe-interval", "1")
    assert code == 0  # on the boundary: allowed, as in every command (cli.keyframe_interval)
    _assert_keyframes_only(repo, "yolact_edge_mobilenetv2")


def test_a_video_keyframe_engine_alone_is_a_usage_error(tmp_path, engines, capsys):
    files, plugin = engines
    repo = tmp_path / "repo"
    code = export_main(["-o", str(repo), "--keyframe-engine", str(files["keyframe"]), "--plugin-library", str(plugin)])
    assert code == 2 and "yolact_edge_vid_resnet50 is a video config: give its --nonkeyframe-engine" in \
        capsys.readouterr().err
    assert not repo.exists()


def test_write_repository_refuses_a_schedule_without_a_nonkeyframe_model(tmp_path, image_engines):
    from trtnet.triton.export import ExportError, ExportSettings, engine_model, write_repository

    key = engine_model(image_engines[0]["yolact_edge_mobilenetv2"], "keyframe")
    for settings in (ExportSettings(keyframe_interval=2), ExportSettings(keyframe_interval=1, motion_threshold=0.5)):
        with pytest.raises(ExportError, match="every frame is a keyframe"):
            write_repository(tmp_path / "repo", key, None, settings, emulated=False)
    assert list(tmp_path.iterdir()) == []


# -- an image config's repository, orchestrated: the Segmenter's Instances, frame by frame ----------------


MASKIOU_SIDE = 256  # the smallest side whose prototypes survive maskiou_net (tests/test_mask_scores.py)


@pytest.fixture(scope="module")
def rescoring_image_config(reference_dir):
    """(config, weights, weights file) of mobilenetv2 with upstream's maskiou_net added at a 256 input:
    an image config whose engine outputs mask scores of their own (as test_mask_scores.py builds it)."""
    from dataclasses import replace

    from trtnet.config import MaskIoUSpec, get_config
    from trtnet.network.weights import WeightStore

    base = WeightStore.load(reference_dir / "mobilenetv2" / "weights.pth")
    plus = WeightStore.load(reference_dir / "yolact_plus_resnet50" / "weights.pth")
    tensors = {k: base.get(k, layer="test") for k in base.keys() if not k.endswith("num_batches_tracked")}
    tensors.update({k: plus.get(k, layer="test") for k in plus.keys() if k.startswith("maskiou_net.")})
    config = replace(get_config("yolact_edge_mobilenetv2"), name="mobilenetv2_with_maskiou",
                     max_size=MASKIOU_SIDE, maskiou=MaskIoUSpec())
    return config, WeightStore(tensors), reference_dir / "mobilenetv2" / "weights.pth"


def _triton_model_config(path) -> str:
    """config.pbtxt as Triton hands it to a Python model's initialize (JSON of the ModelConfig)."""
    from google.protobuf import json_format

    return json.dumps(json_format.MessageToDict(parse(path), preserving_proto_field_name=True))


def test_an_orchestrated_image_config_frame_is_the_segmenters(tmp_path, rescoring_image_config, reference_dir,
                                                              monkeypatch):
    """The exported orchestrator (its config.pbtxt as written) over the emulated keyframe engine:
    every frame a keyframe, each answer the Segmenter's Instances, mask scores included."""
    from instances_match import assert_instances_match
    from trtnet.runtime import EmulatedEngine, Segmenter
    from trtnet.runtime.masks import Instances
    from trtnet.triton import pb_standin as fakes
    from trtnet.triton.export import ExportSettings, emulated_model, write_repository
    from trtnet.verification.reference_data import ReferenceCase

    config, store, weights = rescoring_image_config
    key = emulated_model(weights, store, config, "keyframe", MAX_BATCH, None)
    repo = write_repository(tmp_path / "repo", key, None, ExportSettings(keyframe_interval=1), emulated=True)
    engine = EmulatedEngine(store, config)
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", fakes.module())
    monkeypatch.setattr(fakes, "MODELS", {"yolact_edge_keyframe": engine.run})
    monkeypatch.setattr(fakes, "CALLS", [])
    from trtnet.triton.orchestrator import TritonPythonModel

    model = TritonPythonModel()
    model.initialize({"model_config": _triton_model_config(repo / "yolact_edge" / "config.pbtxt")})
    image = ReferenceCase(reference_dir / "mobilenetv2").image("img0")
    frames = [image, np.ascontiguousarray(image[40:, :400])]  # another size: no state carried over
    segmenter = Segmenter(engine)
    import asyncio

    for i, frame in enumerate(frames):
        (response,) = asyncio.run(model.execute([fakes.client_request(frame, 3, start=i == 0, end=i == 1)]))
        assert not response.has_error(), response.error().message()
        got = {t.name(): t.as_numpy()[0] for t in response.output_tensors()}
        want = segmenter(frame)
        assert bool(got["keyframe"][0]) and len(want.scores) > 10
        served = Instances(got["classes"], got["scores"], got["boxes"], got["masks"].astype(bool), got["mask_scores"])
        assert_instances_match(served, want, f"frame {i}")
        # the engine's re-scored mask scores, not the box scores (they differ in every detection)
        np.testing.assert_allclose(got["mask_scores"], want.mask_scores, rtol=0, atol=1e-6)
        assert np.all(got["mask_scores"] < got["scores"])
    assert [m for m, _ in fakes.CALLS] == ["yolact_edge_keyframe"] * 2  # every frame a keyframe, one model
    assert all(list(inputs) == [names.INPUT] for _, inputs in fakes.CALLS)  # no state goes in
