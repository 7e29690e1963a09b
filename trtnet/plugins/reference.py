"""NumPy references for the plugins and the box decode, with upstream's exact semantics.

These are the executable form of :mod:`trtnet.plugins.specs`: slow, obvious,
float32 in the same operation order as upstream PyTorch, so they agree with the
reference outputs to float32 rounding. The CPU twins and CUDA kernels are tested
against them.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .specs import FAST_NMS, INVERSE_WARP, MODULATED_DEFORM_CONV_V2

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


class DeformConvShapeError(ValueError):
    """The inputs of a modulated deformable convolution do not fit together."""


def deform_conv_output_shape(x_shape, offset_shape, mask_shape, weight_shape, bias_shape=None, *,
                             stride=(1, 1), padding=(0, 0), dilation=(1, 1), group=1,
                             deformable_group=1) -> tuple[int, ...]:
    """[N, Cout, Ho, Wo] of ModulatedDeformConv2d, or a DeformConvShapeError naming what disagrees.

    TensorRT's plugin takes Ho, Wo from the offset (modulatedDeformConvPlugin.cpp 10.3 lines 109-113)
    and trusts the rest; upstream's DCNv2 asserts the offset/mask channels (dcn_v2.py DCNv2.forward)
    and the kernel channels (dcn_v2_cuda.cu lines 80-84). The twin checks all of it, so a layer
    whose offset, mask and weight disagree is refused instead of reading out of bounds on a GPU.
    ``-1`` (a dynamic dimension) is accepted wherever it appears.
    """
    name = MODULATED_DEFORM_CONV_V2.name
    shapes = {"x": x_shape, "offset": offset_shape, "mask": mask_shape, "weight": weight_shape}
    for label, shape in shapes.items():
        if len(shape) != 4:
            raise DeformConvShapeError(f"{name}: {label} must be 4-D, got shape {tuple(shape)}")
    known = lambda *ds: all(int(d) >= 0 for d in ds)  # noqa: E731
    n, c, h, w = (int(d) for d in x_shape)
    cout, cg, kh, kw = (int(d) for d in weight_shape)
    taps = kh * kw
    sw, sh = (int(v) for v in stride)      # the first value of each pair is W (see specs)
    pw, ph = (int(v) for v in padding)
    dw, dh = (int(v) for v in dilation)
    problems = []
    if group < 1 or deformable_group < 1:
        problems.append(f"group {group} and deformable_group {deformable_group} must be >= 1")
    elif known(c):
        if c % deformable_group:
            problems.append(f"x has {c} channels, not a multiple of deformable_group {deformable_group}")
        if cg * group != c:
            problems.append(f"weight {tuple(weight_shape)} expects {cg} x group {group} = {cg * group} input "
                            f"channels, x has {c}")
    if cout % max(group, 1):
        problems.append(f"weight has {cout} output channels, not a multiple of group {group}")
    if int(offset_shape[1]) != 2 * deformable_group * taps:
        problems.append(f"offset has {offset_shape[1]} channels, a {kh}x{kw} kernel with deformable_group "
                        f"{deformable_group} needs 2*{deformable_group}*{taps} = {2 * deformable_group * taps}")
    if int(mask_shape[1]) != deformable_group * taps:
        problems.append(f"mask has {mask_shape[1]} channels, needs {deformable_group}*{taps} = "
                        f"{deformable_group * taps}")
    ho, wo = int(offset_shape[2]), int(offset_shape[3])
    if tuple(int(d) for d in mask_shape[2:]) != (ho, wo):
        problems.append(f"mask grid {tuple(mask_shape[2:])} differs from the offset grid {(ho, wo)}")
    if known(h, w):
        want = ((h + 2 * ph - (dh * (kh - 1) + 1)) // sh + 1, (w + 2 * pw - (dw * (kw - 1) + 1)) // sw + 1)
        if (ho, wo) != want:
            problems.append(f"offset grid {(ho, wo)} is not the convolution's output grid {want} for x "
                            f"{h}x{w}, kernel {kh}x{kw}, stride {(sh, sw)}, padding {(ph, pw)}, dilation {(dh, dw)}")
    for label, shape in (("offset", offset_shape), ("mask", mask_shape)):
        if known(n, shape[0]) and int(shape[0]) != n:
            problems.append(f"{label} batch {shape[0]} differs from x batch {n}")
    if bias_shape is not None and tuple(int(d) for d in bias_shape) != (cout,):
        problems.append(f"bias shape {tuple(bias_shape)} is not ({cout},)")
    if problems:
        raise DeformConvShapeError(f"{name}: " + "; ".join(problems))
    return (n, cout, ho, wo)


def modulated_deform_conv(
    x: np.ndarray, offset: np.ndarray, mask: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None,
    *, stride=(1, 1), padding=(0, 0), dilation=(1, 1), group: int = 1, deformable_group: int = 1,
    half: bool = False,
) -> np.ndarray:
    """DCNv2 as upstream's CUDA kernel computes it (dcn_v2_im2col_cuda.cu lines 155-191, bilinear 25-53).

    Tap k = i*kW + j of output pixel (oy, ox) samples x at
    ``y = (oy*sH - pH + i*dH) + offset[2k]``, ``x = (ox*sW - pW + j*dW) + offset[2k+1]`` (int base,
    then the float offset) only when ``-1 < y < H and -1 < x < W``, bilinearly with each corner
    outside [0, H-1] x [0, W-1] read as 0 (``w1*v1 + w2*v2 + w3*v3 + w4*v4`` in that order),
    times ``mask[k]``; the columns [C*kH*kW (channel-major, then tap), Ho*Wo] go through
    ``weight.reshape(Cout, -1) @ columns`` per group, then ``+ bias``. float32 throughout.

    ``half``: TensorRT's fp16 kernel (modulatedDeformConvPluginKernel.cu 10.3 lines 173-176) stores
    the sampling position and the columns in half; both are rounded to float16 here. Its
    cublasHgemm (modulatedDeformConvCudaHelper.cu line 127) accumulates in half, which is not
    emulated: the GEMM here is float32, the caller rounds the output.
    Vectorised: Python loops run over the taps, the batch and the groups, never pixels or channels.
    """
    out_shape = deform_conv_output_shape(
        np.shape(x), np.shape(offset), np.shape(mask), np.shape(weight),
        None if bias is None else np.shape(bias), stride=stride, padding=padding, dilation=dilation,
        group=group, deformable_group=deformable_group)
    f32 = np.float32
    x = np.asarray(x, f32)
    offset, mask, weight = (np.asarray(a, f32) for a in (offset, mask, weight))
    n, c, h, w = x.shape
    cout, cg, kh, kw = weight.shape
    _, _, ho, wo = out_shape
    sw, sh = (int(v) for v in stride)
    pw, ph = (int(v) for v in padding)
    dw, dh = (int(v) for v in dilation)
    taps, dg, p = kh * kw, int(deformable_group), ho * wo
    cpg = c // dg
    base_y = (np.arange(ho) * sh - ph)[:, None]          # int, as h_in in the kernel
    base_x = (np.arange(wo) * sw - pw)[None, :]
    off = offset.reshape(n, dg, taps, 2, ho, wo)
    mod = mask.reshape(n, dg, taps, p)
    # channels last, so each sample gathers contiguous rows of channels: [n, dg, H*W, C/dg]
    rows = np.ascontiguousarray(x.reshape(n, dg, cpg, h * w).transpose(0, 1, 3, 2))
    cols = np.empty((n, p, c, taps), f32)   # column (c, k) of pixel p: channel-major, then tap
    one, zero = f32(1), f32(0)
    for k in range(taps):
        i, j = divmod(k, kw)
        ys = ((base_y + i * dh).astype(f32) + off[:, :, k, 0]).reshape(n, dg, p)
        xs = ((base_x + j * dw).astype(f32) + off[:, :, k, 1]).reshape(n, dg, p)
        if half:
            ys, xs = ys.astype(np.float16).astype(f32), xs.astype(np.float16).astype(f32)
        inside = (ys > -1) & (xs > -1) & (ys < h) & (xs < w)
        ys, xs = np.where(inside, ys, zero), np.where(inside, xs, zero)
        y0, x0 = np.floor(ys), np.floor(xs)
        ly, lx = ys - y0, xs - x0
        hy, hx = one - ly, one - lx
        y0, x0 = y0.astype(np.int64), x0.astype(np.int64)
        y1, x1 = y0 + 1, x0 + 1
        val = np.zeros((n, dg, p, cpg), f32)
        for yc, xc, wt in ((y0, x0, hy * hx), (y0, x1, hy * lx), (y1, x0, ly * hx), (y1, x1, ly * lx)):
            ok = inside & (yc >= 0) & (yc <= h - 1) & (xc >= 0) & (xc <= w - 1)
            idx = np.where(ok, yc, 0) * w + np.where(ok, xc, 0)
            wt = np.where(ok, wt, zero)  # a corner outside the map reads 0: its term is exactly 0
            for b in range(n):
                for gi in range(dg):
                    sample = rows[b, gi][idx[b, gi]]
                    val[b, gi] += np.multiply(sample, wt[b, gi, :, None], out=sample)
        val *= mod[:, :, k, :, None]
        cols[:, :, :, k] = val.transpose(0, 2, 1, 3).reshape(n, p, c)
    if half:
        cols = cols.astype(np.float16).astype(f32)
    out = np.empty((n, cout, p), f32)
    og = cout // group
    kernel = weight.reshape(group, og, cg * taps)
    for b in range(n):
        flat_cols = cols[b].reshape(p, c * taps)
        for gi in range(group):
            part = flat_cols[:, gi * cg * taps:(gi + 1) * cg * taps]
            out[b, gi * og:(gi + 1) * og] = (part @ kernel[gi].T).T
    if bias is not None:
        out += np.asarray(bias, f32)[None, :, None]
    return out.reshape(out_shape)
