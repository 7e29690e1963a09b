"""python -m trtnet.build beyond the network: TF32 off, timing cache, progress monitor,
profiling verbosity, the JSON sidecar, --max-batch profiles, and --dry-run.

The builder is the recording fake of tests/runtime_fakes.py (its IBuilderConfig starts with
TensorRT's defaults: TF32 on); every builder call it records is checked against the real
10.3 and 11.4 bindings.
"""

from __future__ import annotations

import json
import sys
import threading
import time

import pytest

import runtime_fakes
from runtime_fakes import fake_gpu  # noqa: F401 - fixture
from trtnet import build, names
from trtnet.config import get_config
from trtnet.builder.timing_cache import SharedTimingCache, TimingCacheError, locked

CONFIG = "yolact_edge_mobilenetv2"


@pytest.fixture(scope="module")
def store():
    from trtnet.network.random_weights import random_weights
    from trtnet.network.weights import WeightStore

    return WeightStore(random_weights(CONFIG))


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    from safetensors.numpy import save_file

    from trtnet.network.random_weights import random_weights

    path = tmp_path_factory.mktemp("w") / "mnv2.safetensors"
    save_file(random_weights(CONFIG), str(path))
    return path


# --- TF32 (issue 7 defect 2) ------------------------------------------------------------
@pytest.mark.parametrize("plan", ["fp32", "fp16"])
def test_tf32_is_cleared_for_every_plan(store, plan):
    trt = runtime_fakes.fake_tensorrt()
    build.build_engine(trt, store, CONFIG, plan=build.as_plan(plan))
    assert trt.built[-1]["tf32"] is False  # the fake config starts with TF32 on, as TensorRT's does


def test_tf32_opt_in(store):
    trt = runtime_fakes.fake_tensorrt()
    build.build_engine(trt, store, CONFIG, settings=build.BuilderSettings(tf32=True))
    assert trt.built[-1]["tf32"] is True


def test_builder_calls_exist_in_tensorrt_with_these_names(trt, store, tmp_path):
    from test_trt_conformance import usage_problems

    fake = runtime_fakes.fake_tensorrt()
    settings = build.BuilderSettings(profiling_verbosity="detailed", timing_cache=tmp_path / "t.cache",
                                     progress=False, workspace_mib=64)
    build.build(fake, store, CONFIG, settings=settings)
    settings.progress = True
    build.build(fake, store, CONFIG, settings=build.BuilderSettings(tf32=True, progress=True))
    other = SharedTimingCache(tmp_path / "t.cache")  # a second build merging into the shared file
    config = fake.Builder(None).create_builder_config()
    other.attach(config)
    (tmp_path / "t.cache").write_bytes(runtime_fakes.TIMING_MAGIC + b"written_meanwhile")
    other.save(config)
    fake.usage.enums = {e for e in fake.usage.enums if e[0] != "Severity"}
    assert usage_problems(fake.usage, trt) == []
    used = {c[:2] for c in fake.usage.calls}
    assert {("IBuilderConfig", "clear_flag"), ("IBuilderConfig", "set_flag"),
            ("IBuilderConfig", "create_timing_cache"), ("IBuilderConfig", "set_timing_cache"),
            ("IBuilderConfig", "get_timing_cache"), ("ITimingCache", "serialize"), ("ITimingCache", "combine")} <= used
    assert {("IBuilderConfig", "profiling_verbosity", "set"),
            ("IBuilderConfig", "progress_monitor", "set")} <= fake.usage.attributes


def test_the_fake_builder_enums_have_tensorrts_values(trt):
    for name in ("BuilderFlag", "ProfilingVerbosity"):
        for member in getattr(runtime_fakes, name):
            assert int(getattr(trt, name).__members__[member.name]) == member.value, (name, member.name)
    assert set(build.PROFILING_VERBOSITY) == {m.lower() for m in trt.ProfilingVerbosity.__members__}


