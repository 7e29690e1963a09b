"""The issue's targets against upstream, in one place for the network tests.

FEATURE_RTOL: every intermediate within 1e-3 of the tensor's max |value| (upstream's own
fp32-vs-fp64 spread is ~2e-4 absolute on features, see the manifests). SCORE_ATOL and
BOX_ATOL: detections within 1e-4 (softmax probabilities, relative box corners).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from trtnet import names

FEATURE_RTOL = 1e-3
SCORE_ATOL = 1e-4
BOX_ATOL = 1e-4


def assert_detections_match(out: Mapping[str, np.ndarray], ref: Mapping[str, np.ndarray], label: str) -> None:
    """Every reference detection (Detect output, det_*) has its own match in ``out``: same
    class, score and relative box within tolerance, coefficients within FEATURE_RTOL of
    their scale. Matching is one to one, so order may differ among near ties."""
    count = int(out[names.DET_COUNT][0])
    assert count == len(ref["det_scores"]), f"{label}: {count} detections, upstream {len(ref['det_scores'])}"
    got_boxes, got_scores = out[names.DET_BOXES][0, :count], out[names.DET_SCORES][0, :count]
    got_classes, got_coeffs = out[names.DET_CLASSES][0, :count], out[names.DET_COEFFS][0, :count]
    coeff_tol = FEATURE_RTOL * np.abs(ref["det_mask_coefs"]).max()
    free = np.ones(count, bool)
    for box, score, cls, coeffs in zip(ref["det_boxes"], ref["det_scores"], ref["det_classes"],
                                       ref["det_mask_coefs"]):
        ok = (free & (got_classes == cls) & (np.abs(got_scores - score) <= SCORE_ATOL)
              & (np.abs(got_boxes - box).max(1) <= BOX_ATOL))
        assert ok.any(), f"{label}: no match for class {cls} score {score:.5f} box {box}"
        match = np.flatnonzero(ok)[0]
        assert np.abs(got_coeffs[match] - coeffs).max() <= coeff_tol, f"{label}: coefficients of class {cls}"
        free[match] = False
