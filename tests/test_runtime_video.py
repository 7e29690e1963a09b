"""VideoSegmenter: upstream's keyframe schedule (every 5th frame from 0), keyframe state
passed between the engines in place, and the non-keyframe pass of vid_resnet50 through the
fake TensorRT runtime (tests/runtime_fakes.py) against the upstream reference (two
emulator passes)."""

from __future__ import annotations

import numpy as np
import pytest

from runtime_fakes import fake_cupy, fake_gpu  # noqa: F401 - fake_gpu is a fixture
from trtnet import names
from trtnet.build import build_engine
from trtnet.config import get_config
from trtnet.network.yolact_edge import STATE_INPUTS
from trtnet.verification.reference_data import ReferenceCase
from trtnet.runtime import Engine, EngineError, VideoSegmenter
from trtnet.runtime.backends import build_nonkeyframe_engine_bytes
from trtnet.network.weights import WeightStore


class StubEngine(Engine):
    """An Engine-shaped recorder: fixed outputs (no detections), logs what it was given."""

    def __init__(self, stream, inputs, outputs, log, label):  # noqa: D107 - no TensorRT here
        self.cupy, self.stream, self.source = fake_cupy(), stream, label
        self.inputs = dict.fromkeys(inputs, np.dtype(np.float32))
        self.outputs = dict.fromkeys(outputs, np.dtype(np.float32))
        shapes = {names.PROTO: (1, 4, 4, 32), names.DET_COUNT: (1,), names.DET_BOXES: (1, 2, 4),
                  names.DET_COEFFS: (1, 2, 32)}
        self.buffers = {n: self.cupy.zeros(shapes.get(n, (1, 2)), np.float32) for n in outputs}
        self.log, self.label = log, label

    def run(self, inputs, *, synchronize=True):
        self.log.append((self.label, {k: v for k, v in inputs.items() if k != names.INPUT}))
        return dict(self.buffers)


def _stub_pair():
    log, stream = [], fake_cupy().cuda.Stream()
    detector = (*names.DETECTIONS, names.PROTO)
    key = StubEngine(stream, [names.INPUT], [*detector, *STATE_INPUTS], log, "key")
    nonkey = StubEngine(stream, [names.INPUT, *STATE_INPUTS.values()], detector, log, "nonkey")
    return key, nonkey, log


def test_every_fifth_frame_from_the_first_is_a_keyframe_like_upstream():
    key, nonkey, log = _stub_pair()
    video = VideoSegmenter(key, nonkey)
    frame = np.zeros((6, 8, 3), np.uint8)
    for _ in range(11):
        video(frame)
    assert [i for i, (label, _) in enumerate(log) if label == "key"] == [0, 5, 10]
    video.reset()
    video(frame)
    assert log[-1][0] == "key"


def test_a_new_frame_size_forces_a_keyframe():
    key, nonkey, log = _stub_pair()
    video = VideoSegmenter(key, nonkey)
    for shape in [(6, 8, 3), (6, 8, 3), (7, 8, 3), (7, 8, 3), (7, 9, 3)]:
        video(np.zeros(shape, np.uint8))
    assert [label for label, _ in log] == ["key", "nonkey", "key", "nonkey", "key"]


def test_non_keyframes_read_the_keyframe_state_buffers_in_place():
    key, nonkey, log = _stub_pair()
    video = VideoSegmenter(key, nonkey, keyframe_interval=3)
    for _ in range(3):
        video(np.zeros((6, 8, 3), np.uint8))
    for _, given in log[1:]:
        assert all(given[name] is key.buffers[exported] for exported, name in STATE_INPUTS.items())


def test_a_keyframe_engine_without_state_outputs_is_rejected():
    key, nonkey, _ = _stub_pair()
    for exported in STATE_INPUTS:
        del key.outputs[exported]
    with pytest.raises(EngineError, match="does not export the keyframe state.*build it from a video config"):
        VideoSegmenter(key, nonkey)


def test_nonkey_pass_of_vid_resnet50_matches_the_reference(fake_gpu, reference_dir):
    case = ReferenceCase(reference_dir / "vid_resnet50")
    config = get_config(case.config_name)
    store = WeightStore.load(case.weights_path)
    video = VideoSegmenter(build_engine(fake_gpu.trt, store, config),
                           build_nonkeyframe_engine_bytes(store, config))
    assert [case.frame_of(p) for p in ("key", "nonkey")] == ["A", "B"]  # nonkey follows key (manifest)
    video(case.image("key"))
    inst = video(case.image("nonkey"))
    assert not video.last_was_keyframe
    want = case.detections("nonkey")
    assert len(inst.scores) == len(want["scores"])
    np.testing.assert_array_equal(inst.classes, want["classes"])
    np.testing.assert_allclose(inst.scores, want["scores"], atol=1e-4)  # verify's score tolerance
    assert np.abs(inst.boxes - want["boxes"]).max() <= 1  # upstream truncates pixel boxes
    ref = want["masks"].astype(bool)
    inter, union = (inst.masks & ref).sum((1, 2)), (inst.masks | ref).sum((1, 2))
    assert union.sum() > 1000
    assert ((inter / np.maximum(union, 1) >= 0.99) | (union - inter <= 4)).all()  # verify's mask rule


def test_verify_tensorrt_backend_checks_the_nonkey_pass_with_both_engines(fake_gpu, reference_dir, capsys):
    from trtnet import verify

    code = verify.main([str(reference_dir / "vid_resnet50"), "--backend", "tensorrt", "--frames", "key,nonkey"])
    report = capsys.readouterr().out
    assert code == 0, report
    assert "pass nonkey" in report and "2 passes run" in report and "-> PASS" in report
    assert fake_gpu.trt.events.count("deserialize") == 2  # keyframe engine, then the non-keyframe one
