"""fp16 and int8 on the non-keyframe (video) network, judged on a well-conditioned checkpoint.

trtnet.precision.conditioned conditions yolact_edge_vid_resnet50's keyframe network, then its flow net
and SPA on the non-keyframe network (flow offsets a fraction of a cell, warp scale near 1,
SPA a small residual). A keyframe and the following frame of the reference video run
through the keyframe network, then the non-keyframe network, both in the plan under test;
the reference is the fp32 emulator pair. int8 uses the ``upstream`` preset, the one that
quantizes the flow component (flow net and SPA), set against trtnet.precision.int8_accuracy's
independent fake quantization. Run at 128 px to keep the tests fast.
"""

from __future__ import annotations

import numpy as np
import pytest

from trtnet import calibrate, names
from trtnet.precision.conditioned import MOTION_PIXELS, augmented, conditioned_weights, mosaic, with_max_size
from trtnet.precision.int8_accuracy import compare, detection_agreement, run_network
from trtnet.network import layers as L
from trtnet.network import build_keyframe, build_nonkeyframe, keyframe_state
from trtnet.precision import as_plan
from trtnet.verification.reference_data import ReferenceCase
from trtnet.network.weights import WeightStore

CONFIG = "yolact_edge_vid_resnet50"
SIZE, GRID, TILE = 128, 2, 96  # run at SIZE; conditioned on a GRID x GRID mosaic of TILE px crops
PRESET = "upstream"  # backbone, proto and flow (flow net + SPA) int8, the rest fp16
FLOW = (names.FLOW_P4, names.FLOW_P5)
COMPARED = (*FLOW, names.WARPED_P4, names.WARPED_P5, names.SPA_P4, names.SPA_P5, names.FPN1_FINAL_P3,
            *names.FPN, names.PROTO, names.LOC, names.CONF, names.MASK)
KEYFRAME_STATE = (names.FPN1_LATERAL3, names.FPN1_P4, names.FPN1_P5)
# measured / predicted relative error of the int8 pair (fp16 rounding between the int8 kernels;
# measured at 128 px: 0.92..1.25 on every feature). The flow offsets themselves are 2 channels
# of 4x4 (P5) and 8x8 (P4) cells, too few values for a stable ratio (measured 1.35 and 1.23;
# 1.53 and 0.76 on another conditioning): they are judged by what they move, the warped
# features, and get a wider band.
RATIO_BAND = (0.6, 1.3)
FLOW_RATIO_BAND = (0.4, 2.0)


@pytest.fixture(scope="module")
def model(reference_dir):
    mobilenet, video = ReferenceCase(reference_dir / "mobilenetv2"), ReferenceCase(reference_dir / "vid_resnet50")
    photos = [mobilenet.image("img0"), mobilenet.image("img1"), video.image("key")]
    frame = mosaic(augmented(photos, GRID * GRID), GRID, TILE)
    weights = WeightStore.load(conditioned_weights(with_max_size(CONFIG, TILE * GRID), frame))
    config = with_max_size(CONFIG, SIZE)
    (calibration_frame,) = augmented(photos, 1, seed=1)
    moved = np.roll(calibration_frame, MOTION_PIXELS, axis=(0, 1))  # a keyframe and its next frame
    calibrator, _ = calibrate.collect_histograms(weights, config, as_plan(PRESET), [calibration_frame, moved])
    # the test pair is the reference video's keyframe and following frame (the keyframe is one
    # of the conditioning sources, cropped and mixed; the following frame is not)
    return weights, config, (video.image("key"), video.image("nonkey")), calibrator.amax("entropy")


def run_pair(model, plan, simulate=None, fetch=COMPARED, outputs=True) -> dict:
    """The keyframe network on the keyframe, then the non-keyframe network on the next frame
    with that state, both built with ``plan`` (``simulate``: fp32 under fake quantization)."""
    weights, config, (key, current), _ = model
    out = run_network(build_keyframe, weights, config, {names.INPUT: key[None]}, plan, KEYFRAME_STATE,
                      simulate=simulate, outputs=False)
    state = {k: np.ascontiguousarray(v, np.float32) for k, v in keyframe_state(out).items()}
    return run_network(build_nonkeyframe, weights, config, {names.INPUT: current[None], **state}, plan,
                       fetch, simulate=simulate, outputs=outputs)


@pytest.fixture(scope="module")
def fp32(model):
    return run_pair(model, "fp32", fetch=(*COMPARED, names.FLOW_SCALE_P4, names.FLOW_SCALE_P5))


