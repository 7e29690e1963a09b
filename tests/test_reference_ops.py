"""The NumPy plugin references reproduce upstream PyTorch (reference data) exactly.

Tolerances: the references compute in float32 in upstream's operation order, so
they differ from upstream only by float32 rounding (exp/floor ulps): 1e-6 abs on
values of magnitude <= ~10.
"""

from __future__ import annotations

import numpy as np
import pytest

from trtnet.plugins import specs
from trtnet.plugins.reference import decode_boxes, fast_nms, inverse_warp
from trtnet.verification.reference_data import ReferenceCase

PASSES = [("vid_resnet50", "key"), ("vid_resnet50", "nonkey"), ("vid_resnet50", "fullB"),
          ("mobilenetv2", "img0"), ("mobilenetv2", "img1")]
ATOL = 1e-6  # float32 rounding only


@pytest.fixture(scope="module")
def cases(reference_dir):
    return {name: ReferenceCase(reference_dir / name) for name in ("vid_resnet50", "mobilenetv2")}


@pytest.mark.parametrize("level", ["P4", "P5"])
def test_warp_matches_upstream_grid_sample(cases, level):
    ref = cases["vid_resnet50"]
    feature = ref.get("nonkey", f"warp/keyframe_{level}")  # channels [0:8]; the warp is per channel
    flow = ref.get("nonkey", f"flow/flow_{level}")
    deformed = inverse_warp(feature, flow)
    np.testing.assert_allclose(deformed, ref.get("nonkey", f"warp/deformed_{level}"), rtol=0, atol=ATOL)


@pytest.mark.parametrize("level", ["P4", "P5"])
def test_warp_applies_scale_then_bias_like_upstream(cases, level):
    ref = cases["vid_resnet50"]
    g = lambda n: ref.get("nonkey", n)  # noqa: E731
    warped = inverse_warp(g(f"warp/keyframe_{level}"), g(f"flow/flow_{level}"),
                          g(f"flow/scale_{level}"), g(f"flow/bias_{level}"))
    np.testing.assert_allclose(warped, g(f"warp/warped_{level}"), rtol=0, atol=ATOL)


def test_warp_flow_of_16_over_width_minus_1_moves_one_pixel_and_pads_zero():
    feature = np.arange(2 * 3 * 5 * 7, dtype=np.float32).reshape(2, 3, 5, 7)
    flow = np.zeros((2, 2, 5, 7), np.float32)
    flow[:, 0] = 16.0 / (7 - 1)  # divisor 8, grid unit 2/(W-1): one pixel to the right
    out = inverse_warp(feature, flow)
    np.testing.assert_allclose(out[..., :-1], feature[..., 1:], atol=1e-4)  # 1e-4: float32 grid maths
    np.testing.assert_allclose(out[..., -1], 0, atol=1e-4)


def test_warp_rejects_flow_of_wrong_shape():
    with pytest.raises(ValueError, match="flow must be"):
        inverse_warp(np.zeros((1, 4, 5, 6), np.float32), np.zeros((1, 2, 6, 5), np.float32))


def test_decode_follows_variances_and_corner_form():
    priors = np.array([[0.5, 0.5, 0.2, 0.4]], np.float32)
    loc = np.array([[[1.0, -1.0, 0.0, np.log(2) / 0.2]]], np.float32)
    # cx = 0.5 + 1*0.1*0.2 = 0.52, cy = 0.5 - 0.1*0.4 = 0.46, w = 0.2, h = 0.4*2 = 0.8
    np.testing.assert_allclose(decode_boxes(loc, priors), [[[0.42, 0.06, 0.62, 0.86]]], atol=1e-6)