# --- progress monitor -----------------------------------------------------------------------
def test_progress_monitor_is_a_tensorrt_progress_monitor(trt):
    from trtnet.builder.progress import make_progress_monitor

    import inspect

    import trt_harness

    monitor = make_progress_monitor(trt, enabled=False)
    assert isinstance(monitor, trt.IProgressMonitor)
    for method in ("phase_start", "step_complete", "phase_finish"):  # TensorRT calls them by these names
        (real,) = trt_harness.overloads(getattr(trt.IProgressMonitor, method))
        ours = list(inspect.signature(getattr(type(monitor), method)).parameters)
        assert ours == [name for name, _ in real], method
    monitor.phase_start("Building engine", None, 3)
    monitor.phase_start("Tactics", "Building engine", 2)
    assert monitor.depth == {"Building engine": 0, "Tactics": 1}
    assert monitor.step_complete("Tactics", 0) is True
    monitor.cancelled = True
    assert monitor.step_complete("Tactics", 1) is False  # TensorRT stops the build
    monitor.phase_finish("Tactics")
    monitor.phase_finish("Building engine")
    assert monitor.bars == {}


def test_a_cancelled_build_is_an_error(store, monkeypatch):
    from trtnet.builder import progress as build_progress

    made = build_progress.make_progress_monitor

    def cancelled(trt, **kwargs):
        monitor = made(trt, **kwargs)
        monitor.cancelled = True
        return monitor

    monkeypatch.setattr(build_progress, "make_progress_monitor", cancelled)
    with pytest.raises(build.BuildError, match="cancelled"):
        build.build(runtime_fakes.fake_tensorrt(), store, CONFIG, settings=build.BuilderSettings(progress=True))


# --- timing cache ---------------------------------------------------------------------------
def test_timing_cache_is_reused_and_written(store, tmp_path):
    path = tmp_path / "model.timing"
    trt = runtime_fakes.fake_tensorrt()
    build.build(trt, store, CONFIG, settings=build.BuilderSettings(timing_cache=path))
    first = path.read_bytes()
    assert first.startswith(runtime_fakes.TIMING_MAGIC) and b"backbone" in first
    build.build(trt, store, CONFIG, plan=build.as_plan("fp16"), settings=build.BuilderSettings(timing_cache=path))
    assert path.read_bytes() == first  # the same layers: nothing new, nothing lost
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.timing", "model.timing.lock"]


def _fake_config():
    return runtime_fakes.fake_tensorrt().Builder(None).create_builder_config()


def test_concurrent_builds_merge_their_timing_caches(tmp_path):
    path = tmp_path / "shared.timing"
    a, b = SharedTimingCache(path), SharedTimingCache(path)
    config_a, config_b = _fake_config(), _fake_config()
    a.attach(config_a)
    b.attach(config_b)  # both start from the same (missing) file
    config_a.timing_cache.entries |= {"conv_a"}
    config_b.timing_cache.entries |= {"conv_b"}
    b.save(config_b)
    a.save(config_a)  # re-reads the file under the lock: keeps b's entry
    body = path.read_bytes()[len(runtime_fakes.TIMING_MAGIC):].decode().split("\n")
    assert body == ["conv_a", "conv_b"]


def test_a_corrupt_timing_cache_is_a_clear_error(tmp_path):
    path = tmp_path / "bad.timing"
    path.write_bytes(b"\x00garbage")
    with pytest.raises(TimingCacheError, match="could not read the timing cache .*bad.timing"):
        SharedTimingCache(path).attach(_fake_config())
    with pytest.raises(TimingCacheError, match="does not exist"):
        SharedTimingCache(tmp_path / "no" / "dir.timing")


def test_the_timing_cache_lock_is_exclusive(tmp_path):
    path = tmp_path / "x.timing"
    got = threading.Event()

    def other() -> None:
        with locked(path):
            got.set()

    with locked(path):
        t = threading.Thread(target=other)
        t.start()
        assert not got.wait(0.2)  # blocked while we hold it
    assert got.wait(5)
    t.join()


