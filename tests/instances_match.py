"""Instances compared within floating point's spread, not bit for bit.

Two runs of the same network on another BLAS call shape (a batch of 2 instead of 1), thread count
or NumPy version sum in another order (issue 15): a mask pixel whose sigmoid sits within a rounding
error of 0.5 flips, two near-equal scores swap ranks. The bounds are trtnet's verification
tolerances (trtnet/verification/compare.py, from upstream's own fp32-vs-fp64 spread): scores
within ``score_atol``, pixel boxes within ``pixel_atol``, ranks may swap only among scores within
``tie_atol``, a mask differs in at most ``MASK_TINY_PIXELS`` pixels or keeps IoU >= ``mask_min_iou``.
A wrong batch entry, a swapped camera or a shifted mask is far outside every bound.
"""

from __future__ import annotations

import numpy as np

from trtnet.verification.compare import FP32, MASK_TINY_PIXELS, Tolerances


def _runs(scores: np.ndarray, tie_atol: float) -> list[range]:
    """Ranks grouped into runs of consecutive scores within ``tie_atol`` of their neighbour."""
    runs, start = [], 0
    for i in range(1, len(scores) + 1):
        if i == len(scores) or abs(float(scores[i]) - float(scores[i - 1])) > tie_atol:
            runs.append(range(start, i))
            start = i
    return runs


def mismatches(got, want, tol: Tolerances = FP32, tiny_pixels: int = MASK_TINY_PIXELS) -> list[str]:
    """What differs beyond the tolerances between two Instances (empty when they match)."""
    g_cls, w_cls = np.asarray(got.classes), np.asarray(want.classes)
    g_sc, w_sc = np.asarray(got.scores, np.float64), np.asarray(want.scores, np.float64)
    g_box, w_box = np.asarray(got.boxes, np.int64), np.asarray(want.boxes, np.int64)
    g_mask, w_mask = np.asarray(got.masks, bool), np.asarray(want.masks, bool)
    if len(g_sc) != len(w_sc):
        return [f"{len(g_sc)} detections, want {len(w_sc)}"]
    if g_mask.shape != w_mask.shape:
        return [f"masks of shape {g_mask.shape}, want {w_mask.shape}"]
    problems: list[str] = []
    for run in _runs(w_sc, tol.tie_atol):
        free = list(run)
        for i in run:  # each wanted detection takes a free got rank of its run: same class, close
            fits = [j for j in free if g_cls[j] == w_cls[i] and abs(g_sc[j] - w_sc[i]) <= tol.score_atol
                    and int(np.abs(g_box[j] - w_box[i]).max()) <= tol.pixel_atol]
            if not fits:
                problems.append(f"rank {i} (class {w_cls[i]}, score {w_sc[i]:.6f}) has no match among "
                                f"ranks {run.start}..{run.stop - 1}")
                continue
            j = fits[0]
            free.remove(j)
            differ = int(np.count_nonzero(g_mask[j] != w_mask[i]))
            union = int(np.count_nonzero(g_mask[j] | w_mask[i]))
            iou = 1.0 - differ / union if union else 1.0
            if differ > tiny_pixels and iou < tol.mask_min_iou:
                problems.append(f"rank {i}: mask IoU {iou:.5f} < {tol.mask_min_iou} ({differ} pixels differ)")
    return problems


def assert_instances_match(got, want, where: str = "", **kwargs) -> None:
    problems = mismatches(got, want, **kwargs)
    assert not problems, f"{where}: " + "; ".join(problems[:5])
