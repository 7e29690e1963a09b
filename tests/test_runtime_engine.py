"""trtnet.runtime.Engine without a GPU: over the fake TensorRT runtime and the NumPy CuPy
stand-in of tests/runtime_fakes.py (a tiny network: frame -> per-channel sums), and its
TensorRT API usage checked against the REAL 11.4 and 10.3 bindings."""

from __future__ import annotations

import re
import sys

import numpy as np
import pytest

from runtime_fakes import SUM, SUM_INT, fake_gpu, tiny_engine  # noqa: F401 - fake_gpu is a fixture
from trtnet import names
from trtnet.runtime import NUMPY_DTYPES, Engine, EngineError, numpy_dtype


def _frame(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _sums(frame: np.ndarray) -> np.ndarray:
    return frame.reshape(-1, 3).sum(0, dtype=np.int64)[None]


def test_io_tensors_are_enumerated_by_name_with_numpy_dtypes(fake_gpu):
    engine = Engine(tiny_engine(fake_gpu.trt))
    assert engine.inputs == {names.INPUT: np.uint8}
    assert engine.outputs == {SUM: np.float32, SUM_INT: np.int32}
    assert engine.profile() == ((1, 8, 8, 3), (1, 32, 32, 3), (1, 64, 64, 3))


def test_an_odd_sized_frame_runs_and_outputs_come_back_by_name(fake_gpu):
    # The fake context reads the frame from the address the runtime set and writes the sums
    # to the output addresses: exact integers (sums of uint8 below 2^24 are exact in float32).
    frame = _frame(37, 53)
    out = Engine(tiny_engine(fake_gpu.trt))(frame)
    np.testing.assert_array_equal(out[SUM_INT], _sums(frame))
    np.testing.assert_array_equal(out[SUM], _sums(frame).astype(np.float32))
    assert out[SUM].dtype == np.float32 and out[SUM_INT].dtype == np.int32


def test_plugins_are_loaded_before_the_engine_is_deserialized(fake_gpu):
    Engine(tiny_engine(fake_gpu.trt))
    assert fake_gpu.trt.events == ["plugins.load", "deserialize"]


def test_buffers_are_allocated_once_per_shape_and_reused(fake_gpu, monkeypatch):
    engine = Engine(tiny_engine(fake_gpu.trt))
    allocations = []
    empty = fake_gpu.cupy.empty
    monkeypatch.setattr(fake_gpu.cupy, "empty", lambda shape, dtype: allocations.append(shape) or empty(shape, dtype))
    first = engine(_frame(20, 30, 1))[SUM_INT]
    assert len(allocations) == 3  # the frame's device buffer and the two outputs
    second = engine(_frame(20, 30, 2))
    assert len(allocations) == 3 and second[SUM_INT] is first
    np.testing.assert_array_equal(second[SUM_INT], _sums(_frame(20, 30, 2)))
    engine(_frame(21, 30))  # a new frame size: only the input buffer changes (outputs are [1, 3])
    assert allocations[3:] == [(1, 21, 30, 3)]


def test_a_frame_outside_the_profile_is_an_error_naming_the_range(fake_gpu):
    engine = Engine(tiny_engine(fake_gpu.trt))
    with pytest.raises(EngineError, match=r"frame 65x20 \(HxW\) is outside the optimization profile .*"
                                          r"min 8x8, max 64x64.*--max-frame"):
        engine(_frame(65, 20))


@pytest.mark.parametrize("bad, what", [(np.zeros((10, 10, 4), np.uint8), "uint8 (10, 10, 4)"),
                                       (np.zeros((10, 10, 3), np.float32), "float32 (10, 10, 3)"),
                                       (np.zeros((0, 10, 10, 3), np.uint8), "uint8 (0, 10, 10, 3)")])
def test_a_frame_that_is_not_uint8_hxwx3_is_a_clear_error(fake_gpu, bad, what):
    engine = Engine(tiny_engine(fake_gpu.trt))
    with pytest.raises(EngineError, match=r"expected uint8 BGR frames HxWx3, NxHxWx3 or a list of HxWx3, got "
                                          + re.escape(what)):
        engine(bad)


def test_a_batch_larger_than_the_profile_is_an_error_naming_max_batch(fake_gpu):
    engine = Engine(tiny_engine(fake_gpu.trt))  # batch 1 only
    with pytest.raises(EngineError, match=r"a batch of 2 frames is outside the optimization profile .*1\.\.1 "
                                          r"frames.*--max-batch"):
        engine(np.zeros((2, 10, 10, 3), np.uint8))


def test_a_device_frame_is_used_in_place(fake_gpu):
    engine = Engine(tiny_engine(fake_gpu.trt))
    frame = fake_gpu.cupy.asarray(_frame(16, 16))
    out = engine(frame)
    np.testing.assert_array_equal(out[SUM_INT], _sums(np.asarray(frame)))
    assert engine._input_buffers == {}  # no staging copy


def test_cuda_graph_is_captured_on_the_second_run_and_replayed(fake_gpu):
    engine = Engine(tiny_engine(fake_gpu.trt), cuda_graph=True)
    for seed in range(4):
        frame = _frame(24, 24, seed)
        np.testing.assert_array_equal(engine(frame)[SUM_INT], _sums(frame))  # replays read the new frame
    (graph,) = engine._graphs.values()
    assert graph.launches == 3  # run 1 plain, run 2 captured + launched, runs 3-4 replayed
    assert engine.context.executions == 4


def test_a_plain_run_drops_the_graph_and_the_same_shape_captures_again(fake_gpu):
    # Shapes A, A, B, A, A: A captured; B runs plain (its warm-up), which may reallocate what
    # the graph points at, so the graph goes; the next A is a plain warm-up, the one after
    # recaptures. The fake context refuses to replay a graph after a plain run.
    engine = Engine(tiny_engine(fake_gpu.trt), cuda_graph=True)
    launches = []
    for step, (h, w) in enumerate([(24, 24), (24, 24), (16, 20), (24, 24), (24, 24), (24, 24)]):
        frame = _frame(h, w, step)
        np.testing.assert_array_equal(engine(frame)[SUM_INT], _sums(frame))
        launches.append([g.launches for g in engine._graphs.values()])
    assert launches == [[], [1], [], [], [1], [2]]
    assert engine.context.executions == 6


@pytest.mark.parametrize("failure", ["refuse", "invalidate"])
def test_a_failed_capture_warns_and_runs_without_graphs(fake_gpu, failure):
    # TensorRT refusing to enqueue under capture, or CUDA invalidating the capture: the capture
    # is ended (the stream leaves capture mode), the run happens plainly, graphs are off.
    engine = Engine(tiny_engine(fake_gpu.trt), cuda_graph=True)
    engine.context.capture_failure = failure
    frame = _frame(24, 24)
    engine(frame)
    with pytest.warns(RuntimeWarning, match="CUDA graph capture of .* failed .*running without CUDA graphs"):
        out = engine(frame)
    np.testing.assert_array_equal(out[SUM_INT], _sums(frame))
    assert engine.stream.capture is None and engine._graphs == {} and engine.cuda_graph is False
    np.testing.assert_array_equal(engine(_frame(24, 24, 5))[SUM_INT], _sums(_frame(24, 24, 5)))
    assert engine.context.executions == 3


def test_truncated_engine_file_is_an_error_naming_the_file(fake_gpu, tmp_path):
    path = tmp_path / "model.engine"
    path.write_bytes(tiny_engine(fake_gpu.trt)[:700])
    with pytest.raises(EngineError, match=rf"could not deserialize {path} \(700 bytes\).*truncated or corrupt"):
        Engine(path)


@pytest.mark.parametrize("content, message", [
    (b"", r"is empty \(0 bytes\)"),
    (b"\x00" * 100, r"is 100 bytes, too small for a TensorRT engine \(truncated\?\)"),
    (b"PK\x03\x04" + bytes(1000), r"looks like a zip archive \(a PyTorch .pth checkpoint\?\)"),
    ((20).to_bytes(8, "little") + b'{"a": {"dtype": 1}}' + bytes(1000), r"looks like a safetensors checkpoint"),
])
def test_files_that_are_surely_not_engines_are_rejected_before_tensorrt(fake_gpu, tmp_path, content, message):
    path = tmp_path / "model.engine"
    path.write_bytes(content)
    with pytest.raises(EngineError, match=message) as info:
        Engine(path)
    assert str(path) in str(info.value)
    assert "deserialize" not in fake_gpu.trt.events


def test_missing_engine_file_is_a_clear_error(fake_gpu, tmp_path):
    with pytest.raises(EngineError, match=f"engine file not found: {tmp_path / 'nope.engine'}"):
        Engine(tmp_path / "nope.engine")


def test_without_cupy_the_error_says_what_to_install(fake_gpu, monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)
    with pytest.raises(EngineError, match="CuPy, which is not installed.*pip install cupy-cuda12x"):
        Engine(tiny_engine(fake_gpu.trt))


def test_without_a_gpu_the_error_says_so(fake_gpu, monkeypatch):
    monkeypatch.setattr(fake_gpu.cupy.cuda.runtime, "getDeviceCount", lambda: 0)
    with pytest.raises(EngineError, match="needs a CUDA GPU, and CuPy found none"):
        Engine(tiny_engine(fake_gpu.trt))


def test_without_tensorrt_the_error_says_what_is_needed(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(EngineError, match=r"needs the TensorRT Python package \(tensorrt, 10.3 or newer\)"):
        Engine(b"")


def test_types_without_a_numpy_dtype_are_a_clear_error(trt):
    with pytest.raises(EngineError, match="tensor 'x' has TensorRT type BF16, which the runtime cannot hold"):
        numpy_dtype(trt.DataType.BF16, "x")


# --- against the real bindings -------------------------------------------------------------
def test_runtime_api_calls_exist_in_tensorrt_with_these_parameter_names(trt):
    from test_trt_conformance import usage_problems

    import runtime_fakes

    fake = runtime_fakes.fake_tensorrt()
    cupy = runtime_fakes.fake_cupy()
    engine = Engine(tiny_engine(fake), trt=fake, cupy=cupy, load_plugins=False, cuda_graph=True)
    for _ in range(3):
        engine(_frame(9, 11))
    fake.usage.enums = {e for e in fake.usage.enums if e[0] != "Severity"}  # Logger.Severity: checked below
    assert usage_problems(fake.usage, trt) == []
    assert {c[:2] for c in fake.usage.calls} >= {
        ("Runtime", "deserialize_cuda_engine"), ("ICudaEngine", "get_tensor_profile_shape"),
        ("IExecutionContext", "set_input_shape"), ("IExecutionContext", "set_tensor_address"),
        ("IExecutionContext", "execute_async_v3")}


def test_the_fakes_enums_have_tensorrts_names_and_values(trt):
    import runtime_fakes

    fake = runtime_fakes.fake_tensorrt()
    for name in ("TensorIOMode", "MemoryPoolType"):
        for member in getattr(fake, name):
            assert int(getattr(trt, name).__members__[member.name]) == member.value, (name, member.name)
    assert "STRONGLY_TYPED" in trt.NetworkDefinitionCreationFlag.__members__
    assert int(trt.Logger.WARNING) == int(fake.Logger.WARNING)


def test_numpy_dtypes_agree_with_tensorrt_nptype(trt):
    for name, dtype in NUMPY_DTYPES.items():
        assert np.dtype(trt.nptype(trt.DataType.__members__[name])) == dtype, name
        assert numpy_dtype(trt.DataType.__members__[name]) == dtype  # real enum members map by name


def test_real_bindings_without_libnvinfer_fail_with_a_clear_error(trt, monkeypatch):
    # The real Runtime over the harness's stub libnvinfer (createInferRuntime returns NULL),
    # as on a machine whose TensorRT/driver cannot start: the runtime says so.
    import runtime_fakes

    engine_bytes = tiny_engine(runtime_fakes.fake_tensorrt())
    with pytest.raises(EngineError, match=r"TensorRT could not create a runtime \(is the CUDA driver working\?\)"):
        Engine(engine_bytes, trt=trt, cupy=runtime_fakes.fake_cupy(), load_plugins=False)
