"""python -m trtnet.doctor: without a GPU it lists what it could not check and exits 0; on the
fake TensorRT + CuPy of tests/runtime_fakes.py every check runs and passes; a broken host twin
makes its own row fail and the exit 1."""

from __future__ import annotations

import types

import numpy as np
import pytest
from runtime_fakes import fake_gpu  # noqa: F401 - fixture

from trtnet import __main__ as trtnet_main
from trtnet import doctor

GPU_CHECKS = ("CUDA driver / runtime", "CuPy", "GPU", "engine: FastNMS vs host twin",
              "engine: InverseWarp vs host twin", "mask kernels vs twin", "CUDA graph replay = plain run",
              "stream order of inputs")


def _rows(out: str) -> dict[str, str]:
    """check name -> result, read off the printed table."""
    table = out.split("\n\n")[0].splitlines()[1:]
    found = {}
    for line in table:
        for status in (doctor.PASS, doctor.FAIL, doctor.SKIP):
            name, sep, _ = line.partition(f"  {status} ")
            if sep:
                found[name.strip()] = status
    return found


def _no_plugin_library() -> str:
    raise FileNotFoundError("libtrtnet_plugins.so was not found. Looked in:\n  (nowhere)")


def test_without_a_gpu_every_check_is_skipped_with_its_reason_and_the_exit_is_0(monkeypatch, capsys):
    monkeypatch.setitem(__import__("sys").modules, "tensorrt", None)  # import -> ImportError
    monkeypatch.setitem(__import__("sys").modules, "cupy", None)
    # an install without TensorRT headers builds no plugin library (CI's install does build it)
    monkeypatch.setattr("trtnet.plugins.library_path", _no_plugin_library)
    assert doctor.main([]) == 0
    out = capsys.readouterr().out
    rows = _rows(out)
    assert len(rows) == len(doctor.CHECKS) and set(rows.values()) == {doctor.SKIP}
    unchecked = out.split("not checked here:\n", 1)[1]
    assert "TensorRT is not installed" in unchecked and "no CUDA GPU" in unchecked
    for name in GPU_CHECKS:
        assert name in unchecked
    assert "0 passed, 0 failed, 14 skipped" in out