# --- batch profile ----------------------------------------------------------------------------
def test_max_batch_sets_the_batch_range_of_the_profile(store):
    trt = runtime_fakes.fake_tensorrt()
    built = build.build(trt, store, CONFIG, max_batch=4, min_frame=(64, 64), opt_frame=(480, 640),
                        max_frame=(1080, 1920))
    assert built.profile[names.INPUT] == ((1, 64, 64, 3), (4, 480, 640, 3), (4, 1080, 1920, 3))
    assert trt.built[-1]["profile"][names.INPUT] == built.profile[names.INPUT]
    with pytest.raises(build.BuildError, match="--max-batch must be >= 1"):
        build.build(trt, store, CONFIG, max_batch=0)


# --- the CLI: sidecar, dry run ------------------------------------------------------------------
def test_cli_writes_the_engine_and_its_sidecar(fake_gpu, weights_file, tmp_path, capsys):
    out = tmp_path / "m.engine"
    rc = build.main(["--weights", str(weights_file), "-o", str(out), "--max-batch", "2",
                     "--profiling-verbosity", "detailed", "--no-progress"])
    printed = capsys.readouterr()
    assert rc == 0, printed.err
    assert "TF32 off" in printed.out and "m.engine.json" in printed.out
    assert out.read_bytes().startswith(runtime_fakes.MAGIC)  # the engine exactly as TensorRT made it
    side = json.loads((tmp_path / "m.engine.json").read_text())
    assert side["config"] == CONFIG and side["network"] == "keyframe"
    assert side["classes"] == list(get_config(CONFIG).class_names)
    assert side["precision_plan"]["plan"] == "fp32" and side["calibration_cache"] is None
    assert side["tensorrt_version"] == "fake" and side["builder"]["tf32"] is False
    assert side["builder"]["profiling_verbosity"] == "detailed"
    assert side["engine"]["bytes"] == out.stat().st_size
    io = {e["name"]: e for e in side["io"]}
    assert io[names.INPUT] == {"name": names.INPUT, "mode": "input", "shape": [-1, -1, -1, 3], "dtype": "UINT8"}
    assert io[names.DET_COUNT]["dtype"] == "INT32" and io[names.PROTO]["shape"] == [-1, 138, 138, 32]
    assert side["optimization_profile"][names.INPUT]["max"] == [2, 1080, 1920, 3]
    assert side["weights"]["sha256"] and "gpu" in side
    assert side["tensorrt_plugins"] == []  # YolactEdge needs nothing of libnvinfer_plugin
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.engine", "m.engine.json"]


@pytest.mark.parametrize("name, expected", [
    ("yolact_plus_resnet50", ["ModulatedDeformConv2d"]), ("yolact_plus_base", ["ModulatedDeformConv2d"]),
    ("yolact_base", []), ("yolact_darknet53", []), ("yolact_edge", []), ("yolact_edge_mobilenetv2", [])])
def test_the_sidecar_lists_the_tensorrt_plugins_a_runtime_must_register(name, expected):
    """The C++ runtime reads tensorrt_plugins to initialise libnvinfer_plugin before deserializing."""
    from trtnet.builder.sidecar import tensorrt_plugins

    assert tensorrt_plugins(get_config(name), nonkeyframe=False) == expected
    assert tensorrt_plugins(get_config(name), nonkeyframe=True) == expected  # DCN from layers.1 on: C3 has it


def test_a_partial_backbone_without_dcn_blocks_lists_no_tensorrt_plugin():
    """Only the blocks the engine runs count: DCN in layers.2 only is not in the non-keyframe engine."""
    from dataclasses import replace

    from trtnet.builder.sidecar import tensorrt_plugins

    plus = get_config("yolact_plus_resnet50")
    late = replace(plus, backbone=replace(plus.backbone, dcn_layers=(0, 0, 6, 3)))
    assert tensorrt_plugins(late, nonkeyframe=False) == ["ModulatedDeformConv2d"]
    assert tensorrt_plugins(late, nonkeyframe=True) == []