@pytest.mark.parametrize("case,pass_name", PASSES)
def test_fast_nms_reproduces_upstream_detections(cases, case, pass_name):
    ref = cases[case]
    loc, scores, coeffs = ref.fastnms_inputs(pass_name)
    det = fast_nms(decode_boxes(loc, ref.priors), scores, coeffs, top_k=200, conf_thresh=0.05,
                   nms_thresh=0.5, max_det=100, background_class=0)
    want = ref.detections(pass_name)
    assert det.count[0] == len(want["det_scores"])
    # Order compared exactly: no two reference scores are near-equal in these detections.
    np.testing.assert_array_equal(det.classes[0], want["det_classes"])
    np.testing.assert_allclose(det.scores[0], want["det_scores"], rtol=0, atol=ATOL)
    np.testing.assert_allclose(det.boxes[0], want["det_boxes"], rtol=0, atol=ATOL)
    np.testing.assert_allclose(det.coeffs[0], want["det_mask_coefs"], rtol=0, atol=ATOL)


def _boxes(*rows):
    return np.array([rows], np.float32)


def test_fast_nms_suppressed_boxes_still_suppress():
    # a overlaps b (IoU 0.6), b overlaps c (IoU 0.6), a and c barely: Fast NMS keeps only a.
    boxes = _boxes([0.0, 0.0, 0.4, 0.1], [0.1, 0.0, 0.5, 0.1], [0.2, 0.0, 0.6, 0.1])
    scores = np.array([[[0.1, 0.9], [0.2, 0.8], [0.3, 0.7]]], np.float32)
    det = fast_nms(boxes, scores, np.zeros((1, 3, 2), np.float32), max_det=5)
    assert det.count[0] == 1 and det.scores[0, 0] == np.float32(0.9)


def test_fast_nms_tie_rule_smaller_class_then_smaller_prior_first():
    far = [[0.0, 0.0, 0.1, 0.1], [0.5, 0.5, 0.6, 0.6], [0.8, 0.8, 0.9, 0.9]]
    boxes = np.array([far], np.float32)
    # every prior scores 0.4 in both foreground classes -> 6 detections, all tied
    scores = np.array([[[0.2, 0.4, 0.4]] * 3], np.float32)
    coeffs = np.arange(3, dtype=np.float32).reshape(1, 3, 1)
    det = fast_nms(boxes, scores, coeffs, max_det=6)
    assert specs.TIE_RULE.startswith("equal scores")
    np.testing.assert_array_equal(det.classes[0], [0, 0, 0, 1, 1, 1])
    np.testing.assert_array_equal(det.coeffs[0, :, 0], [0, 1, 2, 0, 1, 2])


def test_fast_nms_pads_past_count_and_honours_no_background():
    boxes = _boxes([0.0, 0.0, 0.1, 0.1], [0.5, 0.5, 0.6, 0.6])
    scores = np.array([[[0.9, 0.1], [0.01, 0.02]]], np.float32)
    det = fast_nms(boxes, scores, np.ones((1, 2, 3), np.float32), max_det=4, background_class=-1)
    # prior 1 never enters (best score 0.02 <= 0.05); prior 0 yields one detection per column
    assert det.count[0] == 2
    np.testing.assert_array_equal(det.classes[0], [0, 1, -1, -1])
    np.testing.assert_array_equal(det.scores[0, 2:], 0)
    np.testing.assert_array_equal(det.coeffs[0, 2:], 0)


def test_fast_nms_rejects_mismatched_scores():
    with pytest.raises(ValueError, match="scores must be"):
        fast_nms(np.zeros((1, 3, 4)), np.zeros((1, 2, 5)), np.zeros((1, 3, 2)))


def test_spec_field_types_and_unknown_fields():
    values = specs.FAST_NMS.resolve(top_k=10)
    assert values["top_k"].dtype == np.int32 and values["nms_thresh"].dtype == np.float32
    with pytest.raises(KeyError, match="unknown field"):
        specs.FAST_NMS.resolve(topk=10)
    assert (specs.INVERSE_WARP.name, specs.INVERSE_WARP.version, specs.INVERSE_WARP.namespace) == (
        "InverseWarp", "1", "trtnet")
