"""The comparison of a pass's tensors and detections with a reference case, and its report.

Pure NumPy, no network or runtime: :mod:`trtnet.verify` (the command) runs the passes and hands
their outputs here. Each reference tensor is compared (max abs error, error relative to the
tensor's max abs value, pass/fail), then the detections (one-to-one matching by
class/score/box, box error in pixels, score error, mask IoU).

Tolerances (fp32 re-implementation; upstream fp32 vs fp64 differ by <= 2e-4):
feature maps and head outputs within 1e-3 x max|ref|; softmax probabilities 1e-4
absolute; detections matched one to one with the same class, scores within 1e-4,
relative boxes within 1e-4, pixel boxes within 1 px (upstream truncates), order
equal except among scores closer than 1e-4; mask IoU >= 0.99.

These defaults are deliberately loose, for any user's checkpoint and case folder (a trained
network, another summation order on the GPU): on the shipped reference cases the emulator's
fp32 feature error is 20-590x below 1e-3 x max|ref| (5-16x on the mask coefficients). A pass
here says "no structural error", not "bit-faithful"; trtnet's own tests hold every tensor to
4x upstream's measured fp32 error instead (the manifest's
``tolerances.max_abs_fp32_vs_fp64_upstream``, tests/upstream_match.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from trtnet import names
from trtnet.runtime.masks import assemble_masks, boxes_to_pixels
from trtnet.plugins.reference import decode_boxes, fast_nms
from trtnet.verification.reference_data import ReferenceCase, StoredArray

MASK_TINY_PIXELS = 4     # tiny masks: a few pixels at the 0.5 threshold may flip


@dataclass(frozen=True)
class Tolerances:
    """Pass/fail bounds; the defaults are the fp32 targets (upstream fp32 vs fp64 differ by <= 2e-4)."""

    feature_rtol: float = 1e-3   # x max|ref|: feature maps and head outputs
    prob_atol: float = 1e-4      # softmax probabilities
    prior_atol: float = 1e-6     # anchors are exact up to float32 rounding
    score_atol: float = 1e-4     # detection scores
    box_atol: float = 1e-4       # relative box coordinates
    pixel_atol: int = 1          # upstream truncates pixel boxes to int
    mask_min_iou: float = 0.99
    tie_atol: float = 1e-4       # scores this close may swap order

    def scaled(self, factor: float) -> "Tolerances":
        """Every bound loosened by ``factor`` (for reduced-precision plans)."""
        return Tolerances(self.feature_rtol * factor, self.prob_atol * factor, self.prior_atol * factor,
                          self.score_atol * factor, self.box_atol * factor,
                          max(self.pixel_atol, int(np.ceil(self.pixel_atol * factor))),
                          max(0.0, 1 - (1 - self.mask_min_iou) * factor), self.tie_atol * factor)


FP32 = Tolerances()

_DETECTION_PREFIXES = ("fastnms/", "tradnms/")
# Per-detection tensors (rows in the reference's detection order): compared through the one-to-one
# detection matching (compare_per_detection), as near-tied detections may swap places.
_PER_DETECTION = {names.MASKIOU_PRED: names.MASKIOU_PRED, "maskiou/input_top5": names.MASKIOU_INPUT}
_HEAD_DERIVED = ("head/conf_bg", "head/conf_maxfg", "head/conf_argmaxfg", "head/candidate_idx",
                 "head/conf_candidates", "head/mask_candidates", "head/mask_P5P6P7")


# ---------------------------------------------------------------------------------------
# Results
@dataclass
class TensorCheck:
    """One reference tensor compared with the network's."""

    name: str
    max_abs: float
    scale: float
    tol: float
    rule: str
    passed: bool
    note: str = ""

    @property
    def rel(self) -> float:
        return self.max_abs / self.scale if self.scale > 0 else float(self.max_abs > 0) * float("inf")


