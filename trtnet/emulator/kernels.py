"""NumPy math of the emulated layers, following TensorRT's documented semantics.

Floating-point layers compute in float32 (the caller rounds HALF results to
float16). Convolution is im2col (an ``as_strided`` view, one copy) plus one
matmul per group; 1x1 convolutions are a plain matmul; depthwise convolutions
accumulate ``kh * kw`` shifted slices over all channels at once.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from . import trt_types as trt  # the types; .trt (the recording module) re-exports them

# Bytes of one im2col band (rows of output x C*kh*kw): bounds the im2col copy; bigger bands keep GEMMs efficient.
_IM2COL_BAND_BYTES = 32 << 20


def _pad_nchw(x: np.ndarray, pre: tuple[int, ...], post: tuple[int, ...], value: float = 0.0) -> np.ndarray:
    if not any(pre) and not any(post):
        return x
    if min(pre) < 0 or min(post) < 0:
        raise ValueError(f"negative padding is not supported (pre {pre}, post {post})")
    widths = [(0, 0)] * (x.ndim - len(pre)) + list(zip(pre, post))
    return np.pad(x, widths, mode="constant", constant_values=value)


def conv_output_size(size: int, kernel: int, stride: int, pre: int, post: int, dilation: int) -> int:
    """TensorRT's EXPLICIT_ROUND_DOWN output size; -1 stays unknown (dynamic)."""
    if size < 0:
        return -1
    return (size + pre + post - dilation * (kernel - 1) - 1) // stride + 1


