"""Stream order and buffer lifetimes of the Python runtime (issue 15, defects 1, 2, 4, 7, 9),
asserted on the fake GPU's record of operations (trtnet/benchmarks/_fake_engine.py): a
freed pool block is handed out again at the same address, operations on two streams are
ordered only by an event wait or a host synchronize, and every unordered access to a block
is a hazard (RAW / WAR / WAW). Plus the frame loop's steady state: 0 pool allocations and
1 host synchronisation per frame after warm-up, from the fakes' counters (never times).
"""

from __future__ import annotations

import numpy as np
import pytest

from runtime_fakes import SUM_INT, fake_gpu, tiny_engine  # noqa: F401 - fake_gpu is a fixture
from trtnet import names
from trtnet.benchmarks import _fake_engine
from trtnet.runtime import Engine, EngineError, Segmenter, VideoSegmenter
from trtnet.runtime.schedule import KeyframeSchedule


def _frame(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _sums(frame: np.ndarray) -> np.ndarray:
    return np.asarray(frame).reshape(-1, 3).sum(0, dtype=np.int64)[None]


def _kinds(device) -> list[str]:
    return [h[0] for h in device.hazards]


# --- the fake itself --------------------------------------------------------------------------
def test_the_fake_pool_keeps_a_block_while_any_view_of_it_lives_and_reuses_it_after(fake_gpu):
    cupy = fake_gpu.cupy
    a = cupy.empty((3,), np.float32)
    b = cupy.empty((3,), np.int32)
    assert a.ctypes.data != b.ctypes.data  # two live arrays never share a block
    view, address = a[1:], a.ctypes.data
    del a
    assert cupy.empty((3,), np.float32).ctypes.data != address  # the view keeps the block
    del view
    assert cupy.empty((3,), np.float32).ctypes.data == address  # freed: handed out again


def test_the_fake_sees_an_unordered_read_across_streams_and_an_event_orders_it(fake_gpu):
    cupy = fake_gpu.cupy
    other = cupy.cuda.Stream(non_blocking=True)
    x = cupy.zeros((4,), np.float32)  # written on the legacy default stream
    x.get(stream=other)
    assert _kinds(cupy.device) == ["RAW"]
    cupy.device.hazards.clear()
    y = cupy.zeros((4,), np.float32)
    other.wait_event(cupy.cuda.get_current_stream().record())
    y.get(stream=other)
    assert cupy.device.hazards == []


# --- defect 1: a staged device input outlives the engine's read --------------------------------
def test_a_non_contiguous_device_frame_is_staged_into_a_kept_buffer_not_a_freed_temporary(fake_gpu):
    # NvInferRuntime.h enqueueV3 (10.3 l.4258, 11.1 l.4633): releasing registered memory before
    # the stream has passed it is undefined. Old code: cupy.ascontiguousarray's temporary died
    # with the loop variable, the next allocation of that size got its block and overwrote it
    # while the engine's stream could still read it (a WAR hazard, the same address).
    cupy = fake_gpu.cupy
    engine = Engine(tiny_engine(fake_gpu.trt))
    host = _frame(16, 16)
    flipped = cupy.asarray(host)[..., ::-1]  # a BGR -> RGB flip: not contiguous
    out = engine(flipped, synchronize=False)
    read_from = engine.context.addresses[names.INPUT]
    scratch = cupy.zeros(host.shape[:2] + (3,), np.uint8)[None]  # the user's next allocation
    assert scratch.ctypes.data != read_from
    assert "WAR" not in _kinds(fake_gpu.cupy.device)
    engine.stream.synchronize()
    np.testing.assert_array_equal(out[SUM_INT], _sums(host[..., ::-1]))


def test_a_device_frame_used_in_place_is_kept_alive_until_the_stream_has_passed_it(fake_gpu):
    cupy = fake_gpu.cupy
    engine = Engine(tiny_engine(fake_gpu.trt))
    engine(_frame(16, 16))  # warm-up: the host frame's staging buffer exists before
    host = _frame(16, 16, 3)
    engine(cupy.asarray(host[None]), synchronize=False)  # the caller keeps no reference
    read_from = engine.context.addresses[names.INPUT]
    assert cupy.empty((1, 16, 16, 3), np.uint8).ctypes.data != read_from  # still held
    engine.stream.synchronize()
    engine(_frame(16, 16))  # the next run releases what the stream has passed
    assert cupy.empty((1, 16, 16, 3), np.uint8).ctypes.data == read_from
    assert cupy.device.hazards == []


def test_without_a_synchronize_at_most_a_few_runs_of_inputs_are_held(fake_gpu):
    # A caller that never synchronizes: the oldest held run is waited for (one event
    # synchronize) rather than holding every frame's input forever.
    from trtnet.runtime.engine import MAX_IN_FLIGHT

    cupy = fake_gpu.cupy
    engine = Engine(tiny_engine(fake_gpu.trt))
    for seed in range(MAX_IN_FLIGHT + 3):
        engine(cupy.asarray(_frame(16, 16, seed)), synchronize=False)
        assert len(engine._in_flight) <= MAX_IN_FLIGHT + 1
    assert cupy.device.hazards == [] and cupy.device.syncs >= 2


# --- defect 2: device inputs ordered before the engine's non-blocking stream --------------------
def test_a_frame_uploaded_on_the_current_stream_is_ordered_before_the_engine(fake_gpu):
    # The engine's Stream(non_blocking=True) "does not synchronize with the NULL stream"
    # (docs.cupy.dev cupy.cuda.Stream): old code read the upload unordered (RAW).
    cupy = fake_gpu.cupy
    engine = Engine(tiny_engine(fake_gpu.trt))
    host = _frame(20, 24, 1)
    out = engine(cupy.asarray(host), synchronize=False)
    assert cupy.device.hazards == []
    engine.stream.synchronize()
    np.testing.assert_array_equal(out[SUM_INT], _sums(host))


def test_a_frame_made_on_the_callers_own_stream_is_ordered_when_that_stream_is_current(fake_gpu):
    cupy = fake_gpu.cupy
    engine = Engine(tiny_engine(fake_gpu.trt))
    producer = cupy.cuda.Stream(non_blocking=True)
    host = _frame(12, 12, 2)
    with producer:
        frame = cupy.asarray(host)
        out = engine(frame, synchronize=True)
    assert cupy.device.hazards == []
    np.testing.assert_array_equal(out[SUM_INT], _sums(host))


def test_a_batch_of_device_frames_stacked_on_the_current_stream_is_ordered(fake_gpu):
    cupy = fake_gpu.cupy
    keyframe, _ = _fake_engine.trtnet_engines(max_batch=4)
    engine = Engine(keyframe, trt=_fake_engine.fake_tensorrt())
    frames = [cupy.asarray(_frame(64, 64, i)) for i in range(4)]
    engine(frames, synchronize=False)  # cupy.stack on the current stream, then the engine
    assert cupy.device.hazards == []


def test_an_engine_on_the_callers_stream_needs_no_event(fake_gpu):
    cupy = fake_gpu.cupy
    mine = cupy.cuda.Stream(non_blocking=True)
    engine = Engine(tiny_engine(fake_gpu.trt), stream=mine)
    before = cupy.device.events_created
    with mine:
        engine(cupy.asarray(_frame(10, 10)))
    assert cupy.device.hazards == [] and cupy.device.events_created - before <= 1  # the in-place hold


# --- defect 4: motion read on the engine's stream, after the engine ------------------------------
def _video(cupy, **kwargs) -> VideoSegmenter:
    keyframe, nonkeyframe = _fake_engine.trtnet_engines(max_batch=4)
    trt = _fake_engine.fake_tensorrt()  # I/O-only engines with trtnet's tensor names, on the same fake GPU
    key = Engine(keyframe, trt=trt, cuda_graph=kwargs.pop("cuda_graph", False))
    nonkey = Engine(nonkeyframe, trt=trt, stream=key.stream, cuda_graph=key.cuda_graph)
    return VideoSegmenter(key, nonkey, **kwargs)


def test_the_schedule_reads_a_device_motion_on_the_engines_stream(fake_gpu):
    cupy = fake_gpu.cupy
    engine_stream = cupy.cuda.Stream(non_blocking=True)
    with engine_stream:
        motion = cupy.zeros((2,), np.float32)  # what the non-keyframe engine wrote
    schedule = KeyframeSchedule(5, motion_threshold=0.3)
    schedule.take((8, 8))
    schedule.take((8, 8))
    schedule.record_motion(motion, stream=engine_stream)
    assert schedule.next_is_keyframe((8, 8)) is False
    assert cupy.device.hazards == []  # old code: get() on the default stream, a RAW
    assert cupy.device.log[-1][:1] == (engine_stream.name,) and cupy.device.log[-1][2] == "get"


def test_video_outputs_are_read_after_the_engine_and_motion_decides_on_its_own_stream(fake_gpu):
    # Old code: outputs() returned before the stream had run, the caller's get() (and the next
    # frame's motion read) ran on the default stream: RAW hazards.
    cupy = fake_gpu.cupy
    video = _video(cupy, motion_threshold=0.3)
    frame = _frame(72, 96)
    for _ in range(3):
        out = video.outputs(frame)
        out[names.DET_COUNT].get()  # the caller reads the outputs on its current stream
    assert video.last_was_keyframe is False and video.last_motion == 0.0
    assert cupy.device.hazards == []


def test_video_outputs_without_synchronize_leave_the_motion_to_be_read_on_the_stream(fake_gpu):
    cupy = fake_gpu.cupy
    video = _video(cupy, motion_threshold=0.3)
    frame = _frame(72, 96)
    video.outputs(frame, synchronize=False)
    video.outputs(frame, synchronize=False)
    syncs = cupy.device.syncs
    video.outputs(frame, synchronize=False)  # decides from the last motion: read on the stream
    assert cupy.device.syncs == syncs + 1 and cupy.device.hazards == []
    assert video.last_was_keyframe is False


# --- defect 7: bindings set when they change; capture only unchanged bindings -------------------
def test_shapes_and_addresses_are_set_only_when_they_change(fake_gpu, monkeypatch):
    engine = Engine(tiny_engine(fake_gpu.trt))
    calls = []
    for method in ("set_input_shape", "set_tensor_address"):
        original = getattr(engine.context, method)
        monkeypatch.setattr(engine.context, method, lambda *a, _o=original, _m=method: calls.append(_m) or _o(*a))
    for seed in range(3):
        engine(_frame(24, 24, seed))
    assert calls == ["set_input_shape", "set_tensor_address", "set_tensor_address", "set_tensor_address"]
    calls.clear()
    engine(_frame(24, 32))  # a new shape: the input is re-set, the outputs [1, 3] keep their addresses
    assert calls == ["set_input_shape", "set_tensor_address"]


def test_a_graph_is_captured_only_from_a_run_with_the_warm_ups_bindings(fake_gpu):
    # The fake context invalidates a capture after any set_* since the last plain run (old code
    # re-set everything in the capturing call: the capture failed, graphs were switched off).
    engine = Engine(tiny_engine(fake_gpu.trt), cuda_graph=True)
    for seed in range(4):
        frame = _frame(24, 24, seed)
        np.testing.assert_array_equal(engine(frame)[SUM_INT], _sums(frame))
    assert engine.cuda_graph is True and engine.context.captured_rebinds == [0]
    (graph,) = engine._graphs.values()
    assert graph.launches == 3


def test_a_device_frame_at_a_new_address_runs_plain_and_recaptures(fake_gpu):
    cupy = fake_gpu.cupy
    engine = Engine(tiny_engine(fake_gpu.trt), cuda_graph=True)
    a, b = cupy.asarray(_frame(16, 16, 1)), cupy.asarray(_frame(16, 16, 2))
    for frame in (a, a, b, b, b):
        np.testing.assert_array_equal(engine(frame)[SUM_INT], _sums(frame))
    assert engine.context.captured_rebinds == [0, 0] and engine.cuda_graph is True
    assert cupy.device.hazards == []


# --- defect 9: 256-byte alignment of device inputs ---------------------------------------------
def test_an_unaligned_row_of_a_device_batch_is_copied_to_an_aligned_buffer(fake_gpu):
    # NvInferRuntime.h setTensorAddress (10.3 l.4003, 11.1 l.4378): "The pointer must have at
    # least 256-byte alignment." A 9x11x3 frame is 297 bytes: row 1 of a batch starts at 297.
    cupy = fake_gpu.cupy
    engine = Engine(tiny_engine(fake_gpu.trt))
    host = np.stack([_frame(9, 11, 0), _frame(9, 11, 1)])
    batch = cupy.asarray(host)
    row = batch[1:2]
    assert row.flags.c_contiguous and row.ctypes.data % 256 == 297 % 256
    out = engine(row)
    assert engine.context.addresses[names.INPUT] % 256 == 0
    np.testing.assert_array_equal(out[SUM_INT], _sums(host[1]))
    assert cupy.device.hazards == []


def test_a_row_exactly_on_the_alignment_is_used_in_place(fake_gpu):
    # 8x32x3 = 768 bytes = 3 x 256: row 1 of the batch is aligned, no copy.
    cupy = fake_gpu.cupy
    engine = Engine(tiny_engine(fake_gpu.trt))
    batch = cupy.asarray(np.stack([_frame(8, 32, 0), _frame(8, 32, 1)]))
    engine(batch[1:2])
    assert engine.context.addresses[names.INPUT] == batch[1:2].ctypes.data
    assert engine._input_buffers == {}


def test_an_address_tensorrt_still_refuses_is_a_clear_error(fake_gpu, monkeypatch):
    engine = Engine(tiny_engine(fake_gpu.trt))
    monkeypatch.setattr(engine.context, "set_tensor_address", lambda name, ptr: False)
    with pytest.raises(EngineError, match=r"rejected the device address 0x[0-9a-f]+ of 'frame' .*256-byte aligned"):
        engine(_frame(8, 8))


# --- the frame loop's steady state: counters, not times ----------------------------------------
@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize("graphs", [False, True])
def test_segmenter_outputs_take_no_allocation_and_one_sync_per_frame_after_warm_up(fake_gpu, batch, graphs):
    cupy = fake_gpu.cupy
    keyframe, _ = _fake_engine.trtnet_engines(max_batch=4)
    segmenter = Segmenter(Engine(keyframe, trt=_fake_engine.fake_tensorrt(), cuda_graph=graphs))
    frames = np.zeros((batch, 72, 96, 3), np.uint8)
    for _ in range(3):  # warm-up: buffers, bindings, capture
        segmenter.outputs(frames)
    allocations, syncs = cupy.device.allocations, cupy.device.syncs
    for _ in range(10):
        segmenter.outputs(frames)
    assert (cupy.device.allocations - allocations, cupy.device.syncs - syncs) == (0, 10)
    assert cupy.device.hazards == []


@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize("motion_threshold", [None, 0.3])
def test_video_outputs_take_no_allocation_and_one_sync_per_frame_after_warm_up(fake_gpu, batch, motion_threshold):
    cupy = fake_gpu.cupy
    video = _video(cupy, cuda_graph=True, motion_threshold=motion_threshold)
    frames = np.zeros((batch, 72, 96, 3), np.uint8)
    for _ in range(2 * video.keyframe_interval):  # both engines warmed up and captured
        video.outputs(frames)
    allocations, syncs, events = cupy.device.allocations, cupy.device.syncs, cupy.device.events_created
    kinds = []
    for _ in range(10):
        video.outputs(frames)
        kinds.append(video.last_was_keyframe)
    assert kinds.count(True) == 2  # keyframes and non-keyframes both counted
    assert (cupy.device.allocations - allocations, cupy.device.syncs - syncs) == (0, 10)
    assert cupy.device.events_created == events and cupy.device.hazards == []


# --- python -m trtnet.bench runtime ------------------------------------------------------------
def test_bench_runtime_smoke_runs_outside_the_repo_without_the_tests_fakes(tmp_path):
    # From another folder, with --source-dir at a folder without the C++ sources: the Python
    # figures are printed, the C++ ones are said to be not measured and why; the counters (not
    # the times) meet the targets. The exit code depends on the times (0 or 1), never 2.
    import json
    import subprocess
    import sys

    code = ("import sys\nfrom trtnet import bench\n"
            f"rc = bench.main(['runtime', '--frames', '20', '--json', '--source-dir', {str(tmp_path)!r}])\n"
            "assert 'runtime_fakes' not in sys.modules\nsys.exit(rc)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode in (0, 1), done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    loops = [r for r in rows if r["bench"] == "python_frame_loop"]
    assert sorted((r["runtime"], r["batch"]) for r in loops) == [
        ("Python Segmenter", 1), ("Python Segmenter", 4), ("Python VideoSegmenter", 1), ("Python VideoSegmenter", 4)]
    assert all(r["frames"] == 20 and r["median_us"] > 0 and r["p99_us"] >= r["median_us"] for r in loops)
    assert all((r["allocations_per_frame"], r["syncs_per_frame"], r["hazards"]) == (0, 1, 0) for r in loops)
    assert [r["bench"] for r in rows].count("mask_assembly") == 1
    (cpp,) = [r for r in rows if r["bench"] == "cpp_frame_loop"]
    assert cpp["note"].startswith("not measured: no trtnet source tree") and str(tmp_path) in cpp["note"]


@pytest.mark.parametrize("argv, needle", [(["--frames", "0"], "--frames: expected a positive integer"),
                                          (["--batch", "9"], "--batch 9: at most 8 cameras"),
                                          (["--size", "32", "640"], "frames of at least 64x64")])
def test_bench_runtime_bad_options_are_usage_errors(capsys, argv, needle):
    from trtnet import bench

    code = _exit_code(lambda: bench.main(["runtime", "--no-cpp", *argv]))
    err = capsys.readouterr().err
    assert code == 2 and needle in err and "Traceback" not in err


def _exit_code(fn) -> int:
    try:
        return int(fn())
    except SystemExit as exc:
        return int(exc.code)