@dataclass
class DetectionCheck:
    """Detections of one pass compared one to one with the reference."""

    ref_count: int
    count: int
    matched: int = 0
    max_score_err: float = 0.0
    max_box_err: float = 0.0
    max_pixel_err: int = 0
    near_tie_swaps: int = 0
    boundary_ties: int = 0
    min_mask_iou: float | None = None
    tiny_mask_exemptions: int = 0
    masks_note: str = ""
    max_mask_score_err: float | None = None  # YOLACT++ mask_scores (rescore_mask)
    failures: list[str] = field(default_factory=list)
    pairs: list[tuple[int, int]] = field(default_factory=list)  # (reference index, network index)

    @property
    def passed(self) -> bool:
        return not self.failures


@dataclass
class PassResult:
    pass_name: str
    frame: str
    status: str  # 'run' | 'not run'
    reason: str = ""
    tensors: list[TensorCheck] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    detections: DetectionCheck | None = None

    @property
    def passed(self) -> bool:
        if self.status != "run":
            return True
        ok = all(t.passed for t in self.tensors)
        return ok and (self.detections is None or self.detections.passed)

    @property
    def failed_names(self) -> list[str]:
        bad = [t.name for t in self.tensors if not t.passed]
        if self.detections is not None and not self.detections.passed:
            bad.append("detections")
        return bad


# ---------------------------------------------------------------------------------------
# Tensor comparison
def _fit(spec: StoredArray, got: np.ndarray) -> tuple[np.ndarray | None, str]:
    """The part of ``got`` the reference stores, or (None, why not)."""
    got = np.asarray(got)
    note = f"reference stores {spec.stored_slice}" if spec.stored_slice else ""
    if spec.full_shape is not None and tuple(got.shape) == spec.full_shape:
        return spec.take(got), note
    if tuple(got.shape) == spec.shape:
        return got, note
    want = spec.full_shape or spec.shape
    return None, f"shape {tuple(got.shape)} does not match the reference {tuple(want)}"