def test_without_a_gpu_a_built_plugin_library_is_the_one_check_that_passes(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(__import__("sys").modules, "tensorrt", None)
    monkeypatch.setitem(__import__("sys").modules, "cupy", None)
    library = tmp_path / "libtrtnet_plugins.so"
    library.write_bytes(b"\x7fELF not really")
    monkeypatch.setattr("trtnet.plugins.library_path", lambda: str(library))
    assert doctor.main([]) == 0
    rows = _rows(capsys.readouterr().out)
    assert rows.pop("plugin library") == doctor.PASS
    assert set(rows.values()) == {doctor.SKIP}


@pytest.fixture
def fake_machine(fake_gpu, monkeypatch, tmp_path):  # noqa: F811 - the fixture imported above
    """The fakes plus what the doctor reads that they lack: CUDA versions, device properties,
    versions, libnvinfer_plugin's DCN creator, and a plugin library file built for TensorRT 10."""
    trt, cupy = fake_gpu.trt, fake_gpu.cupy
    cupy.__version__ = "13.6.0"
    runtime = cupy.cuda.runtime
    runtime.driverGetVersion = lambda: 12060
    runtime.runtimeGetVersion = lambda: 12060
    runtime.getDeviceProperties = lambda i: {"name": b"Orin (fake)", "major": 8, "minor": 7,
                                             "totalGlobalMem": 7 << 30}
    trt.__version__ = "10.3.0"
    trt.init_libnvinfer_plugins = lambda logger, namespace: True
    emulated = trt.get_plugin_registry()
    dcn = object()

    class Registry:
        def get_creator(self, name, version, namespace=""):
            if (name, version, namespace) == ("ModulatedDeformConv2d", "2", ""):
                return dcn
            return emulated.get_creator(name, version, namespace)

    monkeypatch.setattr(trt, "get_plugin_registry", Registry, raising=False)
    library = tmp_path / "libtrtnet_plugins.so"
    library.write_bytes(b"\x7fELF...libtrtnet_plugins.so was compiled against TensorRT 10.x headers but ...")
    return types.SimpleNamespace(trt=trt, cupy=cupy, library=library)


def test_on_the_fakes_every_check_runs_and_passes(fake_machine, capsys):
    assert doctor.main(["--plugin-library", str(fake_machine.library)]) == 0
    out = capsys.readouterr().out
    rows = _rows(out)
    assert [n for n, s in rows.items() if s != doctor.PASS] == ["fp16 reference engine vs emulator"]
    assert "TensorRT 10.3.0" in out and "driver 12.6, runtime 12.6" in out and "TensorRT 10.x headers" in out
    assert "Orin (fake), compute capability 8.7, 7.0 GiB" in out
    assert "ModulatedDeformConv2d version 2" in out
    assert "13 passed, 0 failed, 1 skipped" in out


def test_with_a_reference_case_the_fp16_engine_is_compared_with_the_emulator(fake_machine, reference_dir, capsys):
    # On the fakes the "engine" is the emulator itself: the figures are 0 and the row passes.
    case = reference_dir / "mobilenetv2"
    assert doctor.main(["--plugin-library", str(fake_machine.library), "--reference", str(case)]) == 0
    out = capsys.readouterr().out
    assert _rows(out)["fp16 reference engine vs emulator"] == doctor.PASS
    assert "yolact_edge_mobilenetv2 pass img0" in out and "14 passed, 0 failed, 0 skipped" in out


def test_the_trtnet_command_runs_the_doctor(fake_machine, capsys):
    assert trtnet_main.main(["doctor", "--plugin-library", str(fake_machine.library)]) == 0
    assert "13 passed" in capsys.readouterr().out


_TWIN_NMS, _TWIN_WARP = doctor.fast_nms_twin, doctor.inverse_warp_twin


def _one_detection_less(*args, **kwargs):
    det = _TWIN_NMS(*args, **kwargs)
    det.count[0] -= 1
    return det


@pytest.mark.parametrize("twin, broken, row, message", [
    ("inverse_warp_twin", lambda *a, **k: _TWIN_WARP(*a, **k) * np.float32(1.001), "engine: InverseWarp vs host twin",
     "max |engine - host twin|"),
    ("fast_nms_twin", _one_detection_less, "engine: FastNMS vs host twin", "differs from the host twin in count"),
])
def test_a_broken_plugin_twin_fails_its_row_and_the_exit_is_1(fake_machine, monkeypatch, capsys, twin, broken,
                                                              row, message):
    monkeypatch.setattr(doctor, twin, broken)
    assert doctor.main(["--plugin-library", str(fake_machine.library)]) == 1
    out = capsys.readouterr().out
    rows = _rows(out)
    assert rows[row] == doctor.FAIL
    assert [r for r, s in rows.items() if s == doctor.FAIL] == [row]  # the other rows still ran and passed
    assert message in out and "12 passed, 1 failed, 1 skipped" in out


def test_a_plugin_library_for_another_tensorrt_major_fails(fake_machine, capsys):
    fake_machine.library.write_bytes(b"compiled against TensorRT 11.x headers")
    assert doctor.main(["--plugin-library", str(fake_machine.library)]) == 1
    assert "TensorRT 11.x headers, but this TensorRT is 10.3.0" in capsys.readouterr().out


def test_a_driver_older_than_the_runtime_major_fails(fake_machine, capsys):
    fake_machine.cupy.cuda.runtime.driverGetVersion = lambda: 11080
    assert doctor.main(["--plugin-library", str(fake_machine.library)]) == 1
    assert "driver 11.8, runtime 12.6: the driver is older" in capsys.readouterr().out


def test_an_engine_that_reads_its_input_too_early_fails_the_stream_check(fake_machine, monkeypatch):
    # The fakes run every stream synchronously, so no race can happen here: stand in for a
    # runtime that read the frame before the side stream wrote it (it sees zeros).
    from trtnet.runtime import engine as runtime_engine

    stage = runtime_engine.Engine._stage_input
    monkeypatch.setattr(runtime_engine.Engine, "_stage_input", lambda self, name, array: stage(self, name, array * 0))
    rows = doctor.run_checks(doctor.Machine(plugin_library=fake_machine.library),
                             [c for c in doctor.CHECKS if c[0] == "stream order of inputs"])
    assert rows[0].status == doctor.FAIL and "before the producing stream finished" in rows[0].detail


def test_bad_arguments_are_usage_errors_and_a_missing_case_folder_exits_1(capsys):
    with pytest.raises(SystemExit) as exc:
        doctor.main(["--bogus"])
    assert exc.value.code == 2
    assert doctor.main(["--reference", "/no/such/case"]) == 1
    assert "reference case folder not found: /no/such/case" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        doctor.main(["--version"])
    assert exc.value.code == 0


def test_what_the_doctor_calls_on_tensorrt_exists_in_the_real_bindings(fake_machine, trt):
    from test_trt_conformance import usage_problems

    machine = doctor.Machine(plugin_library=fake_machine.library)
    machine.trt = fake_machine.trt  # the fake runs the checks; `trt` (10.3 / 11.4) is the judge
    rows = doctor.run_checks(machine)
    assert [r.name for r in rows if r.status == doctor.FAIL] == []
    for name in ("get_plugin_registry", "init_libnvinfer_plugins", "Logger", "Builder", "Runtime",
                 "NetworkDefinitionCreationFlag", "ReduceOperation", "DataType", "TensorIOMode"):
        assert hasattr(trt, name), name
    usage = fake_machine.trt.usage
    usage.enums = {e for e in usage.enums if e[0] != "Severity"}  # real: Logger.Severity (as test_build_options)
    assert usage_problems(usage, trt) == []
    for built in fake_machine.trt.built:  # the tiny networks, defined through the emulator's recorder
        assert usage_problems(built["network"].usage, trt) == []
    assert hasattr(trt.IPluginRegistry, "get_creator")


def _detections(classes, scores, boxes):
    from trtnet import names

    n = len(classes)
    return {names.DET_COUNT: np.array([n], np.int32), names.DET_CLASSES: np.array([classes], np.int32),
            names.DET_SCORES: np.array([scores], np.float32), names.DET_BOXES: np.array([boxes], np.float32)}


def test_detections_match_one_to_one_within_the_tolerances_whatever_their_order():
    tol = 2.0 ** -9  # dyadic values: the boundary cases are exact in float32
    a, b, c = [0.125, 0.125, 0.25, 0.25], [0.5, 0.5, 0.75, 0.75], [0.25, 0.625, 0.5, 0.875]
    want = _detections([1, 2, 1], [0.875, 0.75, 0.625], [a, b, c])
    on_bound = [0.25, 0.625, 0.5, 0.875 + tol]
    got = _detections([2, 1, 1], [0.75 + 2.0 ** -11, 0.875, 0.625], [b, a, on_bound])  # order swapped
    matched, score_err, box_err, missing = doctor.match_detections(got, want, tol, tol, 0.05)
    assert (matched, missing, score_err, box_err) == (3, [], 2.0 ** -11, tol)
    over = _detections([1, 2, 1], [0.875, 0.75, 0.625], [a, b, [0.25, 0.625, 0.5, 0.875 + tol + 2.0 ** -20]])
    # c has the last kept score: at the capacity's cut a rounding may swap it for another detection
    assert doctor.match_detections(over, want, tol, tol, 0.05)[:2] == (2, 0.0)
    assert doctor.match_detections(over, want, tol, tol, 0.05)[3] == []
    worse = _detections([1, 2, 1], [0.875, 0.75, 0.625], [[0.125, 0.125, 0.25, 0.25 + 2 * tol], b, c])
    assert doctor.match_detections(worse, want, tol, tol, 0.05)[3] == ["emulator 0", "engine 0"]  # not at an edge