def conv2d(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, stride, pre, post, dilation,
           groups: int) -> np.ndarray:
    """2-D cross-correlation, NCHW x KCRS (TensorRT's kernel layout), float32."""
    n, c, _, _ = x.shape
    k, cg, kh, kw = w.shape
    if c != cg * groups or k % groups:
        raise ValueError(
            f"input has {c} channels, kernel {w.shape} with {groups} groups needs "
            f"{cg * groups} input channels and output maps divisible by the groups"
        )
    hp, wp = x.shape[2] + pre[0] + post[0], x.shape[3] + pre[1] + post[1]
    (sh, sw), (dh, dw) = stride, dilation
    ho = (hp - dh * (kh - 1) - 1) // sh + 1
    wo = (wp - dw * (kw - 1) - 1) // sw + 1
    if ho <= 0 or wo <= 0:
        raise ValueError(f"convolution output would be empty ({ho}x{wo}) for padded input {hp}x{wp}")
    kg = k // groups

    if groups == c and cg == 1 and k == c:  # depthwise: vectorised over channels
        x = _pad_nchw(x, pre, post)
        out = np.zeros((n, c, ho, wo), np.float32)
        tmp = np.empty_like(out)
        for i in range(kh):
            for j in range(kw):
                patch = x[:, :, i * dh: i * dh + (ho - 1) * sh + 1: sh, j * dw: j * dw + (wo - 1) * sw + 1: sw]
                np.multiply(patch, w[:, 0, i, j][None, :, None, None], out=tmp)
                out += tmp
    elif kh == 1 and kw == 1:
        x = _pad_nchw(x, pre, post)
        xs = x[:, :, : (ho - 1) * sh + 1: sh, : (wo - 1) * sw + 1: sw]
        if groups == 1:
            out = np.matmul(w.reshape(k, c), xs.reshape(n, c, ho * wo))
        else:
            out = np.empty((n, k, ho * wo), np.float32)
            for g in range(groups):
                out[:, g * kg:(g + 1) * kg] = np.matmul(
                    w[g * kg:(g + 1) * kg].reshape(kg, cg), xs[:, g * cg:(g + 1) * cg].reshape(n, cg, ho * wo))
    elif groups == 1 and sh == 1 and sw == 1:
        return _conv_shifted_gemm(x, w, b, pre, post, dilation, ho, wo)
    else:
        x = _pad_nchw(x, pre, post)
        out = np.empty((n, k, ho * wo), np.float32)
        s = x.strides
        cols = as_strided(x, shape=(n, c, kh, kw, ho, wo),
                          strides=(s[0], s[1], s[2] * dh, s[3] * dw, s[2] * sh, s[3] * sw), writeable=False)
        # im2col in bands of output rows that stay in cache while their matmul reads them.
        band = max(1, min(ho, _IM2COL_BAND_BYTES // max(1, cg * kh * kw * wo * 4)))
        wg = [w[g * kg:(g + 1) * kg].reshape(kg, cg * kh * kw) for g in range(groups)]
        for b_ in range(n):
            for r0 in range(0, ho, band):
                r1 = min(ho, r0 + band)
                for g in range(groups):
                    col = cols[b_, g * cg:(g + 1) * cg, :, :, r0:r1].reshape(cg * kh * kw, (r1 - r0) * wo)
                    out[b_, g * kg:(g + 1) * kg, r0 * wo:r1 * wo] = wg[g] @ col
    out = out.reshape(n, k, ho, wo)
    if b is not None:
        out += b.reshape(1, k, 1, 1)
    return out


def _conv_shifted_gemm(x, w, b, pre, post, dilation, ho, wo) -> np.ndarray:
    """Stride-1 convolution as kh*kw GEMMs on shifted windows of the flattened padded image.

    With the padded image flattened to [C, Hp*Wp], tap (i, j) reads the contiguous
    column range starting at i*dh*Wp + j*dw, so every GEMM runs on a strided view
    (no im2col copy); each output row carries Wp - Wo junk columns, cropped at the end.
    """
    n, c, h, wd = x.shape
    k, _, kh, kw = w.shape
    dh, dw = dilation
    hp, wp = h + pre[0] + post[0], wd + pre[1] + post[1]
    extra = (kw - 1) * dw
    taps = [np.ascontiguousarray(w[:, :, i, j]) for i in range(kh) for j in range(kw)]
    result = np.empty((n, k, ho, wo), np.float32)
    buf = np.zeros((c, hp * wp + extra), np.float32)
    acc = np.empty((k, ho * wp), np.float32)
    tmp = np.empty_like(acc)
    for b_ in range(n):
        buf[:, : hp * wp].reshape(c, hp, wp)[:, pre[0]: pre[0] + h, pre[1]: pre[1] + wd] = x[b_]
        for t, (i, j) in enumerate((i, j) for i in range(kh) for j in range(kw)):
            off = i * dh * wp + j * dw
            np.matmul(taps[t], buf[:, off: off + ho * wp], out=acc if t == 0 else tmp)
            if t:
                acc += tmp
        view = acc.reshape(k, ho, wp)[:, :, :wo]
        if b is not None:
            np.add(view, b.reshape(k, 1, 1), out=result[b_])
        else:
            result[b_] = view
    return result


def pool2d(x: np.ndarray, kind: trt.PoolingType, window, stride, pre, post, exclude_padding: bool) -> np.ndarray:
    """Max or average pooling over the last two axes (padding excluded from max)."""
    fill = -np.inf if kind == trt.PoolingType.MAX else 0.0
    xp = _pad_nchw(x, pre, post, fill)
    hp, wp = xp.shape[-2:]
    (kh, kw), (sh, sw) = window, stride
    ho, wo = (hp - kh) // sh + 1, (wp - kw) // sw + 1
    if ho <= 0 or wo <= 0:
        raise ValueError(f"pooling output would be empty ({ho}x{wo}) for padded input {hp}x{wp}")
    out = None
    for i in range(kh):
        for j in range(kw):
            patch = xp[..., i: i + (ho - 1) * sh + 1: sh, j: j + (wo - 1) * sw + 1: sw]
            if out is None:
                out = patch.copy()
            elif kind == trt.PoolingType.MAX:
                np.maximum(out, patch, out=out)
            else:
                out += patch
    if kind == trt.PoolingType.AVERAGE:
        if exclude_padding and (any(pre) or any(post)):
            ones = _pad_nchw(np.ones(x.shape[-2:], np.float32), pre, post)
            count = sum(ones[i: i + (ho - 1) * sh + 1: sh, j: j + (wo - 1) * sw + 1: sw]
                        for i in range(kh) for j in range(kw))
            out /= count
        else:
            out /= kh * kw
    return out


def _source_coordinates(out_len: int, in_len: int, transform: trt.ResizeCoordinateTransformation,
                        selector: trt.ResizeSelector) -> np.ndarray:
    """x_origin for every output index, the formulas of NvInfer.h (float32)."""
    x = np.arange(out_len, dtype=np.float32)
    if out_len == 1 and selector == trt.ResizeSelector.UPPER:
        return np.zeros(1, np.float32)
    if transform == trt.ResizeCoordinateTransformation.ALIGN_CORNERS:
        if out_len == 1:
            return np.zeros(1, np.float32)
        return x * np.float32((in_len - 1) / (out_len - 1))
    if transform == trt.ResizeCoordinateTransformation.ASYMMETRIC:
        return x * np.float32(in_len / out_len)
    return (x + np.float32(0.5)) * np.float32(in_len / out_len) - np.float32(0.5)


def _round(x: np.ndarray, mode: trt.ResizeRoundMode) -> np.ndarray:
    if mode == trt.ResizeRoundMode.FLOOR:
        return np.floor(x)
    if mode == trt.ResizeRoundMode.CEIL:
        return np.ceil(x)
    if mode == trt.ResizeRoundMode.HALF_UP:
        return np.floor(x + np.float32(0.5))
    return np.ceil(x - np.float32(0.5))  # HALF_DOWN


def resize_axis(x: np.ndarray, axis: int, out_len: int, mode: trt.InterpolationMode,
                transform: trt.ResizeCoordinateTransformation, selector: trt.ResizeSelector,
                rounding: trt.ResizeRoundMode) -> np.ndarray:
    """Resize one axis. LINEAR: lerp of the two neighbours of x_origin, indices clamped
    to [0, in_len - 1] (so a coordinate left of 0 reads element 0, as TensorRT and
    PyTorch's bilinear do). NEAREST: round x_origin with ``rounding``, then clamp."""
    in_len = x.shape[axis]
    src = _source_coordinates(out_len, in_len, transform, selector)
    if mode == trt.InterpolationMode.NEAREST:
        idx = np.clip(_round(src, rounding).astype(np.int64), 0, in_len - 1)
        return np.take(x, idx, axis=axis)
    if mode != trt.InterpolationMode.LINEAR:
        raise NotImplementedError(f"resize mode {mode} is not emulated (NEAREST and LINEAR are)")
    x0f = np.floor(src)
    frac = (src - x0f).astype(np.float32)
    x0 = x0f.astype(np.int64)
    i0 = np.clip(x0, 0, in_len - 1)
    i1 = np.clip(x0 + 1, 0, in_len - 1)
    shape = [1] * x.ndim
    shape[axis] = out_len
    frac = frac.reshape(shape)
    a = np.take(x, i0, axis=axis)
    b = np.take(x, i1, axis=axis)
    # a + (b - a) * frac, in place on the gathered copies.
    b -= a
    b *= frac
    a += b
    return a


def quantize(x: np.ndarray, scale: np.ndarray, axis: int) -> np.ndarray:
    """clamp(round_half_even(x / scale), -128, 127) as int8 (NvInfer.h IQuantizeLayer)."""
    s = _broadcast_scale(scale, x.ndim, axis)
    q = np.rint(x.astype(np.float32) / s)
    return np.clip(q, -128, 127).astype(np.int8)


def dequantize(q: np.ndarray, scale: np.ndarray, axis: int) -> np.ndarray:
    """q * scale in float32 (IDequantizeLayer, zero point 0)."""
    return q.astype(np.float32) * _broadcast_scale(scale, q.ndim, axis)


def _broadcast_scale(scale: np.ndarray, ndim: int, axis: int) -> np.ndarray:
    scale = scale.astype(np.float32)
    if scale.ndim == 0 or scale.size == 1 and scale.ndim <= 1:
        return scale.reshape(())
    shape = [1] * ndim
    shape[axis] = scale.size
    return scale.reshape(shape)


def reduce_axes(mask: int, ndim: int) -> tuple[int, ...]:
    """Axes of a TensorRT axes bitmask (bit i = axis i)."""
    if mask <= 0 or mask >= (1 << ndim):
        raise ValueError(f"axes bitmask {mask:#b} is not valid for a rank-{ndim} tensor")
    return tuple(i for i in range(ndim) if mask >> i & 1)


def softmax(x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    m = np.max(x, axis=axes, keepdims=True)
    e = np.exp(x - m)
    e /= np.sum(e, axis=axes, keepdims=True)
    return e