def check_values(name: str, got: np.ndarray, want: np.ndarray, *, atol: float | None = None,
                 rtol_of_scale: float = FP32.feature_rtol, note: str = "") -> TensorCheck:
    """Max abs error against ``atol`` or against ``rtol_of_scale`` x max|want|."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        return TensorCheck(name, float("inf"), 0.0, 0.0, "shape", False,
                           f"shape {got.shape} vs reference {want.shape}")
    scale = float(np.abs(want).max()) if want.size else 0.0
    err = float(np.abs(got - want).max()) if want.size else 0.0
    if not np.isfinite(got).all():
        err = float("inf")
    if atol is not None:
        tol, rule = atol, f"abs {atol:g}"
    else:
        tol, rule = rtol_of_scale * scale if scale > 0 else 1e-6, f"{rtol_of_scale:g} x max|ref|"
    return TensorCheck(name, err, scale, tol, rule, err <= tol, note)


def _check_head(ref: ReferenceCase, pass_name: str, produced: Mapping[str, np.ndarray],
                conf_thresh: float, tol: Tolerances = FP32) -> list[TensorCheck]:
    """Head tensors the reference stores in derived form (per-prior summaries, candidates)."""
    checks: list[TensorCheck] = []
    has = lambda n: ref.has(pass_name, n)  # noqa: E731
    get = lambda n: ref.get(pass_name, n)  # noqa: E731
    if names.CONF in produced and has("head/conf_bg"):
        conf = np.asarray(produced[names.CONF], np.float32)
        conf = conf.reshape(1, -1, conf.shape[-1])
        fg = conf[..., 1:]
        maxfg = fg.max(-1)
        checks.append(check_values("head/conf_bg", conf[..., 0], get("head/conf_bg"), atol=tol.prob_atol))
        checks.append(check_values("head/conf_maxfg", maxfg, get("head/conf_maxfg"), atol=tol.prob_atol))
        if has("head/conf_argmaxfg"):
            top2 = np.sort(fg, axis=-1)[..., -2:] if fg.shape[-1] > 1 else np.concatenate([fg, fg], -1)
            clear = (top2[..., 1] - top2[..., 0]) > tol.prob_atol
            wrong = (fg.argmax(-1) != get("head/conf_argmaxfg")) & clear
            n = int(wrong.sum())
            checks.append(TensorCheck("head/conf_argmaxfg", float(n), 1.0, 0.0, f"equal if top-2 gap>{tol.prob_atol:g}",
                                      n == 0, f"{n} priors differ"))
        if has("head/candidate_idx"):
            ref_idx = get("head/candidate_idx").astype(np.int64)
            ours = np.flatnonzero(maxfg[0] > np.float32(conf_thresh))
            differ = np.setxor1d(ours, ref_idx)
            borderline = np.abs(get("head/conf_maxfg")[0][differ] - conf_thresh) <= tol.prob_atol
            n = int((~borderline).sum())
            checks.append(TensorCheck("head/candidate_idx", float(n), 1.0, 0.0,
                                      f"same set (+-{tol.prob_atol:g} at thr)", n == 0,
                                      f"{len(ours)} vs {len(ref_idx)} candidates, {len(differ)} differ"))
            if has("head/conf_candidates"):
                rows = get("head/conf_candidates")  # yolact_plus_resnet50 stores the first 2000 candidates
                checks.append(check_values("head/conf_candidates", conf[0, ref_idx[:len(rows)]], rows,
                                           atol=tol.prob_atol, note=_prefix_note(len(rows), len(ref_idx))))
    if names.MASK in produced:
        mask = np.asarray(produced[names.MASK], np.float32)
        mask = mask.reshape(-1, mask.shape[-1])
        if has("head/candidate_idx") and has("head/mask_candidates"):
            idx = get("head/candidate_idx").astype(np.int64)
            rows = get("head/mask_candidates")
            checks.append(check_values("head/mask_candidates", mask[idx[:len(rows)]], rows,
                                       rtol_of_scale=tol.feature_rtol, note=_prefix_note(len(rows), len(idx))))
        if has("head/mask_P5P6P7"):
            tail = get("head/mask_P5P6P7")
            checks.append(check_values("head/mask_P5P6P7", mask[-len(tail):], tail, rtol_of_scale=tol.feature_rtol))
    return checks


def _prefix_note(stored: int, total: int) -> str:
    return f"reference stores the first {stored} of {total} candidates" if stored < total else ""


def compare_tensors(ref: ReferenceCase, pass_name: str, produced: Mapping[str, np.ndarray], *,
                    conf_thresh: float = 0.05, tol: Tolerances = FP32) -> tuple[list[TensorCheck], list[str]]:
    """Every reference tensor of the pass that the network produced; also the names not produced."""
    checks: list[TensorCheck] = []
    skipped: list[str] = []
    frame = ref.frame_of(pass_name)
    if f"{frame}/preprocessed" in ref.inputs.files and names.PREPROCESSED in produced:
        checks.append(check_values(names.PREPROCESSED, produced[names.PREPROCESSED],
                                   ref.inputs[f"{frame}/preprocessed"], rtol_of_scale=tol.feature_rtol))
    if names.PRIORS in produced and "priors" in ref.stored:
        got, stored = np.asarray(produced[names.PRIORS]), ref.priors
        if got.ndim == 2 and len(stored) < len(got):  # a case that stores a prefix of the priors
            checks.append(check_values(names.PRIORS, got[:len(stored)], stored, atol=tol.prior_atol,
                                       note=f"reference stores the first {len(stored)} of {len(got)} priors"))
        else:
            checks.append(check_values(names.PRIORS, got, stored, atol=tol.prior_atol))
    for key in ref.keys(pass_name):
        if key.startswith(_DETECTION_PREFIXES) or key in _HEAD_DERIVED or key in _PER_DETECTION:
            continue
        if key not in produced:
            skipped.append(key)
            continue
        spec = ref.spec(pass_name, key)
        got, note = _fit(spec, produced[key])
        if got is None:
            checks.append(TensorCheck(key, float("inf"), 0.0, 0.0, "shape", False, note))
            continue
        checks.append(check_values(key, got, ref.get(pass_name, key), rtol_of_scale=tol.feature_rtol, note=note))
    checks += _check_head(ref, pass_name, produced, conf_thresh, tol)
    if names.BOXES in produced and ref.has(pass_name, "head/loc"):
        derived = decode_boxes(ref.get(pass_name, "head/loc"), case_priors(ref))
        checks.append(check_values(names.BOXES, produced[names.BOXES], derived, atol=tol.box_atol,
                                   note="vs decode of reference loc"))
    return checks, skipped


# ---------------------------------------------------------------------------------------
# Detection comparison
def _mask_iou(a: np.ndarray, b: np.ndarray) -> tuple[float, int]:
    union = int((a | b).sum())
    inter = int((a & b).sum())
    return (inter / union if union else 1.0), union - inter


def compare_detections(ref: ReferenceCase, pass_name: str, produced: Mapping[str, np.ndarray],
                       tol: Tolerances = FP32) -> DetectionCheck:
    """Match network detections to the reference one to one and check every tolerance."""
    want = ref.detections(pass_name)
    frame_hw = ref.image(pass_name).shape[:2]
    r_cls = want["det_classes"].astype(np.int64)
    r_sc, r_box = want["det_scores"].astype(np.float32), want["det_boxes"].astype(np.float32)
    missing = [n for n in names.DETECTIONS if n not in produced]
    if missing:
        return DetectionCheck(len(r_sc), 0, failures=[f"network did not produce {', '.join(missing)}"])
    n = int(np.asarray(produced[names.DET_COUNT]).reshape(-1)[0])
    o_cls = np.asarray(produced[names.DET_CLASSES]).reshape(-1)[:n].astype(np.int64)
    o_sc = np.asarray(produced[names.DET_SCORES], np.float32).reshape(-1)[:n]
    o_box = np.asarray(produced[names.DET_BOXES], np.float32).reshape(-1, 4)[:n]
    o_coef = np.asarray(produced[names.DET_COEFFS], np.float32)
    o_coef = o_coef.reshape(-1, o_coef.shape[-1])[:n]
    result = DetectionCheck(len(r_sc), n)
    if n != len(r_sc):
        result.failures.append(f"count {n} != reference {len(r_sc)}")

    # One-to-one matching in reference order: same class, closest within tolerance.
    pairs: list[tuple[int, int]] = []
    unmatched: list[int] = []
    free = np.ones(n, bool)
    for i in range(len(r_sc)):
        cand = np.flatnonzero(free & (o_cls == r_cls[i]))
        if cand.size == 0:
            unmatched.append(i)
            continue
        cost = np.maximum(np.abs(o_sc[cand] - r_sc[i]) / tol.score_atol,
                          np.abs(o_box[cand] - r_box[i]).max(axis=1) / tol.box_atol)
        j = int(cand[np.argmin(cost)])
        if cost.min() <= 1.0:
            pairs.append((i, j))
            free[j] = False
        else:
            unmatched.append(i)
    result.matched = len(pairs)
    lowest = float(r_sc.min()) if len(r_sc) else 0.0
    for i in unmatched:
        if r_sc[i] - lowest <= tol.tie_atol and n == len(r_sc):
            result.boundary_ties += 1  # tied with what fell off at the capacity boundary
        else:
            result.failures.append(
                f"reference detection #{i} (class {r_cls[i]}, score {r_sc[i]:.6f}) has no match "
                f"with the same class, score within {tol.score_atol:g} and box within {tol.box_atol:g}")
            if len(result.failures) > 8:
                break
    if not pairs:
        if len(r_sc):
            result.failures.append("no detection matched the reference")
        return result
    result.pairs = pairs
    ri = np.array([p[0] for p in pairs])
    oj = np.array([p[1] for p in pairs])
    result.max_score_err = float(np.abs(o_sc[oj] - r_sc[ri]).max())
    if "mask_scores" in want and names.MASK_SCORES in produced:
        o_ms = np.asarray(produced[names.MASK_SCORES], np.float32).reshape(-1)[:n]
        result.max_mask_score_err = float(np.abs(o_ms[oj] - want["mask_scores"][ri]).max())
        if result.max_mask_score_err > tol.score_atol:
            result.failures.append(f"mask score error {result.max_mask_score_err:.2e} > {tol.score_atol:g}")
    result.max_box_err = float(np.abs(o_box[oj] - r_box[ri]).max())
    out_of_order = [(i, j) for i, j in pairs if i != j and not (j < len(r_sc) and abs(r_sc[i] - r_sc[j]) <= tol.tie_atol)]
    result.near_tie_swaps = sum(1 for i, j in pairs if i != j) - len(out_of_order)
    if out_of_order:
        i, j = out_of_order[0]
        result.failures.append(f"{len(out_of_order)} detections out of order (reference #{i} is #{j} here, "
                               f"score gap {abs(r_sc[i] - r_sc[min(j, len(r_sc) - 1)]):.2e} > {tol.tie_atol:g})")
    if "boxes" in want:
        px = boxes_to_pixels(o_box[oj], frame_hw)
        result.max_pixel_err = int(np.abs(px - want["boxes"][ri]).max())
        if result.max_pixel_err > tol.pixel_atol:
            result.failures.append(f"pixel boxes differ by {result.max_pixel_err} px > {tol.pixel_atol}")
    if "masks" in want:
        proto = produced.get(names.PROTO)
        if proto is None or np.asarray(proto).shape[-1] != o_coef.shape[-1]:
            result.masks_note = "masks not checked: full prototypes not available"
        else:
            masks = assemble_masks(proto, o_coef[oj], o_box[oj], frame_hw=frame_hw)
            ref_masks = want["masks"][ri].astype(bool)
            worst = 1.0
            for k in range(len(pairs)):
                iou, diff = _mask_iou(masks[k], ref_masks[k])
                if diff > MASK_TINY_PIXELS:
                    worst = min(worst, iou)
                elif iou < tol.mask_min_iou:
                    result.tiny_mask_exemptions += 1  # a few pixels at the 0.5 threshold of a tiny mask
            result.min_mask_iou = worst
            if worst < tol.mask_min_iou:
                result.failures.append(f"mask IoU {worst:.4f} < {tol.mask_min_iou}")
    if result.max_score_err > tol.score_atol:
        result.failures.append(f"score error {result.max_score_err:.2e} > {tol.score_atol:g}")
    if result.max_box_err > tol.box_atol:
        result.failures.append(f"box error {result.max_box_err:.2e} > {tol.box_atol:g}")
    return result


def verify_pass(ref: ReferenceCase, pass_name: str, produced: Mapping[str, np.ndarray], *,
                conf_thresh: float = 0.05, tol: Tolerances = FP32) -> PassResult:
    """All checks of one pass given the network's tensors (by the names in trtnet.names)."""
    tensors, skipped = compare_tensors(ref, pass_name, produced, conf_thresh=conf_thresh, tol=tol)
    result = PassResult(pass_name, ref.frame_of(pass_name), "run", tensors=tensors, skipped=skipped)
    if ref.has(pass_name, "fastnms/det_scores"):
        result.detections = compare_detections(ref, pass_name, produced, tol)
        per_det, missing = compare_per_detection(ref, pass_name, produced, result.detections.pairs, tol)
        result.tensors += per_det
        result.skipped += missing
    return result


