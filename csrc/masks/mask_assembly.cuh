// Mask assembly math, shared by the CPU twin (mask_assembly_host.cpp) and the CUDA kernels
// (mask_assembly.cu): every float operation below is one IEEE operation with one rounding
// on both sides (device: explicit __f*_rn intrinsics, never contracted; host: build with
// -ffp-contract=off and std::fma where upstream fuses), so the twin and the kernels agree
// bit for bit.
//
// Reproducing upstream (PyTorch 2.x on x86 CPU, the reference data) bit for bit, measured
// against fastnms/masks_lowres_cropped_top5 and masks_prebin_top5 (tests/test_masks_cuda.py):
// - the 32-term dot product protos @ coeffs is a sequential fused multiply-add chain
//   (k = 0..K-1, as MKL / OpenBLAS sgemm accumulate one output);
// - sigmoid = 1 / (exp(0 - x) + 1) with exp as PyTorch's vectorised CPU kernel computes it
//   (SLEEF expf_u10: Cody-Waite reduction, degree-6 polynomial, FMA);
// - crop: float bounds min*size - 1 clamped at 0, max*size + 1 clamped at size, cell i kept
//   when lo <= i < hi; outside, upstream multiplies by 0 (so NaN stays NaN);
// - bilinear resize (F.interpolate, align_corners=False): scale = in / out in float, source
//   index fma(scale, dst + 0.5, -0.5) clamped at 0, taps floor / floor + 1 (clamped),
//   lambda = src - floor; value = fma(t0, w0, t1 * w1) along x, then the same along y
//   (PyTorch's upsample kernel, whose a * b + c * d the compiler contracts to one FMA);
//   equal sizes copy.
#pragma once

#include <cstdint>

#if !defined(__CUDA_ARCH__)
#include <cmath>
#endif

#include "common/hd.h"

namespace trtnet {
namespace masks {

constexpr int kMaxProtos = 64;  // numProtos <= this (YolactEdge: 32)

// ---- single-rounding float operations ----
TRTNET_HD float mul_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
    return __fmul_rn(a, b);
#else
    return a * b;
#endif
}
TRTNET_HD float add_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
    return __fadd_rn(a, b);
#else
    return a + b;
#endif
}
TRTNET_HD float sub_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
    return __fsub_rn(a, b);
#else
    return a - b;
#endif
}
TRTNET_HD float div_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
    return __fdiv_rn(a, b);
#else
    return a / b;
#endif
}
TRTNET_HD float fma_rn(float a, float b, float c) {
#if defined(__CUDA_ARCH__)
    return __fmaf_rn(a, b, c);
#else
    return std::fma(a, b, c);
#endif
}
TRTNET_HD float floor_f(float a) {
#if defined(__CUDA_ARCH__)
    return floorf(a);
#else
    return std::floor(a);
#endif
}
TRTNET_HD float ceil_f(float a) {
#if defined(__CUDA_ARCH__)
    return ceilf(a);
#else
    return std::ceil(a);
#endif
}
// Round to nearest, ties to even (cvtps2dq in SLEEF); |a| < 2^31 guaranteed by the caller.
TRTNET_HD int rint_to_int(float a) {
#if defined(__CUDA_ARCH__)
    return __float2int_rn(a);
#else
    return static_cast<int>(std::nearbyint(a));
#endif
}

// 2^q for -126 <= q <= 127, built from the exponent bits (SLEEF's pow2i).
TRTNET_HD float pow2i(int q) { return bits_to_float(uint32_t(q + 127) << 23); }