def test_dry_run_prints_the_plan_and_writes_nothing(weights_file, tmp_path, capsys):
    rc = build.main(["--weights", str(weights_file), "--dry-run", "--precision-plan", "int8_backbone_fpn",
                     "-o", str(tmp_path / "x.engine")])
    out = capsys.readouterr().out
    assert rc == 0
    for text in ("backbone    int8", "fpn         int8", "head        fp16", "detect      fp32", "int8 audit:",
                 "input  frame", "output det/count", "placeholders (no --calibration-cache)", "needs TensorRT"):
        assert text in out, text
    assert list(tmp_path.iterdir()) == []


def test_without_tensorrt_the_cli_prints_the_dry_run_and_exits_3(weights_file, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import tensorrt -> ImportError
    rc = build.main(["--weights", str(weights_file), "-o", str(tmp_path / "e")])
    printed = capsys.readouterr()
    assert rc == build.EXIT_NO_TENSORRT == 3
    assert "needs TensorRT's Python package" in printed.err and "nothing was written" in printed.err
    assert "component   precision" in printed.out
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv, message", [
    ([], "no engine file given"),
    (["-o", "{tmp}"], "is a directory"),
    (["-o", "{tmp}/missing/e.engine"], "does not exist"),
    (["-o", "{weights}"], "is the input"),
])  # a frame range that contradicts itself is a usage error: tests/test_cli_contract.py
def test_bad_outputs_and_ranges_are_refused_before_any_work(weights_file, tmp_path, capsys, argv, message):
    argv = [a.format(tmp=tmp_path, weights=weights_file) for a in argv]
    assert build.main(["--weights", str(weights_file), *argv]) == 1
    assert message in capsys.readouterr().err


def test_max_batch_must_be_positive(weights_file, capsys):
    with pytest.raises(SystemExit) as exc:
        build.main(["--weights", str(weights_file), "--dry-run", "--max-batch", "0"])
    assert exc.value.code == 2
    assert "expected a positive integer" in capsys.readouterr().err


# --- the plan summary ---------------------------------------------------------------------------
@pytest.mark.parametrize("config_name, nonkeyframe", [(CONFIG, False), ("yolact_edge_vid_resnet50", True)])
def test_every_layer_belongs_to_a_component(config_name, nonkeyframe):
    from trtnet import emulator
    from trtnet.network.random_weights import random_weights
    from trtnet.network.yolact_edge import build_keyframe, build_nonkeyframe
    from trtnet.builder.plan_summary import component_of

    net = emulator.Network()
    (build_nonkeyframe if nonkeyframe else build_keyframe)(net, emulator.trt, random_weights(config_name),
                                                           config_name)
    strays = [net.get_layer(i).name for i in range(net.num_layers)
              if component_of(net.get_layer(i).name) == "other"]
    assert strays == []


def test_convolution_parameters_and_macs_are_counted_exactly():
    import numpy as np

    from trtnet import emulator
    from trtnet.emulator import trt
    from trtnet.builder.plan_summary import summarize

    net = emulator.Network()
    x = net.add_input("x", trt.DataType.FLOAT, (-1, 3, 8, 10))
    w = trt.Weights(np.ones((4, 3, 3, 3), np.float32))
    for name in ("backbone.conv", "head.conv@P3", "head.conv@P4"):  # the head's weights are shared
        conv = net.add_convolution_nd(x, 4, (3, 3), w, trt.Weights(np.zeros(4, np.float32)))
        conv.padding_nd = (1, 1)
        conv.name = name
        conv.get_output(0).name = name
    rows = {r.component: r for r in summarize(net, trt, build.as_plan("fp16"), batch=2)}
    assert (rows["backbone"].parameters, rows["backbone"].macs) == (4 * 3 * 9 + 4, 2 * 8 * 10 * 4 * 27)
    assert (rows["head"].parameters, rows["head"].macs, rows["head"].precision) == (112, 2 * 2 * 8 * 10 * 4 * 27, "fp16")
