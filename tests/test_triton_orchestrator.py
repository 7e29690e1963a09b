"""The Triton orchestrator's per-stream logic, against a stand-in pb_utils (trtnet.triton.pb_standin):
the keyframe schedule per stream, the state handoff, START/END, frame-size changes, idle
eviction and model errors. The real server test (test_triton_server.py) runs the same code
in tritonserver; this covers what a CPU server cannot show on demand."""

from __future__ import annotations

import asyncio
import json
import sys

import numpy as np
import pytest

from trtnet import names
from trtnet.network.yolact_edge import STATE_INPUTS
from trtnet.runtime.schedule import KeyframeSchedule
from trtnet.triton import pb_standin as fakes

KEY, NONKEY = "m_keyframe", "m_nonkeyframe"
MAX_DET = 4


def _detections(count: int = 0) -> dict:
    return {names.DET_COUNT: np.array([count], np.int32), names.DET_BOXES: np.zeros((1, MAX_DET, 4), np.float32),
            names.DET_SCORES: np.zeros((1, MAX_DET), np.float32), names.DET_CLASSES: np.zeros((1, MAX_DET), np.int32),
            names.DET_COEFFS: np.zeros((1, MAX_DET, 32), np.float32),
            names.PROTO: np.zeros((1, 138, 138, 32), np.float32)}


def _keyframe_model(inputs: dict) -> dict:
    """State tensors stamped with the frame's first pixel, so a test can tell which keyframe they came from."""
    stamp = float(inputs[names.INPUT][0, 0, 0, 0])
    return {**_detections(), **{exported: np.full((1, 2), stamp, np.float32) for exported in STATE_INPUTS}}


MOTION = {"value": 0.0}


def _nonkeyframe_model(inputs: dict) -> dict:
    return {**_detections(), names.FLOW_MOTION: np.array([MOTION["value"]], np.float32)}


@pytest.fixture
def make_model(monkeypatch):
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", fakes.module())
    fakes.MODELS.clear()
    fakes.CALLS.clear()
    fakes.MODELS.update({KEY: _keyframe_model, NONKEY: _nonkeyframe_model})
    MOTION["value"] = 0.0
    from trtnet.triton.orchestrator import TritonPythonModel

    def make(**params):
        params = {"keyframe_model": KEY, "nonkeyframe_model": NONKEY, "keyframe_interval": "5",
                  "idle_timeout_s": "10", **{k: str(v) for k, v in params.items()}}
        model = TritonPythonModel()
        model.initialize({"model_config": json.dumps(
            {"parameters": {k: {"string_value": v} for k, v in params.items()}})})
        return model
    return make


def frame(stamp: int, h: int = 8, w: int = 10) -> np.ndarray:
    f = np.zeros((h, w, 3), np.uint8)
    f[0, 0, 0] = stamp
    return f


def run(model, *requests):
    return asyncio.run(model.execute(list(requests)))


def keyframe_flags(responses) -> list[bool]:
    return [bool(fakes.get_output_tensor_by_name(r, "keyframe").as_numpy()[0, 0]) for r in responses]


def test_upstream_schedule_per_stream_and_state_handoff(make_model):
    model = make_model()
    flags = []
    for i in range(7):
        flags += keyframe_flags(run(model, fakes.client_request(frame(10 + i), 1, start=i == 0)))
    assert flags == [True, False, False, False, False, True, False]  # frame % 5 == 0, upstream eval.py
    # Every non-keyframe got the state of the latest keyframe of its stream (stamps 10, then 15).
    stamps = [float(inputs[names.KEY_FPN1_P4][0, 0]) for model_name, inputs in fakes.CALLS if model_name == NONKEY]
    assert stamps == [10, 10, 10, 10, 15]


def test_streams_in_one_batch_keep_their_own_state(make_model):
    model = make_model()
    run(model, fakes.client_request(frame(1), 7, start=True), fakes.client_request(frame(2), 8, start=True))
    fakes.CALLS.clear()
    responses = run(model, fakes.client_request(frame(3), 8), fakes.client_request(frame(4), 7))
    assert keyframe_flags(responses) == [False, False]
    assert [float(i[names.KEY_LATERAL3][0, 0]) for _, i in fakes.CALLS] == [2, 1]


