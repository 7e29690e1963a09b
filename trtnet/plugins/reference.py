"""NumPy references for the plugins and the box decode, with upstream's exact semantics.

These are the executable form of :mod:`trtnet.plugins.specs`: slow, obvious,
float32 in the same operation order as upstream PyTorch, so they agree with the
reference outputs to float32 rounding. The CPU twins and CUDA kernels are tested
against them.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .specs import FAST_NMS, INVERSE_WARP

BOX_VARIANCES = (0.1, 0.2)


def decode_boxes(loc: np.ndarray, priors: np.ndarray, variances=BOX_VARIANCES) -> np.ndarray:
    """Upstream ``box_utils.decode``: (dx, dy, dw, dh) + priors (cx, cy, w, h) -> x1, y1, x2, y2.

    ``loc`` is [..., A, 4], ``priors`` [A, 4]; all relative to the 550 input.
    cx = pcx + dx * v0 * pw ; w = pw * exp(dw * v1) ; x1 = cx - w / 2 ; x2 = x1 + w.
    """
    loc = np.asarray(loc, dtype=np.float32)
    priors = np.asarray(priors, dtype=np.float32)
    if loc.shape[-1] != 4 or priors.shape[-1] != 4 or loc.shape[-2] != priors.shape[0]:
        raise ValueError(f"decode_boxes: loc {loc.shape} and priors {priors.shape} must be [..., A, 4] and [A, 4]")
    v0, v1 = np.float32(variances[0]), np.float32(variances[1])
    centre = priors[:, :2] + loc[..., :2] * v0 * priors[:, 2:]
    size = priors[:, 2:] * np.exp(loc[..., 2:] * v1)
    top_left = centre - size / np.float32(2)
    return np.concatenate([top_left, size + top_left], axis=-1).astype(np.float32)


def pairwise_iou(boxes: np.ndarray) -> np.ndarray:
    """IoU of every pair within each group: [..., k, 4] -> [..., k, k], no +1 (upstream jaccard)."""
    a = boxes[..., :, None, :]
    b = boxes[..., None, :, :]
    wh = np.clip(np.minimum(a[..., 2:], b[..., 2:]) - np.maximum(a[..., :2], b[..., :2]), 0, None)
    inter = wh[..., 0] * wh[..., 1]
    area = (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])
    union = area[..., :, None] + area[..., None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):  # 0 / 0 = NaN as upstream: two zero-area boxes
        return (inter / union).astype(np.float32)


class Detections(NamedTuple):
    """Fast NMS output, fixed capacity ``max_det`` per image (see specs.FAST_NMS)."""

    count: np.ndarray    # int32 [N]
    boxes: np.ndarray    # float32 [N, max_det, 4]
    scores: np.ndarray   # float32 [N, max_det]
    classes: np.ndarray  # int32 [N, max_det], -1 past count
    coeffs: np.ndarray   # float32 [N, max_det, K]


def _fast_nms_one(boxes, scores, coeffs, top_k, conf_thresh, nms_thresh, max_det, fg_columns):
    fg = scores[:, fg_columns]  # [A, Cf]
    candidates = np.flatnonzero(fg.max(axis=1) > conf_thresh) if fg.shape[1] else np.empty(0, int)
    if candidates.size == 0:
        return (np.empty((0, 4), np.float32), np.empty(0, np.float32),
                np.empty(0, np.int32), np.empty((0, coeffs.shape[-1]), np.float32))
    class_scores = fg[candidates].T  # [Cf, K] candidates in ascending prior order
    # Stable sort on the negated score: equal scores keep ascending prior order (TIE_RULE).
    order = np.argsort(-class_scores, axis=1, kind="stable")[:, :top_k]
    ranked = candidates[order]  # prior indices [Cf, k]
    ranked_scores = np.take_along_axis(class_scores, order, axis=1)
    iou = np.triu(pairwise_iou(boxes[ranked]), k=1)
    keep = iou.max(axis=1) <= nms_thresh  # column max of earlier boxes; NaN propagates -> dropped
    num_fg = class_scores.shape[0]
    cls = np.broadcast_to(np.arange(num_fg, dtype=np.int32)[:, None], keep.shape)
    kept_priors, kept_scores, kept_classes = ranked[keep], ranked_scores[keep], cls[keep]
    # Class-major flattening, then a stable sort: ties -> smaller class, then smaller prior.
    final = np.argsort(-kept_scores, kind="stable")[:max_det]
    priors = kept_priors[final]
    return boxes[priors], kept_scores[final], kept_classes[final], coeffs[priors]


def fast_nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    coeffs: np.ndarray,
    *,
    top_k: int = FAST_NMS.field("top_k").default,
    conf_thresh: float = FAST_NMS.field("conf_thresh").default,
    nms_thresh: float = FAST_NMS.field("nms_thresh").default,
    max_det: int = FAST_NMS.field("max_det").default,
    background_class: int = FAST_NMS.field("background_class").default,
) -> Detections:
    """Upstream Fast NMS, batched: boxes [N,A,4], scores [N,A,C] (softmax), coeffs [N,A,K]."""
    boxes = np.asarray(boxes, dtype=np.float32)
    scores = np.asarray(scores, dtype=np.float32)
    coeffs = np.asarray(coeffs, dtype=np.float32)
    if boxes.ndim != 3 or boxes.shape[-1] != 4:
        raise ValueError(f"fast_nms: boxes must be [N, A, 4], got {boxes.shape}")
    if scores.ndim != 3 or scores.shape[:2] != boxes.shape[:2]:
        raise ValueError(f"fast_nms: scores must be [N, A, C] with N, A of boxes {boxes.shape[:2]}, got {scores.shape}")
    if coeffs.ndim != 3 or coeffs.shape[:2] != boxes.shape[:2]:
        raise ValueError(f"fast_nms: coeffs must be [N, A, K] with N, A of boxes {boxes.shape[:2]}, got {coeffs.shape}")
    num_classes = scores.shape[2]
    if not -1 <= background_class < num_classes:
        raise ValueError(f"fast_nms: background_class {background_class} not in [-1, {num_classes})")
    if top_k < 1 or max_det < 1:
        raise ValueError(f"fast_nms: top_k ({top_k}) and max_det ({max_det}) must be >= 1")
    fg_columns = [c for c in range(num_classes) if c != background_class]
    conf_thresh, nms_thresh = np.float32(conf_thresh), np.float32(nms_thresh)

    n, k = boxes.shape[0], coeffs.shape[2]
    out = Detections(
        count=np.zeros(n, np.int32),
        boxes=np.zeros((n, max_det, 4), np.float32),
        scores=np.zeros((n, max_det), np.float32),
        classes=np.full((n, max_det), -1, np.int32),
        coeffs=np.zeros((n, max_det, k), np.float32),
    )
    for i in range(n):
        b, s, c, m = _fast_nms_one(boxes[i], scores[i], coeffs[i], top_k, conf_thresh,
                                   nms_thresh, max_det, fg_columns)
        d = len(s)
        out.count[i] = d
        out.boxes[i, :d], out.scores[i, :d], out.classes[i, :d], out.coeffs[i, :d] = b, s, c, m
    return out


def _broadcast_param(name: str, value: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray | None:
    if value is None:
        return None
    value = np.asarray(value, dtype=np.float32)
    n, c, h, w = shape
    if value.ndim != 4 or value.shape[0] not in (1, n) or value.shape[1] not in (1, c) or value.shape[2:] != (h, w):
        raise ValueError(f"inverse_warp: {name} must be [N, C or 1, H, W] matching feature {shape}, got {value.shape}")
    return value


def inverse_warp(
    feature: np.ndarray,
    flow: np.ndarray,
    scale: np.ndarray | None = None,
    bias: np.ndarray | None = None,
    *,
    flow_divisor: float = INVERSE_WARP.field("flow_divisor").default,
) -> np.ndarray:
    """Upstream ``deform_op(feature, flow) * scale + bias`` (grid_sample, align_corners=True, zeros)."""
    feature = np.asarray(feature, dtype=np.float32)
    flow = np.asarray(flow, dtype=np.float32)
    if feature.ndim != 4:
        raise ValueError(f"inverse_warp: feature must be [N, C, H, W], got {feature.shape}")
    n, c, h, w = feature.shape
    if flow.shape != (n, 2, h, w):
        raise ValueError(f"inverse_warp: flow must be [N, 2, H, W] = {(n, 2, h, w)}, got {flow.shape}")
    scale = _broadcast_param("scale", scale, feature.shape)
    bias = _broadcast_param("bias", bias, feature.shape)

    divisor = np.float32(flow_divisor)
    # Base grid in [-1, 1]: pixel * (2 / (size - 1)) - 1 (a 1-pixel axis gives inf*0 upstream; use 0).
    sx = np.float32(2.0 / (w - 1)) if w > 1 else np.float32(0)
    sy = np.float32(2.0 / (h - 1)) if h > 1 else np.float32(0)
    gx = np.arange(w, dtype=np.float32)[None, None, :] * sx - np.float32(1) + flow[:, 0] / divisor
    gy = np.arange(h, dtype=np.float32)[None, :, None] * sy - np.float32(1) + flow[:, 1] / divisor
    # grid_sample, align_corners=True: unnormalise to [0, size - 1].
    ix = (gx + np.float32(1)) / np.float32(2) * np.float32(w - 1)
    iy = (gy + np.float32(1)) / np.float32(2) * np.float32(h - 1)
    x0, y0 = np.floor(ix), np.floor(iy)
    fx, fy = ix - x0, iy - y0
    x0, y0 = x0.astype(np.int64), y0.astype(np.int64)

    out = np.zeros_like(feature)
    batch = np.arange(n)[:, None, None]
    for dy, wy in ((0, np.float32(1) - fy), (1, fy)):
        for dx, wx in ((0, np.float32(1) - fx), (1, fx)):
            xs, ys = x0 + dx, y0 + dy
            inside = (xs >= 0) & (xs < w) & (ys >= 0) & (ys < h)
            weight = np.where(inside, wx * wy, np.float32(0)).astype(np.float32)  # [N, H, W]
            values = feature[batch, :, np.clip(ys, 0, h - 1), np.clip(xs, 0, w - 1)]  # [N, H, W, C]
            out += np.moveaxis(values, -1, 1) * weight[:, None]
    if scale is not None:
        out = out * scale
    if bias is not None:
        out = out + bias
    return out.astype(np.float32)
