"""The mask assembler reproduces upstream postprocess (reference data).

Masks are checked on the first pass of each case (key, img0): later passes store
only prototype channels [0:4]. Tolerances: float32 rounding of a 32-term dot
product and sigmoid (<= 1e-6 abs on values in [0, 1]); binary masks may differ only
where the pre-threshold value is within rounding of 0.5, hence IoU >= 0.999.
"""

from __future__ import annotations

import numpy as np
import pytest

from trtnet.runtime.masks import assemble_masks, boxes_to_pixels, lowres_masks, postprocess
from trtnet.verification.reference_data import ReferenceCase

FIRST_PASSES = [("vid_resnet50", "key"), ("mobilenetv2", "img0")]
ALL_PASSES = FIRST_PASSES + [("vid_resnet50", "nonkey"), ("vid_resnet50", "fullB"), ("mobilenetv2", "img1")]


@pytest.fixture(scope="module")
def cases(reference_dir):
    return {name: ReferenceCase(reference_dir / name) for name in ("vid_resnet50", "mobilenetv2")}


@pytest.mark.parametrize("case,pass_name", FIRST_PASSES)
def test_lowres_cropped_masks_match_upstream(cases, case, pass_name):
    ref = cases[case]
    det = ref.detections(pass_name)
    got = lowres_masks(ref.get(pass_name, "proto"), det["det_mask_coefs"][:5], det["det_boxes"][:5])
    np.testing.assert_allclose(got, det["masks_lowres_cropped_top5"], rtol=0, atol=1e-6)


@pytest.mark.parametrize("case,pass_name", FIRST_PASSES)
def test_upsampled_masks_before_threshold_match_upstream(cases, case, pass_name):
    ref = cases[case]
    det = ref.detections(pass_name)
    got = assemble_masks(ref.get(pass_name, "proto"), det["det_mask_coefs"][:5], det["det_boxes"][:5],
                         frame_hw=ref.image(pass_name).shape[:2], threshold=None)
    np.testing.assert_allclose(got, det["masks_prebin_top5"], rtol=0, atol=1e-6)


@pytest.mark.parametrize("case,pass_name", FIRST_PASSES)
def test_binary_masks_match_upstream(cases, case, pass_name):
    ref = cases[case]
    det = ref.detections(pass_name)
    got = assemble_masks(ref.get(pass_name, "proto"), det["det_mask_coefs"], det["det_boxes"],
                         count=np.array([len(det["det_scores"])], np.int32),
                         frame_hw=ref.image(pass_name).shape[:2])
    want = det["masks"].astype(bool)
    assert got.shape == want.shape and got.dtype == bool
    union = (got | want).sum(axis=(1, 2))
    iou = np.where(union > 0, (got & want).sum(axis=(1, 2)) / np.maximum(union, 1), 1.0)
    assert iou.min() >= 0.999


@pytest.mark.parametrize("case,pass_name", ALL_PASSES)
def test_pixel_boxes_match_upstream_truncation(cases, case, pass_name):
    ref = cases[case]
    det = ref.detections(pass_name)
    np.testing.assert_array_equal(boxes_to_pixels(det["det_boxes"], ref.image(pass_name).shape[:2]),
                                  det["boxes"])


def test_crop_keeps_cells_within_padded_float_bounds():
    protos = np.full((1, 138, 138, 1), 10.0, np.float32)  # sigmoid ~ 1 everywhere
    boxes = np.array([[0.5, 0.1, 0.6, 0.2]], np.float32)
    mask = lowres_masks(protos, np.ones((1, 1), np.float32), boxes)[0] > 0.5
    # x: [0.5*138 - 1, 0.6*138 + 1) = [68, 83.8) -> 68..83 ; y: [12.8, 28.6) -> 13..28
    cols, rows = np.flatnonzero(mask.any(0)), np.flatnonzero(mask.any(1))
    assert (cols[0], cols[-1], rows[0], rows[-1]) == (68, 83, 13, 28)


def test_crop_bounds_on_exact_integers_keep_the_low_cell_and_drop_the_high_one():
    # Upstream crop keeps cells i with x1 <= i < x2. Box 0: x2 = 0.5*138 + 1 = 70 exactly -> the last
    # column is 69; box 1: x1 = 0.5*138 - 1 = 68 exactly -> the first column is 68 (rows alike).
    protos = np.full((1, 138, 138, 1), 10.0, np.float32)  # sigmoid ~ 1 everywhere
    boxes = np.array([[0.25, 0.25, 0.5, 0.5], [0.5, 0.5, 0.75, 0.75]], np.float32)
    masks = lowres_masks(protos, np.ones((2, 1), np.float32), boxes) > 0.5
    spans = [(np.flatnonzero(m.any(0))[[0, -1]].tolist(), np.flatnonzero(m.any(1))[[0, -1]].tolist()) for m in masks]
    # box 0: x1 = 34.5 - 1 -> 34 .. 69 ; box 1: 68 .. 103.5 + 1 -> 104
    assert spans == [([34, 69], [34, 69]), ([68, 104], [68, 104])]


def test_count_limits_detections_and_postprocess_keeps_order(cases):
    ref = cases["vid_resnet50"]
    det = ref.detections("key")
    inst = postprocess(np.int32(3), det["det_boxes"][None], det["det_scores"][None],
                       det["det_classes"][None], det["det_mask_coefs"][None],
                       ref.get("key", "proto"), ref.image("key").shape[:2])
    assert inst.masks.shape == (3, 300, 451)
    np.testing.assert_array_equal(inst.classes, det["classes"][:3])
    np.testing.assert_array_equal(inst.boxes, det["boxes"][:3])


def test_frame_size_is_required():
    with pytest.raises(ValueError, match="frame_hw"):
        assemble_masks(np.zeros((138, 138, 32)), np.zeros((1, 32)), np.zeros((1, 4)))
