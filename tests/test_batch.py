"""Multi-camera batches (issue 9): a batch of frames gives exactly the per-frame results.

Every layer, both plugins' CPU twins (Fast NMS, inverse warp), the head and the box decoding
run with N = 2 on the emulator, and the runtime (Engine, Segmenter, VideoSegmenter over the
fake TensorRT of tests/runtime_fakes.py) takes a list of frames and returns a list of
Instances. Upstream crashed at batch 2 (yolact_edge #126).

The networks run at a 106x106 input (the configs with ``max_size`` 106: every layer and plugin
as at 550, 27x fewer pixels) to keep these tests fast; batches of the reference photos at
550 were checked the same way (see the issue note). The two photos of a batch must have one
size: the second is resized to the first's with OpenCV, as a user would.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from instances_match import assert_instances_match
from runtime_fakes import fake_gpu  # noqa: F401 - fixture
from trtnet import names
from trtnet.build import build_engine
from trtnet.config import get_config
from trtnet.network.yolact_edge import emulate_keyframe, emulate_nonkeyframe
from trtnet.verification.reference_data import ReferenceCase
from trtnet.runtime import EngineError, Segmenter, VideoSegmenter
from trtnet.runtime.segmenter import instances_from_outputs, outputs_of_frame
from trtnet.network.weights import WeightStore

SMALL = 106  # P3..P7: 14, 7, 4, 2, 1


def _small(case: ReferenceCase):
    return dataclasses.replace(get_config(case.config_name), max_size=SMALL)


def _same_size(frame: np.ndarray, like: np.ndarray) -> np.ndarray:
    return cv2.resize(frame, (like.shape[1], like.shape[0]), interpolation=cv2.INTER_LINEAR)


# A batch of 2 runs other GEMM shapes than a batch of 1, so its sums may round differently: a float
# tensor within fp32 reordering error (1e-5 x its max, 100x the rounding of these sums, 1e5x below
# any batch-mixing error), detections as Instances (tests/instances_match.py), integers exactly.
REORDER_RTOL = 1e-5


def _assert_entry_equals(batch: dict, index: int, single: dict, frame_hw: tuple[int, int]) -> None:
    for name, want in single.items():
        got = batch[name][index:index + 1]
        assert got.shape == want.shape, name
        if name in names.DETECTIONS:
            continue
        if np.issubdtype(want.dtype, np.floating):
            scale = max(1.0, float(np.abs(want).max(initial=0.0)))
            np.testing.assert_allclose(got, want, rtol=0, atol=REORDER_RTOL * scale,
                                       err_msg=f"{name}, batch entry {index}")
        else:
            np.testing.assert_array_equal(got, want, err_msg=f"{name}, batch entry {index}")
    assert_instances_match(instances_from_outputs(outputs_of_frame(batch, index), frame_hw),
                           instances_from_outputs(single, frame_hw), f"batch entry {index}")


@pytest.fixture(scope="module")
def mobilenet(reference_dir):
    case = ReferenceCase(reference_dir / "mobilenetv2")
    store, config = WeightStore.load(case.weights_path), _small(case)
    a = case.image("img0")
    frames = [a, _same_size(case.image("img1"), a)]  # 512x512 and 400x600 -> both 512x512
    batch = emulate_keyframe(store, config, frames)
    return store, config, frames, batch


@pytest.fixture(scope="module")
def video(reference_dir):
    case = ReferenceCase(reference_dir / "vid_resnet50")
    store, config = WeightStore.load(case.weights_path), _small(case)
    a, b = case.image("key"), case.image("nonkey")
    key = emulate_keyframe(store, config, [a, b])  # camera 0 sees A then B, camera 1 B then A
    nonkey = emulate_nonkeyframe(store, config, [b, a], key)
    return store, config, (a, b), key, nonkey


def test_a_keyframe_batch_gives_exactly_the_per_frame_outputs(mobilenet):
    store, config, frames, batch = mobilenet
    assert batch[names.DET_COUNT].shape == (2,) and (batch[names.DET_COUNT] > 0).all()
    for i, frame in enumerate(frames):
        _assert_entry_equals(batch, i, emulate_keyframe(store, config, frame), frame.shape[:2])


def test_a_video_batch_gives_exactly_the_per_camera_outputs(video):
    # Camera 1 (the second batch entry): a layer that reads entry 0 for all, or swaps them, fails.
    store, config, (a, b), key, nonkey = video
    single_key = emulate_keyframe(store, config, b)
    _assert_entry_equals(key, 1, single_key, b.shape[:2])
    _assert_entry_equals(nonkey, 1, emulate_nonkeyframe(store, config, a, single_key), a.shape[:2])


def test_the_nonkeyframe_network_refuses_a_state_of_another_batch(video):
    store, config, (a, b), key, _ = video
    with pytest.raises(ValueError, match=r"one batch size .*'frame': 1, 'key/fpn_phase_1/lateral3': 2"):
        emulate_nonkeyframe(store, config, [a], key)  # state of 2 cameras, 1 frame


def _same_instances(got, want, where: str) -> None:
    # A batch of 2 runs other GEMM shapes than a batch of 1: the sums may round differently, so
    # within floating point's spread (a mask pixel at 0.5 may flip, measured: 1 of 13.5 M).
    assert_instances_match(got, want, where)


def test_the_segmenter_returns_one_instances_per_frame_of_a_list(fake_gpu, mobilenet):
    store, config, frames, batch = mobilenet
    segmenter = Segmenter(build_engine(fake_gpu.trt, store, config, max_batch=2))
    found = segmenter(frames)
    assert isinstance(found, list) and len(found) == 2
    hw = frames[0].shape[:2]
    for i, inst in enumerate(found):
        want = instances_from_outputs(outputs_of_frame(batch, i), hw)
        assert len(want.scores) > 0
        _same_instances(inst, want, f"frame {i}")


def test_batches_the_engine_cannot_take_are_clear_errors(fake_gpu, mobilenet):
    store, config, frames, _ = mobilenet
    segmenter = Segmenter(build_engine(fake_gpu.trt, store, config, max_batch=2))
    with pytest.raises(EngineError, match=r"a batch of 3 frames is outside the optimization profile .*1\.\.2 "
                                          r"frames.*--max-batch"):
        segmenter([frames[0]] * 3)
    with pytest.raises(EngineError, match=r"frames of one size, got shapes \[\(400, 600, 3\), \(512, 512, 3\)\]"):
        segmenter([frames[0], np.zeros((400, 600, 3), np.uint8)])
    with pytest.raises(EngineError, match="one or more"):
        segmenter([])


def test_the_video_segmenter_keeps_one_keyframe_state_per_camera(fake_gpu, video):
    from trtnet.runtime.backends import build_engine_bytes

    store, config, (a, b), key, nonkey = video
    segmenter = VideoSegmenter(build_engine(fake_gpu.trt, store, config, max_batch=2),
                               build_engine_bytes(store, config, nonkeyframe=True, max_batch=2),
                               keyframe_interval=2)
    hw = a.shape[:2]
    for frames, outputs, keyframe in (([a, b], key, True), ([b, a], nonkey, False)):
        found = segmenter(frames)
        assert segmenter.last_was_keyframe is keyframe and len(found) == 2
        for i, inst in enumerate(found):
            _same_instances(inst, instances_from_outputs(outputs_of_frame(outputs, i), hw),
                            f"camera {i}, keyframe {keyframe}")
