"""One runtime over two executors: EmulatedEngine offers the TensorRT Engine's interface
(same tensor names, dtypes and order as an engine built from the same network), so
VideoSegmenter runs the keyframe schedule on the CPU; adaptive keyframes follow the
non-keyframe network's flow/motion statistic.

Schedules are pinned with stub engines (no network runs); the emulator runs vid_resnet50
at a reduced input size (96: the network allows any max_size, and these checks are about
the schedule and the statistic, not upstream's numbers), five passes in all.
"""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest

from runtime_fakes import fake_cupy, fake_gpu  # noqa: F401 - fake_gpu is a fixture
from trtnet import names
from trtnet.runtime import profiling
from trtnet.build import build_engine
from trtnet.config import get_config
from trtnet.network.yolact_edge import NONKEYFRAME_OUTPUTS, STATE_INPUTS
from trtnet.verification.reference_data import ReferenceCase
from trtnet.runtime import EmulatedEngine, Engine, EngineError, VideoSegmenter, open_engines
from trtnet.runtime.backends import build_nonkeyframe_engine_bytes
from trtnet.network.weights import WeightStore

SMALL = 96  # input side for the emulator runs here


@pytest.fixture(scope="module")
def case(reference_dir):
    return ReferenceCase(reference_dir / "vid_resnet50")


@pytest.fixture(scope="module")
def store(case):
    return WeightStore.load(case.weights_path)


@pytest.fixture(scope="module")
def small_engines(case, store):
    config = replace(get_config(case.config_name), max_size=SMALL)
    return open_engines("emulator", store, config)


def test_emulated_engines_have_the_tensorrt_engines_names_dtypes_and_order(fake_gpu, case, store):
    config = get_config(case.config_name)
    key, nonkey = open_engines("emulator", store, config)
    trt_key = Engine(build_engine(fake_gpu.trt, store, config), trt=fake_gpu.trt, cupy=fake_gpu.cupy)
    trt_nonkey = Engine(build_nonkeyframe_engine_bytes(store, config), trt=fake_gpu.trt, cupy=fake_gpu.cupy)
    for emulated, real in ((key, trt_key), (nonkey, trt_nonkey)):
        assert list(emulated.inputs.items()) == list(real.inputs.items())
        assert list(emulated.outputs.items()) == list(real.outputs.items())
    assert set(nonkey.outputs) == set(NONKEYFRAME_OUTPUTS)
    assert nonkey.outputs[names.FLOW_MOTION] == np.float32 and nonkey.stream is key.stream


def test_emulated_engine_checks_inputs_like_the_tensorrt_engine(small_engines):
    key, nonkey = small_engines
    frame = np.zeros((1, 40, 60, 3), np.uint8)
    with pytest.raises(EngineError, match=r"input\(s\) \['key/fpn_phase_1/lateral3'"):
        nonkey.run({names.INPUT: frame})
    with pytest.raises(EngineError, match=r"has no input\(s\) \['extra'\]"):
        key.run({names.INPUT: frame, "extra": frame})
    with pytest.raises(EngineError, match="dtype float32"):
        key.run({names.INPUT: frame.astype(np.float32)})
    with pytest.raises(EngineError, match=r"shape \(1, 40, 60, 4\)"):
        key.run({names.INPUT: np.zeros((1, 40, 60, 4), np.uint8)})


# --- schedules, with stub engines -----------------------------------------------------------
class StubEngine:
    """Engine-shaped, no network: empty detections; the non-keyframe one reports the motion
    values it is given, in order."""

    def __init__(self, stream, inputs, outputs, log, label, motions=()):
        self.stream, self.source, self.log, self.label = stream, label, log, label
        self.inputs = dict.fromkeys(inputs, np.dtype(np.float32))
        self.outputs = dict.fromkeys(outputs, np.dtype(np.float32))
        self.motions = list(motions)

    def __call__(self, frame, *, synchronize=True, **inputs):
        return self.run({names.INPUT: frame, **inputs})

    def run(self, inputs, *, synchronize=True):
        self.log.append(self.label)
        out = {n: np.zeros((1, 2), np.float32) for n in self.outputs}
        out.update({names.PROTO: np.zeros((1, 4, 4, 32), np.float32), names.DET_COUNT: np.zeros(1, np.int32),
                    names.DET_BOXES: np.zeros((1, 2, 4), np.float32),
                    names.DET_COEFFS: np.zeros((1, 2, 32), np.float32)})
        if names.FLOW_MOTION in self.outputs:
            out[names.FLOW_MOTION] = np.array([self.motions.pop(0)], np.float32)
        return out


def _stub_pair(motions=(), with_motion=True):
    from trtnet.runtime import HostStream

    log, stream = [], HostStream()
    detector = (*names.DETECTIONS, names.PROTO)
    key = StubEngine(stream, [names.INPUT], [*detector, *STATE_INPUTS], log, "key")
    nonkey_out = [*detector, names.FLOW_MOTION] if with_motion else list(detector)
    nonkey = StubEngine(stream, [names.INPUT, *STATE_INPUTS.values()], nonkey_out, log, "nonkey", motions)
    return key, nonkey, log


