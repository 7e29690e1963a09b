"""Fast NMS cases exactly on its boundaries, with the detections upstream keeps.

The expected outcomes are worked out by hand from upstream's layers/functions/detection.py
(UPSTREAM_NOTES item 8), not by running any implementation: every input below is exact in
float32, so the IoU or score lands exactly on the threshold. Used by the NumPy reference and
host-twin tests (test_plugins_fast_nms.py) and the emulated CUDA kernels
(test_kernels_device.py, run on CPU by test_kernels_device_emulated.py).

Each case: (boxes [1, A, 4], scores [1, A, C], settings, expected prior indices in output order);
coeffs carry the prior index so the output names which priors survived.
"""

from __future__ import annotations

import numpy as np

F32 = np.float32
BELOW_HALF = float(np.nextafter(F32(0.5), F32(0)))       # largest float32 < 0.5
ABOVE_QUARTER = float(np.nextafter(F32(0.25), F32(1)))   # smallest float32 > 0.25


def _one_class(boxes, scores):
    """Scores of a single foreground class (column 1; column 0 = background)."""
    s = np.asarray(scores, F32)
    return np.asarray([boxes], F32), np.stack([1 - s, s], -1)[None].astype(F32)


# A = unit box; B = its left half: inter 0.5, union 1 + 0.5 - 0.5 = 1, IoU exactly 0.5.
_HALF_OVERLAP = _one_class([[0, 0, 1, 1], [0, 0, 0.5, 1]], [0.75, 0.625])
# C = its left quarter: IoU exactly 0.25.
_QUARTER_OVERLAP = _one_class([[0, 0, 1, 1], [0, 0, 0.25, 1]], [0.75, 0.625])

# Scores exactly on conf_thresh = 0.25 (never a candidate: strict >), just above, and 0.5.
_SCORE_BOXES, _SCORE_SCORES = _one_class([[0, 0, 0.125, 0.125], [0.25, 0.25, 0.375, 0.375], [0.5, 0.5, 0.625, 0.625]],
                                         [0.25, 0.5, ABOVE_QUARTER])

# Zero-area boxes: upstream's IoU of two of them is 0 / 0 = NaN, its column max propagates the
# NaN and `NaN <= thresh` is False, so the later one is dropped -- even far apart. A zero-area
# box after a box with area has union > 0, IoU 0: kept.
_ZERO_AREA = _one_class([[0.25, 0.25, 0.25, 0.25],          # 0 zero area, first: kept
                         [0.625, 0.625, 0.625, 0.875],      # 1 zero width, far from 0: NaN with 0 -> dropped
                         [0.125, 0.125, 0.375, 0.375],      # 2 has area, covers 0's point: IoU 0 -> kept
                         [0.875, 0.875, 0.875, 0.875]],     # 3 zero area: NaN with 0 -> dropped
                        [0.875, 0.75, 0.625, 0.5])
_AREA_THEN_ZERO = _one_class([[0.125, 0.125, 0.375, 0.375], [0.25, 0.25, 0.25, 0.25]], [0.75, 0.625])  # both kept

CASES = {
    "iou_equal_to_threshold_is_kept": (*_HALF_OVERLAP, dict(nms_thresh=0.5), [0, 1]),
    "iou_just_above_threshold_is_dropped": (*_HALF_OVERLAP, dict(nms_thresh=BELOW_HALF), [0]),
    "iou_equal_to_quarter_threshold_is_kept": (*_QUARTER_OVERLAP, dict(nms_thresh=0.25), [0, 1]),
    "score_equal_to_conf_thresh_is_not_a_candidate": (_SCORE_BOXES, _SCORE_SCORES, dict(conf_thresh=0.25), [1, 2]),
    "score_just_above_conf_thresh_enters": (_SCORE_BOXES, _SCORE_SCORES, dict(conf_thresh=BELOW_HALF), [1]),
    "zero_area_box_after_a_zero_area_box_is_dropped": (*_ZERO_AREA, dict(nms_thresh=0.5), [0, 2]),
    "zero_area_box_after_a_box_with_area_is_kept": (*_AREA_THEN_ZERO, dict(nms_thresh=0.5), [0, 1]),
}


def inputs(name: str, dtype=F32) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], dict, list[int]]:
    """(boxes, scores, coeffs), settings, expected priors of case ``name``."""
    boxes, scores, settings, expected = CASES[name]
    coeffs = np.arange(boxes.shape[1], dtype=F32).reshape(1, -1, 1)
    return tuple(x.astype(dtype) for x in (boxes, scores, coeffs)), dict(settings), expected


def exact_in(name: str, dtype) -> bool:
    """Whether case ``name``'s inputs are exact in ``dtype`` (float16 loses the float32 ulps)."""
    boxes, scores, _, _ = CASES[name]
    return all(np.array_equal(x.astype(dtype).astype(F32), x) for x in (boxes, scores))


def kept_priors(outputs) -> list[int]:
    """Prior indices of the valid detections (from the coeffs column), in output order."""
    count, _, _, _, coeffs = (np.asarray(x) for x in outputs)
    return [int(v) for v in coeffs[0, : int(count[0]), 0]]