// e^d as SLEEF's expf_u10 computes it with FMA (PyTorch's Vectorized<float>::exp on AVX2 /
// AVX-512): q = rint(d / ln2); s = d - q*ln2 (two-part, fused); e^s by a degree-6
// polynomial; scaled by 2^q in two steps. d < -104 gives 0, d > 100 gives inf, NaN stays NaN.
TRTNET_HD float exp_sleef(float d) {
    if (is_nan(d)) return d;
    if (d < -104.0f) return 0.0f;
    if (d > 100.0f) return bits_to_float(0x7f800000u);
    const int q = rint_to_int(mul_rn(d, 1.442695040888963407359924681001892137426645954152985934135449406931f));
    const float qf = static_cast<float>(q);
    float s = fma_rn(qf, -0.693145751953125f, d);
    s = fma_rn(qf, -1.428606765330187045e-06f, s);
    float u = 0.000198527617612853646278381f;
    u = fma_rn(u, s, 0.00139304355252534151077271f);
    u = fma_rn(u, s, 0.00833336077630519866943359f);
    u = fma_rn(u, s, 0.0416664853692054748535156f);
    u = fma_rn(u, s, 0.166666671633720397949219f);
    u = fma_rn(u, s, 0.5f);
    u = add_rn(1.0f, fma_rn(mul_rn(s, s), u, s));
    const int h = q >> 1;  // q in [-150, 145]: both factors are normal powers of two
    return mul_rn(mul_rn(u, pow2i(h)), pow2i(q - h));
}

// torch.sigmoid on CPU: (0 - x).exp() + 1, then the reciprocal 1 / that.
TRTNET_HD float sigmoid(float x) { return div_rn(1.0f, add_rn(exp_sleef(sub_rn(0.0f, x)), 1.0f)); }

#if defined(__CUDA_ARCH__)  // the device pass (the host pass of nvcc is g++)
#define TRTNET_UNROLL _Pragma("unroll")
#else
#define TRTNET_UNROLL
#endif

// One prototype cell's K values as floats, zero-padded to kMaxProtos (unrolled so that the
// kernel keeps them in registers).
template <typename TP>
TRTNET_HD void load_cell(const TP* proto_cell, int k_count, float (&p)[kMaxProtos]) {
    TRTNET_UNROLL
    for (int k = 0; k < kMaxProtos; ++k) p[k] = k < k_count ? to_float(proto_cell[k]) : 0.0f;
}

// protos[cell] . coeffs[d]: one FMA chain over k = 0..k_count-1, starting from 0.
TRTNET_HD float dot(const float (&p)[kMaxProtos], const float* coeff, int k_count) {
    float acc = 0.0f;
    TRTNET_UNROLL
    for (int k = 0; k < kMaxProtos; ++k) {
        if (k < k_count) acc = fma_rn(p[k], coeff[k], acc);
    }
    return acc;
}

// ---- crop (upstream box_utils.crop with sanitize_coordinates(padding=1, cast=False)) ----

// Cells begin <= i < end of one axis are inside the crop (the float bounds lo <= i < hi as
// integers: i >= lo <=> i >= ceil(lo); i < hi <=> i < ceil(hi) for integer i).
struct Range {
    int begin, end;
};

TRTNET_HD Range crop_range(float a, float b, int size) {
    const float n = static_cast<float>(size);
    const float pa = mul_rn(a, n), pb = mul_rn(b, n);
    if (is_nan(pa) || is_nan(pb)) return Range{0, 0};  // torch.min/max propagate NaN: nothing inside
    float lo = sub_rn(pa < pb ? pa : pb, 1.0f);
    float hi = add_rn(pa < pb ? pb : pa, 1.0f);
    lo = lo < 0.0f ? 0.0f : (lo > n ? n : lo);  // clamp(min=0); beyond size nothing is inside
    hi = hi > n ? n : (hi < 0.0f ? 0.0f : hi);  // clamp(max=size); below 0 nothing is inside
    Range r{static_cast<int>(ceil_f(lo)), static_cast<int>(ceil_f(hi))};
    if (r.end < r.begin) r.end = r.begin;
    return r;
}

// The crop rectangle of one detection on the prototype grid (all cells when crop is off).
struct Crop {
    Range x, y;
};