def compare_per_detection(ref: ReferenceCase, pass_name: str, produced: Mapping[str, np.ndarray],
                          pairs: Sequence[tuple[int, int]], tol: Tolerances = FP32) -> tuple[list[TensorCheck], list[str]]:
    """Per-detection reference tensors (maskiou_net's input and output) row by matched row."""
    checks, missing = [], []
    for key, ours in _PER_DETECTION.items():
        if not ref.has(pass_name, key):
            continue
        if ours not in produced:
            missing.append(key)
            continue
        want = ref.get(pass_name, key)
        got = np.asarray(produced[ours])
        got = got.reshape(-1, *got.shape[2:]) if got.ndim == want.ndim + 1 else got  # drop the batch
        rows = [(i, j) for i, j in pairs if i < len(want)]
        if not rows or got.shape[1:] != want.shape[1:]:
            checks.append(TensorCheck(key, float("inf"), 0.0, 0.0, "shape", False,
                                      f"shape {got.shape} vs reference {want.shape} ({len(rows)} matched rows)"))
            continue
        ri, oj = np.array([r[0] for r in rows]), np.array([r[1] for r in rows])
        note = f"{len(rows)} matched detections" + (f" of {len(want)}" if len(rows) < len(want) else "")
        checks.append(check_values(key, got[oj], want[ri], rtol_of_scale=tol.feature_rtol, note=note))
    return checks, missing