def test_the_flow_net_is_conditioned(fp32):
    # a trained flow net moves features by about a cell at most and keeps their scale (warped *
    # scale + bias). Measured on the test pair: flow rms 2.34 on P4 (grid += flow / 8: one P4
    # cell at 128 px), 0.78 on P5; warp scale mean 0.99 / 1.01; 100 detections above 0.3.
    for flow, scale in ((names.FLOW_P4, names.FLOW_SCALE_P4), (names.FLOW_P5, names.FLOW_SCALE_P5)):
        assert 0.05 < np.sqrt(np.mean(fp32[flow].astype(np.float64) ** 2)) < 3.0, flow
        assert 0.7 < fp32[scale].mean() < 1.3, scale
    scores = fp32[names.DET_SCORES][0, : int(fp32[names.DET_COUNT][0])]
    assert (scores > 0.3).sum() >= 20 and scores.max() - scores.min() > 0.2


# fp16 relative L2 per tensor, measured at 128 px (issue's target: 1%): flow P4/P5 0.37/0.30%,
# warped P4/P5 0.55/0.42%, SPA P4/P5 0.56/0.43%, final P3 0.39%, P3..P7 0.39-0.54%, proto
# 0.72%, loc 0.58%, conf 0.73%, mask 0.60%; 98 of the 100 detections above 0.3 matched.
FP16_TARGET = 0.01


def test_fp16_nonkeyframe_stays_within_one_percent_and_keeps_the_detections(model, fp32):
    out = run_pair(model, "fp16")
    errors = compare(out, fp32, COMPARED)
    assert set(errors) == set(COMPARED)
    assert max(errors.values()) < FP16_TARGET, errors
    assert min(errors.values()) > 0.0  # the fp16 pair does round
    matched, total = detection_agreement(out, fp32)
    assert total > 0 and matched >= 0.9 * total, (matched, total)


@pytest.fixture(scope="module")
def int8(model, fp32):
    plan = as_plan(PRESET).with_amax(model[3])
    out = run_pair(model, plan)
    predicted = run_pair(model, "fp32", simulate=plan)
    return compare(out, fp32, COMPARED), compare(predicted, fp32, COMPARED), detection_agreement(out, fp32)


def test_int8_flow_error_is_what_quantization_alone_predicts(int8):
    measured, predicted, _ = int8
    off = {}
    for t, m in measured.items():
        lo, hi = FLOW_RATIO_BAND if t in FLOW else RATIO_BAND
        if not lo * predicted[t] <= m <= hi * predicted[t]:
            off[t] = round(m / predicted[t], 2)
    assert off == {}, (measured, predicted)


def test_int8_nonkeyframe_keeps_most_detections(int8):
    # measured at 128 px: 78 of the 100 detections above 0.3 matched (the features move by
    # 5-23%, as the fake quantization predicts)
    _, _, (matched, total) = int8
    assert total > 0 and matched >= 0.7 * total, (matched, total)


# -- the check fails on misplaced quantization in the flow component ----------------------------

FLOW_ONLY = "fp16,flow=int8"  # only the flow net and SPA quantized: their error alone
WARPED = (names.WARPED_P4, names.WARPED_P5)


@pytest.fixture(scope="module")
def flow_only(model, fp32):
    plan = as_plan(FLOW_ONLY).with_amax(model[3])
    return plan, compare(run_pair(model, "fp32", simulate=plan, fetch=WARPED, outputs=False), fp32, WARPED)


def _warped_out_of_band(model, fp32, flow_only) -> dict:
    plan, predicted = flow_only
    measured = compare(run_pair(model, plan, fetch=WARPED, outputs=False), fp32, WARPED)
    lo, hi = RATIO_BAND
    return {t: round(m / predicted[t], 2) for t, m in measured.items() if not lo * predicted[t] <= m <= hi * predicted[t]}


def test_unmutated_flow_only_int8_is_in_band(model, fp32, flow_only):
    assert _warped_out_of_band(model, fp32, flow_only) == {}


def test_a_wrong_flow_activation_scale_is_caught(model, fp32, flow_only, monkeypatch):
    plain = L.fp16_scale
    monkeypatch.setattr(L, "fp16_scale", lambda scale, amax=None: plain(scale * (1 if amax is not None else 2), amax))
    assert _warped_out_of_band(model, fp32, flow_only) != {}