template <typename TD>
TRTNET_HD Crop crop_of(const TD* box, int proto_h, int proto_w, bool crop) {
    if (!crop) return Crop{Range{0, proto_w}, Range{0, proto_h}};
    return Crop{crop_range(to_float(box[0]), to_float(box[2]), proto_w),
                crop_range(to_float(box[1]), to_float(box[3]), proto_h)};
}

TRTNET_HD bool inside(Range r, int i) { return i >= r.begin && i < r.end; }

// Cells whose value any output pixel with a tap inside the crop can read: the crop grown by
// one cell (a pixel's two taps per axis are neighbours), clipped to the grid; empty when the
// crop is empty (then every pixel is 0 without reading).
TRTNET_HD Range ring(Range r, int size) {
    if (r.end <= r.begin) return r;
    return Range{r.begin > 0 ? r.begin - 1 : 0, r.end < size ? r.end + 1 : size};
}

// Cropped value of one cell: upstream's sigmoid * crop_mask (1.0 inside, 0.0 outside).
TRTNET_HD float cropped(float s, bool in) { return in ? s : mul_rn(s, 0.0f); }

// ---- bilinear resize taps (PyTorch upsample_bilinear2d, align_corners=False) ----
struct Tap {
    int i0, i1;
    float w0, w1;
};

TRTNET_HD float resize_scale(int in_size, int out_size) {
    return div_rn(static_cast<float>(in_size), static_cast<float>(out_size));
}

TRTNET_HD Tap linear_tap(int dst, int in_size, int out_size, float scale) {
    if (in_size == out_size) return Tap{dst, dst, 1.0f, 0.0f};  // PyTorch copies
    float src = fma_rn(scale, add_rn(static_cast<float>(dst), 0.5f), -0.5f);
    if (src < 0.0f) src = 0.0f;
    int i0 = static_cast<int>(floor_f(src));
    if (i0 > in_size - 1) i0 = in_size - 1;
    float l1 = sub_rn(src, static_cast<float>(i0));
    l1 = l1 < 0.0f ? 0.0f : (l1 > 1.0f ? 1.0f : l1);
    return Tap{i0, i0 + (i0 < in_size - 1 ? 1 : 0), sub_rn(1.0f, l1), l1};
}

TRTNET_HD float blend(float t0, float w0, float t1, float w1) { return fma_rn(t0, w0, mul_rn(t1, w1)); }

// Upsampled value of one output pixel from a cropped low-resolution mask [h, w].
TRTNET_HD float resized_value(const float* lowres, int proto_w, Tap ty, Tap tx) {
    const float* r0 = lowres + static_cast<long long>(ty.i0) * proto_w;
    const float* r1 = lowres + static_cast<long long>(ty.i1) * proto_w;
    return blend(blend(r0[tx.i0], tx.w0, r0[tx.i1], tx.w1), ty.w0, blend(r1[tx.i0], tx.w0, r1[tx.i1], tx.w1), ty.w1);
}

// A pixel reads the mask only when a tap lies inside the crop on both axes; otherwise all
// its taps are outside (value 0 upstream, or NaN -> not > threshold) and its value is 0.
TRTNET_HD bool tap_inside(Range r, Tap t) { return inside(r, t.i0) || inside(r, t.i1); }

// Value of output pixel (row tap ty, column tap tx) of one detection; row_in =
// tap_inside(crop.y, ty), computed once per row.
TRTNET_HD float pixel_value(const float* lowres, int proto_w, const Crop& crop, bool row_in, Tap ty, Tap tx) {
    return row_in && tap_inside(crop.x, tx) ? resized_value(lowres, proto_w, ty, tx) : 0.0f;
}

TRTNET_HD unsigned char binarize(float v, float threshold) { return v > threshold ? 1 : 0; }

// Detections to assemble: min(*count, capacity), a negative count meaning none.
TRTNET_HD int valid_detections(const int32_t* count, int capacity) {
    if (count == nullptr) return capacity;
    const int32_t c = *count;
    return c < 0 ? 0 : (c < capacity ? c : capacity);
}

}  // namespace masks
}  // namespace trtnet