# ---------------------------------------------------------------------------------------
# Report
def _fmt(x: float) -> str:
    return "inf" if x == float("inf") else f"{x:.2e}"


def format_pass(result: PassResult) -> str:
    lines = [f"pass {result.pass_name} (frame {result.frame})"]
    if result.status != "run":
        lines[0] += f": NOT RUN - {result.reason}"
        return "\n".join(lines)
    lines.append(f"  {'tensor':<28} {'max_abs':>9} {'max|ref|':>9} {'rel':>9}  {'tolerance':<24} result")
    for t in result.tensors:
        lines.append(f"  {t.name:<28} {_fmt(t.max_abs):>9} {_fmt(t.scale):>9} {_fmt(t.rel):>9}  "
                     f"{t.rule:<24} {'PASS' if t.passed else 'FAIL'}{('  ' + t.note) if t.note else ''}")
    if result.skipped:
        lines.append(f"  not produced by the network (not compared): {', '.join(result.skipped)}")
    d = result.detections
    if d is not None:
        iou = "n/a" if d.min_mask_iou is None else f"{d.min_mask_iou:.4f}"
        lines.append(
            f"  detections: {d.count} vs reference {d.ref_count}, matched {d.matched} (same class), "
            f"score err {_fmt(d.max_score_err)}, box err {_fmt(d.max_box_err)} (rel), "
            f"{d.max_pixel_err} px, near-tie swaps {d.near_tie_swaps}, boundary ties {d.boundary_ties}, "
            f"min mask IoU {iou}" + ("" if d.max_mask_score_err is None else
                                     f", mask score err {_fmt(d.max_mask_score_err)}")
            + f"  {'PASS' if d.passed else 'FAIL'}")
        if d.tiny_mask_exemptions:
            lines.append(f"    {d.tiny_mask_exemptions} tiny masks differ in <= {MASK_TINY_PIXELS} px "
                         "(IoU below the bound; not counted)")
        if d.masks_note:
            lines.append(f"    {d.masks_note}")
        for f in d.failures:
            lines.append(f"    FAIL: {f}")
    return "\n".join(lines)