def test_start_restarts_a_stream(make_model):
    model = make_model()
    run(model, fakes.client_request(frame(1), 3, start=True))
    run(model, fakes.client_request(frame(2), 3))
    assert keyframe_flags(run(model, fakes.client_request(frame(3), 3, start=True))) == [True]
    assert keyframe_flags(run(model, fakes.client_request(frame(4), 3))) == [False]


def test_end_forgets_the_stream(make_model):
    model = make_model()
    run(model, fakes.client_request(frame(1), 3, start=True))
    run(model, fakes.client_request(frame(2), 3, end=True))
    assert 3 not in model.streams
    # Without START (Triton itself refuses that, but the orchestrator must not use stale state).
    assert keyframe_flags(run(model, fakes.client_request(frame(3), 3))) == [True]


def test_frame_size_change_forces_a_keyframe(make_model):
    model = make_model()
    run(model, fakes.client_request(frame(1), 3, start=True))
    assert keyframe_flags(run(model, fakes.client_request(frame(2, h=9), 3))) == [True]
    assert keyframe_flags(run(model, fakes.client_request(frame(3, h=9), 3))) == [False]


def test_idle_streams_are_evicted_after_the_timeout(make_model):
    model = make_model(idle_timeout_s=10)
    now = {"t": 100.0}
    model.streams.clock = lambda: now["t"]
    run(model, fakes.client_request(frame(1), 3, start=True))
    now["t"] = 110.0  # exactly the timeout: not idle for *longer* than it
    run(model, fakes.client_request(frame(1), 4, start=True))
    assert 3 in model.streams
    now["t"] = 110.5
    run(model, fakes.client_request(frame(1), 4))
    assert 3 not in model.streams and 4 in model.streams


def test_a_model_error_names_the_stream_and_model_and_drops_the_stream(make_model):
    model = make_model()
    run(model, fakes.client_request(frame(1), 5, start=True))

    def broken(inputs):
        raise RuntimeError("CUDA out of memory")
    fakes.MODELS[NONKEY] = broken
    (response,) = run(model, fakes.client_request(frame(2), 5))
    assert response.has_error()
    assert "stream 5" in response.error().message() and "non-keyframe" in response.error().message()
    assert "CUDA out of memory" in response.error().message()
    assert 5 not in model.streams


def test_adaptive_keyframe_after_motion_above_threshold(make_model):
    model = make_model(motion_threshold=0.5, keyframe_interval=100)
    run(model, fakes.client_request(frame(1), 3, start=True))
    MOTION["value"] = 0.5  # equal to the threshold: not above it
    assert keyframe_flags(run(model, fakes.client_request(frame(2), 3))) == [False]
    MOTION["value"] = 0.5001
    assert keyframe_flags(run(model, fakes.client_request(frame(3), 3))) == [False]  # its motion decides the next
    assert keyframe_flags(run(model, fakes.client_request(frame(4), 3))) == [True]


def test_outputs_have_the_declared_names_types_and_a_batch_dimension(make_model):
    model = make_model()
    (response,) = run(model, fakes.client_request(frame(1), 3, start=True))
    got = {t.name(): t.as_numpy() for t in response.output_tensors()}
    assert {k: (v.dtype, v.ndim) for k, v in got.items()} == {
        "classes": (np.int32, 2), "scores": (np.float32, 2), "mask_scores": (np.float32, 2), "boxes": (np.int32, 3),
        "masks": (np.uint8, 4), "keyframe": (np.bool_, 2)}
    assert got["masks"].shape == (1, 0, 8, 10)
    from trtnet.triton.export import orchestrator_specs

    assert [s.name for s in orchestrator_specs()[1]] == [t.name() for t in response.output_tensors()]


BOX_SCORES, MASK_SCORES = [0.9, 0.8], [0.3, 0.6]  # mask scores in the other order: a swap or a drop shows


def _rescored(model):
    """A model of a YOLACT++ engine: two detections and their mask_scores output."""
    def run_model(inputs: dict) -> dict:
        out = model(inputs)
        out[names.DET_COUNT] = np.array([2], np.int32)
        out[names.DET_SCORES] = np.array([[*BOX_SCORES, 0, 0]], np.float32)
        out[names.MASK_SCORES] = np.array([[*MASK_SCORES, 0, 0]], np.float32)
        return out
    return run_model


def _scores(response) -> tuple[list, list]:
    got = {t.name(): t.as_numpy() for t in response.output_tensors()}
    return got["scores"][0].tolist(), got["mask_scores"][0].tolist()