def _keyframes(video, frames):
    schedule = []
    for _ in range(frames):
        video(np.zeros((6, 8, 3), np.uint8))
        schedule.append(video.last_was_keyframe)
    return [i for i, k in enumerate(schedule) if k]


def test_adaptive_keyframe_follows_a_motion_above_the_threshold_not_at_it():
    key, nonkey, _ = _stub_pair(motions=[0.1, 0.25, 0.2500001, 0.0, 0.3])
    video = VideoSegmenter(key, nonkey, keyframe_interval=100, motion_threshold=0.25)
    # frame 2's motion is exactly the threshold: no keyframe; frame 3's is above: frame 4 is one
    assert _keyframes(video, 7) == [0, 4]
    assert video.last_motion == pytest.approx(0.3) and not video.last_was_keyframe


def test_adaptive_keyframes_still_come_at_the_latest_every_interval():
    key, nonkey, _ = _stub_pair(motions=[0.0] * 10)
    video = VideoSegmenter(key, nonkey, keyframe_interval=3, motion_threshold=0.5)
    assert _keyframes(video, 7) == [0, 3, 6]


def test_fixed_schedule_ignores_the_motion():
    key, nonkey, _ = _stub_pair(motions=[9.0] * 10)
    video = VideoSegmenter(key, nonkey, keyframe_interval=5)
    assert _keyframes(video, 11) == [0, 5, 10]


def test_adaptive_keyframes_need_the_motion_output():
    key, nonkey, _ = _stub_pair(with_motion=False)
    with pytest.raises(EngineError, match="flow/motion output.*rebuild it"):
        VideoSegmenter(key, nonkey, motion_threshold=0.2)
    with pytest.raises(ValueError, match="motion_threshold must be >= 0"):
        VideoSegmenter(*_stub_pair()[:2], motion_threshold=-1.0)


def test_stages_are_nvtx_ranges_in_the_trtnet_domain_and_timed(monkeypatch):
    opened = []

    class FakeNvtx:
        @staticmethod
        def annotate(message, domain):
            opened.append((message, domain))
            return profiling.contextlib.nullcontext()

    monkeypatch.setattr(profiling, "_nvtx", FakeNvtx)
    key, nonkey, _ = _stub_pair(motions=[0.0])
    video = VideoSegmenter(key, nonkey)
    with profiling.StageTimes() as times:
        video(np.zeros((6, 8, 3), np.uint8))
        video(np.zeros((6, 8, 3), np.uint8))
    assert [m for m, _ in opened] == [profiling.KEYFRAME_ENGINE, profiling.POSTPROCESS, profiling.MASKS,
                                      profiling.NONKEYFRAME_ENGINE, profiling.POSTPROCESS, profiling.MASKS]
    assert {d for _, d in opened} == {"trtnet"}
    assert set(times.ms) == {profiling.KEYFRAME_ENGINE, profiling.NONKEYFRAME_ENGINE, profiling.POSTPROCESS,
                             profiling.MASKS}


def test_nested_stage_time_is_not_counted_twice(monkeypatch):
    clock = iter([0.0, 1.0, 3.0, 10.0])  # outer starts, inner 1..3, outer ends at 10
    monkeypatch.setattr(profiling.time, "perf_counter", lambda: next(clock))
    with profiling.StageTimes() as times:
        with profiling.stage("outer"):
            with profiling.stage("inner"):
                pass
    assert times.ms == {"outer": pytest.approx(8000.0), "inner": pytest.approx(2000.0)}


# --- the emulator ---------------------------------------------------------------------------
def _shifted(image, dx):
    h, w = image.shape[:2]
    return cv2.warpAffine(image, np.float32([[1, 0, dx], [0, 1, dx / 2]]), (w, h), borderMode=cv2.BORDER_REFLECT)


def test_motion_is_zero_on_the_keyframe_and_grows_with_the_shift(small_engines, case):
    key, nonkey = small_engines
    video = VideoSegmenter(key, nonkey, keyframe_interval=100)
    image = case.image("key")
    motions = []
    for dx in (0, 0, 4, 32):
        video(_shifted(image, dx))
        motions.append(video.last_motion)
    assert motions[0] is None and video.index == 4  # the first frame is a keyframe
    assert motions[1] == 0.0  # the keyframe's own image: nothing moved
    assert 0 < motions[2] < motions[3]


def test_adaptive_keyframes_go_where_the_motion_is(small_engines, case):
    from trtnet.benchmarks.keyframes import run_schedule, synthetic_clip

    key, nonkey = small_engines
    clip, shifts = synthetic_clip(case.image("key"), 6, slow=1, fast=12)
    assert shifts == [0, 1, 2, 14, 26, 38]  # frames 1-2 slow, 3-5 fast
    # 0.2: between the motion of the slow frames and that of a 12-pixel jump at this input size
    run = run_schedule(VideoSegmenter(key, nonkey, keyframe_interval=100, motion_threshold=0.2), clip, "adaptive")
    assert run.keyframe_indices[0] == 0 and len(run.keyframe_indices) >= 2
    assert all(i >= 4 for i in run.keyframe_indices[1:])  # only after the first fast frame
    assert max(run.motions[1:3]) <= 0.2 < run.motions[3]
