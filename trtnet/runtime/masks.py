"""Mask assembler: detections + prototypes -> instance masks at the frame's size.

Upstream ``layers/output_utils.postprocess`` (UPSTREAM_NOTES item 10), exactly:
``sigmoid(protos @ coeffs.T)`` on the 138x138 grid, crop by the box with float
bounds padded by one cell, bilinear resize to (H, W) like ``F.interpolate(...,
align_corners=False)`` (no antialias), ``> 0.5``. Boxes go to pixels by scaling,
min/max swap, clamping and truncation like upstream's ``sanitize_coordinates`` +
``.long()``.

The same code runs on CuPy arrays (GPU, the runtime's path) and NumPy arrays
(CPU): the array module is taken from the inputs. CuPy is optional.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from trtnet.runtime import profiling

try:  # optional GPU backend
    import cupy as _cupy  # type: ignore[import-not-found]
except Exception:  # noqa: BLE001 - any import failure just means CPU only
    _cupy = None


MASK_CHUNK = 16  # detections assembled at a time


def get_array_module(*arrays: Any):
    """``cupy`` if any input is a CuPy array, else ``numpy``."""
    if _cupy is not None:
        return _cupy.get_array_module(*arrays)
    return np


def _take_count(x, count):
    return x if count is None else x[: int(count)]


def _squeeze_batch(x, ndim: int, what: str):
    if x.ndim == ndim + 1:
        if x.shape[0] != 1:
            raise ValueError(f"{what}: batch of {x.shape[0]}; pass one image at a time")
        return x[0]
    if x.ndim != ndim:
        raise ValueError(f"{what}: expected {ndim} dims (or a batch of 1), got shape {tuple(x.shape)}")
    return x


def _count_value(count) -> int | None:
    if count is None:
        return None
    value = np.asarray(count.get() if hasattr(count, "get") else count).reshape(-1)
    if value.size != 1:
        raise ValueError(f"count: expected one value, got {value.size}")
    return int(value[0])


def lowres_masks(protos, coeffs, boxes=None, *, crop: bool = True):
    """``sigmoid(protos @ coeffs.T)`` on the prototype grid, cropped by box: [D, Hp, Wp] float32.

    protos: [Hp, Wp, K] (NHWC as upstream; a leading batch of 1 is accepted),
    coeffs: [D, K], boxes: [D, 4] relative x1, y1, x2, y2 (needed when crop).
    """
    xp = get_array_module(protos, coeffs)
    protos = _squeeze_batch(xp.asarray(protos, dtype=xp.float32), 3, "protos")
    coeffs = xp.asarray(coeffs, dtype=xp.float32)
    if coeffs.ndim != 2 or coeffs.shape[1] != protos.shape[2]:
        raise ValueError(f"coeffs: expected [D, {protos.shape[2]}], got {tuple(coeffs.shape)}")
    hp, wp, _ = protos.shape
    logits = protos.reshape(hp * wp, -1) @ coeffs.T  # [Hp*Wp, D]
    masks = (1 / (1 + xp.exp(-logits))).T.reshape(-1, hp, wp).astype(xp.float32)
    if crop:
        if boxes is None:
            raise ValueError("lowres_masks: crop=True needs boxes")
        masks = masks * _crop_window(xp, xp.asarray(boxes, dtype=xp.float32), hp, wp)
    return masks


def _bounds(xp, lo, hi, size: int):
    """Upstream sanitize_coordinates(padding=1, cast=False) on the proto grid (float32)."""
    a, b = lo * xp.float32(size), hi * xp.float32(size)
    low = xp.maximum(xp.minimum(a, b) - 1, 0)
    high = xp.minimum(xp.maximum(a, b) + 1, size)
    return low, high


def _crop_window(xp, boxes, hp: int, wp: int):
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes: expected [D, 4], got {tuple(boxes.shape)}")
    x1, x2 = _bounds(xp, boxes[:, 0], boxes[:, 2], wp)
    y1, y2 = _bounds(xp, boxes[:, 1], boxes[:, 3], hp)
    cols = xp.arange(wp, dtype=xp.float32)
    rows = xp.arange(hp, dtype=xp.float32)
    in_x = (cols[None, :] >= x1[:, None]) & (cols[None, :] < x2[:, None])  # [D, Wp]
    in_y = (rows[None, :] >= y1[:, None]) & (rows[None, :] < y2[:, None])  # [D, Hp]
    return (in_y[:, :, None] & in_x[:, None, :]).astype(xp.float32)


def _linear_taps(xp, in_size: int, out_size: int):
    """Source indices and weights of a bilinear resize, align_corners=False (PyTorch's rule).

    PyTorch computes ``scale * (dst + 0.5) - 0.5`` in float32 as one fused multiply-add;
    float64 holds that product and difference exactly, so one rounding to float32 is the FMA.
    """
    scale = np.float32(np.float32(in_size) / np.float32(out_size))
    src = (np.float64(scale) * (np.arange(out_size, dtype=np.float64) + 0.5) - 0.5).astype(np.float32)
    src = np.maximum(src, np.float32(0))
    i0 = src.astype(np.int64)  # floor, src >= 0
    i1 = np.where(i0 < in_size - 1, i0 + 1, i0)
    w1 = (src - i0).astype(np.float32)
    w0 = (np.float32(1) - w1).astype(np.float32)
    return tuple(xp.asarray(a) for a in (i0, i1, w0, w1))


def resize_bilinear(masks, out_hw: tuple[int, int]):
    """[D, h, w] -> [D, H, W] like ``F.interpolate(mode='bilinear', align_corners=False)``."""
    xp = get_array_module(masks)
    _, h, w = masks.shape
    out_h, out_w = int(out_hw[0]), int(out_hw[1])
    x0, x1, wx0, wx1 = _linear_taps(xp, w, out_w)
    y0, y1, wy0, wy1 = _linear_taps(xp, h, out_h)
    rows = masks[:, :, x0] * wx0 + masks[:, :, x1] * wx1  # [D, h, W]
    return rows[:, y0, :] * wy0[:, None] + rows[:, y1, :] * wy1[:, None]


def _assemble_compiled(xp, protos, coeffs, boxes, frame_hw: tuple[int, int], crop: bool,
                       threshold: float | None):
    """The compiled assembler (csrc/masks): its CPU twin for NumPy arrays, its CUDA kernels
    for CuPy arrays; bit-exact with upstream. None when trtnet._C lacks it."""
    from trtnet.plugins import extension as _ext

    module = getattr(_ext, "_C", None)
    if module is None or not hasattr(module, "assemble_masks") or (xp is not np and not _ext.HAS_CUDA):
        return None
    if threshold is not None and threshold != threshold:  # NaN: the array path's all-False masks
        return None
    if xp is not np and not all(hasattr(getattr(a, "data", None), "ptr") for a in (protos, coeffs, boxes)):
        return None  # the kernels take device pointers (CuPy's .data.ptr); other arrays use the array path
    protos, coeffs, boxes = (a if a.dtype in (xp.float32, xp.float16) else a.astype(xp.float32)
                             for a in (protos, coeffs, boxes))
    if boxes.dtype != coeffs.dtype:  # one detection dtype: widen (float16 -> float32 is exact)
        coeffs, boxes = coeffs.astype(xp.float32), boxes.astype(xp.float32)
    output = "mask" if threshold is not None else "prob"
    thr = 0.5 if threshold is None else float(threshold)
    if xp is np:
        out = module.assemble_masks(protos, coeffs, boxes, frame_hw=frame_hw, threshold=thr, crop=crop, output=output)
    else:
        out = _ext.assemble_masks_cupy(protos, coeffs, boxes, frame_hw, threshold=thr, crop=crop, output=output)
    return out if threshold is None else out.view(xp.bool_)


def assemble_masks(protos, coeffs, boxes, count=None, frame_hw: tuple[int, int] | None = None, *,
                   crop: bool = True, threshold: float | None = 0.5, compiled: bool = True):
    """Instance masks at the frame's size: bool [D, H, W] (float [D, H, W] if threshold is None).

    protos [Hp, Wp, K] (or [1, ...]); coeffs [D, K]; boxes [D, 4] relative; ``count``
    limits D to the valid detections of a fixed-capacity output. ``compiled`` uses
    trtnet._C's assembler when built (upstream bit for bit, several times faster);
    otherwise the array code below (float32 ulps from upstream).
    """
    if frame_hw is None:
        raise ValueError("assemble_masks: frame_hw=(height, width) of the original frame is required")
    xp = get_array_module(protos, coeffs, boxes)
    coeffs = _squeeze_batch(xp.asarray(coeffs), 2, "coeffs")
    boxes = _squeeze_batch(xp.asarray(boxes), 2, "boxes")
    n = _count_value(count)
    coeffs, boxes = _take_count(coeffs, n), _take_count(boxes, n)
    h, w = int(frame_hw[0]), int(frame_hw[1])
    result = _assemble_compiled(xp, xp.asarray(protos), coeffs, boxes, (h, w), crop, threshold) if compiled else None
    if result is not None:
        return result
    out = xp.empty((coeffs.shape[0], h, w), dtype=xp.float32 if threshold is None else xp.bool_)
    # Chunks bound the float32 intermediates (100 masks at 1080p would be ~0.8 GB at once).
    for start in range(0, coeffs.shape[0], MASK_CHUNK):
        stop = start + MASK_CHUNK
        masks = resize_bilinear(lowres_masks(protos, coeffs[start:stop], boxes[start:stop], crop=crop), (h, w))
        out[start:stop] = masks if threshold is None else masks > threshold
    return out


def boxes_to_pixels(boxes, frame_hw: tuple[int, int], count=None):
    """Relative x1, y1, x2, y2 -> int64 pixel boxes like upstream (scale, min/max, clamp, truncate)."""
    xp = get_array_module(boxes)
    boxes = _squeeze_batch(xp.asarray(boxes, dtype=xp.float32), 2, "boxes")
    boxes = _take_count(boxes, _count_value(count))
    h, w = int(frame_hw[0]), int(frame_hw[1])

    def axis(lo, hi, size):
        a, b = lo * xp.float32(size), hi * xp.float32(size)
        return xp.maximum(xp.minimum(a, b), 0), xp.minimum(xp.maximum(a, b), size)

    x1, x2 = axis(boxes[:, 0], boxes[:, 2], w)
    y1, y2 = axis(boxes[:, 1], boxes[:, 3], h)
    return xp.stack([x1, y1, x2, y2], axis=1).astype(xp.int64)  # truncation toward zero


class Instances(NamedTuple):
    """Postprocessed detections of one frame (upstream ``postprocess`` output).

    ``mask_scores`` are the scores of the masks: a YOLACT++ engine's re-scored ``mask_scores``
    output (box score x maskiou_net's predicted IoU, upstream's ``rescore_mask``), and for every
    other engine the box scores themselves (upstream's eval then uses the box score for both).
    ``None`` only in Instances built by hand; read it with :func:`mask_scores_of`.
    """

    classes: Any  # int [D], 0-based foreground
    scores: Any   # float32 [D] box scores
    boxes: Any    # int64 [D, 4] pixels
    masks: Any    # bool [D, H, W]
    mask_scores: Any = None  # float32 [D] mask scores (= scores without mask re-scoring)


def mask_scores_of(inst: Instances) -> Any:
    """The mask scores of ``inst``: its ``mask_scores``, or its box scores when it has none."""
    return inst.scores if inst.mask_scores is None else inst.mask_scores


def postprocess(count, boxes, scores, classes, coeffs, protos, frame_hw: tuple[int, int], *,
                crop: bool = True, score_threshold: float = 0.0, mask_scores=None) -> Instances:
    """Fixed-capacity detector outputs of one frame -> Instances at the frame's size.

    ``mask_scores``: a YOLACT++ engine's mask_scores output ([1, max_det]); None -> the box
    scores. The threshold applies to the box scores, as in upstream's postprocess (it filters
    on ``dets['score']`` before re-scoring)."""
    xp = get_array_module(boxes, coeffs, protos)
    n = _count_value(count)
    boxes = _take_count(_squeeze_batch(xp.asarray(boxes), 2, "boxes"), n)
    scores = _take_count(xp.asarray(scores).reshape(-1), n)
    classes = _take_count(xp.asarray(classes).reshape(-1), n)
    coeffs = _take_count(_squeeze_batch(xp.asarray(coeffs), 2, "coeffs"), n)
    mask_scores = scores if mask_scores is None else _take_count(xp.asarray(mask_scores).reshape(-1), n)
    if mask_scores.shape != scores.shape:
        raise ValueError(f"mask_scores has {mask_scores.shape[0]} values for {scores.shape[0]} detections")
    if score_threshold > 0:
        keep = scores > score_threshold
        boxes, scores, classes, coeffs = boxes[keep], scores[keep], classes[keep], coeffs[keep]
        mask_scores = mask_scores[keep]
    with profiling.stage(profiling.MASKS):
        masks = assemble_masks(protos, coeffs, boxes, frame_hw=frame_hw, crop=crop)
    return Instances(classes, scores, boxes_to_pixels(boxes, frame_hw), masks, mask_scores)