def test_mask_scores_of_rescoring_engines_are_served_on_keyframes_and_non_keyframes(make_model):
    fakes.MODELS.update({KEY: _rescored(_keyframe_model), NONKEY: _rescored(_nonkeyframe_model)})
    model = make_model(mask_scores="1", keyframe_interval=2)
    responses = [run(model, fakes.client_request(frame(i), 3, start=i == 0))[0] for i in range(2)]
    assert keyframe_flags(responses) == [True, False]
    for response in responses:
        assert _scores(response) == (pytest.approx(BOX_SCORES), pytest.approx(MASK_SCORES))
    # The same model without the engines' mask_scores output: the request names an output they lack.
    fakes.MODELS.update({KEY: _keyframe_model})
    (failed,) = run(model, fakes.client_request(frame(9), 4, start=True))
    assert failed.has_error() and "mask_scores" in failed.error().message()


def test_without_mask_rescoring_the_served_mask_scores_are_the_box_scores(make_model):
    fakes.MODELS.update({KEY: _rescored(_keyframe_model)})
    model = make_model()  # no "mask_scores" parameter: the exporter saw no such engine output
    (response,) = run(model, fakes.client_request(frame(1), 3, start=True))
    assert _scores(response) == (pytest.approx(BOX_SCORES), pytest.approx(BOX_SCORES))


@pytest.mark.parametrize("since, expected", [(4, False), (5, True)])
def test_schedule_interval_boundary(since, expected):
    schedule = KeyframeSchedule(5)
    for _ in range(since):
        schedule.take((8, 8))
    assert schedule.next_is_keyframe((8, 8)) is expected


def test_schedule_rejects_bad_settings():
    with pytest.raises(ValueError, match="keyframe_interval"):
        KeyframeSchedule(0)
    with pytest.raises(ValueError, match="motion_threshold"):
        KeyframeSchedule(5, -1.0)


def _keyframes_only(**params):
    """An orchestrator as exported for an image config: no nonkeyframe_model parameter."""
    from trtnet.triton.orchestrator import TritonPythonModel

    params = {"keyframe_model": KEY, "idle_timeout_s": "10", **{k: str(v) for k, v in params.items()}}
    model = TritonPythonModel()
    model.initialize({"model_config": json.dumps({"parameters": {k: {"string_value": v} for k, v in params.items()}})})
    return model


def _detector(inputs: dict) -> dict:
    """An image config's keyframe engine: detections and prototypes, no state exports."""
    return _detections()


def test_without_a_nonkeyframe_model_every_frame_is_a_keyframe_and_no_state_is_kept(make_model):
    fakes.MODELS.update({KEY: _detector})
    fakes.MODELS.pop(NONKEY)
    model = _keyframes_only(keyframe_interval=1)
    flags = []
    for i in range(4):
        flags += keyframe_flags(run(model, fakes.client_request(frame(i), 3, start=i == 0)))
    flags += keyframe_flags(run(model, fakes.client_request(frame(9), 3), fakes.client_request(frame(9), 4, start=True)))
    assert flags == [True] * 6
    assert [name for name, _ in fakes.CALLS] == [KEY] * 6
    assert model.streams.get(3).state is None
    # without the parameter the interval is 1 as well (a video orchestrator's default is 5)
    assert _keyframes_only().streams.keyframe_interval == 1


def test_mask_scores_of_a_rescoring_image_config_are_served(make_model):
    fakes.MODELS.update({KEY: _rescored(_detector)})
    model = _keyframes_only(keyframe_interval=1, mask_scores="1")
    responses = [run(model, fakes.client_request(frame(i), 3, start=i == 0))[0] for i in range(2)]
    assert keyframe_flags(responses) == [True, True]
    for response in responses:
        assert _scores(response) == (pytest.approx(BOX_SCORES), pytest.approx(MASK_SCORES))


@pytest.mark.parametrize("params", [{"keyframe_interval": 2}, {"keyframe_interval": 1, "motion_threshold": 0.5}])
def test_a_schedule_without_a_nonkeyframe_model_is_refused(make_model, params):
    with pytest.raises(fakes.TritonModelException, match="without a nonkeyframe_model"):
        _keyframes_only(**params)


def test_a_model_without_a_keyframe_model_is_refused(make_model):
    from trtnet.triton.orchestrator import TritonPythonModel

    with pytest.raises(fakes.TritonModelException, match="lacks the parameter keyframe_model"):
        TritonPythonModel().initialize({"model_config": json.dumps({"parameters": {}})})
