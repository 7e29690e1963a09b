"""The float-tolerant Instances comparison of tests/instances_match.py, pinned on its boundaries."""

from __future__ import annotations

import numpy as np

from instances_match import mismatches
from trtnet.runtime.masks import Instances
from trtnet.verification.compare import Tolerances

# Binary-exact bounds so that a case can sit exactly on each one.
TOL = Tolerances(score_atol=0.125, pixel_atol=1, tie_atol=0.25, mask_min_iou=0.75)


def _instances(classes, scores, boxes=None, masks=None) -> Instances:
    n = len(classes)
    boxes = np.zeros((n, 4), np.int64) if boxes is None else np.asarray(boxes, np.int64)
    masks = np.zeros((n, 4, 4), bool) if masks is None else masks
    return Instances(np.asarray(classes), np.asarray(scores, np.float32), boxes, masks)


def test_identical_instances_match():
    a = _instances([1, 2], [0.75, 0.25])
    assert mismatches(a, a, TOL) == []


def test_ranks_swap_only_among_scores_within_the_tie_tolerance():
    tied = _instances([1, 2], [0.75, 0.5])  # gap 0.25 == tie_atol: the two may swap
    assert mismatches(_instances([2, 1], [0.5, 0.75]), tied, TOL) == []
    apart = _instances([1, 2], [0.75, 0.375])  # gap 0.375 > tie_atol: the order is fixed
    assert mismatches(_instances([2, 1], [0.375, 0.75]), apart, TOL)


def test_scores_and_boxes_within_their_bounds():
    want = _instances([1], [0.5], [[10, 10, 20, 20]])
    assert mismatches(_instances([1], [0.625], [[11, 9, 21, 19]]), want, TOL) == []  # on both bounds
    assert mismatches(_instances([1], [0.6875], [[10, 10, 20, 20]]), want, TOL)      # score beyond
    assert mismatches(_instances([1], [0.5], [[12, 10, 20, 20]]), want, TOL)         # 2 px beyond


def test_a_mask_may_differ_in_a_few_pixels_or_keep_its_iou():
    full = np.ones((1, 4, 4), bool)
    want = _instances([1], [0.5], masks=full)
    four_off = full.copy()
    four_off[0, 0] = False  # 4 pixels differ (== MASK_TINY_PIXELS default), IoU 12/16 = 0.75
    assert mismatches(_instances([1], [0.5], masks=four_off), want, TOL) == []
    assert mismatches(_instances([1], [0.5], masks=four_off), want, TOL, tiny_pixels=3) == []  # IoU on bound
    five_off = four_off.copy()
    five_off[0, 1, 0] = False  # 5 differ, IoU 11/16 < 0.75
    assert mismatches(_instances([1], [0.5], masks=five_off), want, TOL)
    assert mismatches(_instances([1], [0.5], masks=five_off), want, TOL, tiny_pixels=5) == []


def test_counts_and_mask_shapes_must_agree():
    a = _instances([1, 2], [0.75, 0.25])
    assert mismatches(_instances([1], [0.75]), a, TOL) == ["1 detections, want 2"]
    b = _instances([1, 2], [0.75, 0.25], masks=np.zeros((2, 4, 5), bool))
    assert "masks of shape" in mismatches(b, a, TOL)[0]