def format_report(ref: ReferenceCase, backend: str, results: Sequence[PassResult]) -> str:
    lines = [f"case {ref.name} ({ref.config_name}) at {ref.path}, backend {backend}"]
    lines += [format_pass(r) for r in results]
    ran = [r for r in results if r.status == "run"]
    failed = [r for r in ran if not r.passed]
    n_checks = sum(len(r.tensors) + (r.detections is not None) for r in ran)
    n_bad = sum(len(r.failed_names) for r in ran)
    verdict = "PASS" if not failed and ran else "FAIL"
    lines.append(f"SUMMARY: {len(ran)} passes run, {len(results) - len(ran)} not run; "
                 f"{n_checks} checks, {n_bad} failed -> {verdict}")
    for r in failed:
        lines.append(f"  failed in {r.pass_name}: {', '.join(r.failed_names)}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------
# The reference backend: the case's own tensors
def reference_outputs(ref: ReferenceCase, pass_name: str) -> dict[str, np.ndarray]:
    """The case's own tensors, with detections recomputed by trtnet's NumPy Fast NMS.

    Softmax rows of non-candidate priors are not stored; they are rebuilt from the
    stored background and best-foreground probabilities (they never enter NMS).
    """
    produced = {k: ref.get(pass_name, k) for k in ref.keys(pass_name)
                if not k.startswith(_DETECTION_PREFIXES) and k not in _HEAD_DERIVED}
    priors = case_priors(ref)
    produced[names.PRIORS] = priors
    loc, scores, coeffs = ref.fastnms_inputs(pass_name)
    boxes = decode_boxes(loc, priors)
    produced[names.BOXES] = boxes
    produced[names.CONF] = scores
    mask = coeffs.copy()
    if ref.has(pass_name, "head/mask_P5P6P7"):
        tail = ref.get(pass_name, "head/mask_P5P6P7")
        mask[0, -len(tail):] = tail
    produced[names.MASK] = mask
    det = fast_nms(boxes, scores, coeffs, **detect_settings(ref))
    produced.update({names.DET_COUNT: det.count, names.DET_BOXES: det.boxes, names.DET_SCORES: det.scores,
                     names.DET_CLASSES: det.classes, names.DET_COEFFS: det.coeffs})
    return produced


def case_priors(ref: ReferenceCase) -> np.ndarray:
    """Every prior of the case, [A, 4] with A = head/loc's prior count.

    ``yolact_plus_resnet50`` stores only the first 42,849 of its 57,744 priors (P3's 69 x 69 x 9);
    such a prefix is completed from the config's anchors (trtnet.network.priors.make_priors)
    once the stored part is checked to be theirs.
    """
    stored = ref.priors
    loc_pass = next((p for p in ref.passes if ref.has(p, "head/loc")), None)
    if loc_pass is None:
        return stored
    count = int(ref.spec(loc_pass, "head/loc").shape[-2])
    if len(stored) == count:
        return stored
    from trtnet.config import get_config
    from trtnet.network.priors import make_priors

    full = make_priors(get_config(ref.config_name))
    if len(full) != count or len(stored) > count or \
            float(np.abs(full[:len(stored)] - stored).max(initial=0.0)) > FP32.prior_atol:
        raise ValueError(f"{ref.path}: the stored priors ({len(stored)}) are neither head/loc's {count} priors "
                         f"nor a prefix of config {ref.config_name}'s {len(full)}")
    return full


def detect_settings(ref: ReferenceCase) -> dict:
    """The case's Fast NMS settings (manifest config.detection, upstream's defaults where absent)."""
    d = ref.manifest.get("config", {}).get("detection", {})
    return dict(top_k=int(d.get("top_k", 200)), conf_thresh=float(d.get("conf_thresh", 0.05)),
                nms_thresh=float(d.get("nms_thresh", 0.5)),
                max_det=int(d.get("max_num_detections", 100)), background_class=int(d.get("bkg_label", 0)))


def wanted_tensors(ref: ReferenceCase, pass_name: str) -> set[str]:
    """The tensors a pass's comparison can use: the case's stored ones and trtnet's outputs."""
    keys = {k for k in ref.keys(pass_name) if not k.startswith(_DETECTION_PREFIXES)}
    keys |= {ours for theirs, ours in _PER_DETECTION.items() if theirs in keys}
    return keys | {names.PREPROCESSED, names.PRIORS, names.CONF, names.MASK, names.BOXES, names.PROTO,
                   *names.DETECTIONS}
