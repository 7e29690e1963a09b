// Shared by host twins (g++) and CUDA kernels (nvcc): the qualifier macro, float16
// storage, and the orderable float key used by every sort in trtnet's plugins.
//
// Nothing here needs the CUDA toolkit when compiled by a plain C++ compiler, so the
// host twins build on machines without nvcc.
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#include <cuda_fp16.h>
#define TRTNET_HD __host__ __device__ __forceinline__
#else
#define TRTNET_HD inline
#endif

namespace trtnet {

// IEEE binary16 storage: the bits only, so host code (NumPy float16, TensorRT kHALF)
// and device code agree on the layout without cuda_fp16.h on the host.
struct half_t {
    uint16_t bits;
};
static_assert(sizeof(half_t) == 2, "half_t must be 2 bytes");

TRTNET_HD float bits_to_float(uint32_t u) {
#if defined(__CUDA_ARCH__)
    return __uint_as_float(u);
#else
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
#endif
}

TRTNET_HD uint32_t float_to_bits(float f) {
#if defined(__CUDA_ARCH__)
    return __float_as_uint(f);
#else
    uint32_t u;
    std::memcpy(&u, &f, sizeof u);
    return u;
#endif
}

// binary16 -> binary32, exact (subnormals, inf, NaN included).
TRTNET_HD float half_to_float(half_t h) {
#if defined(__CUDA_ARCH__)
    return __half2float(__ushort_as_half(h.bits));
#else
    const uint32_t sign = (uint32_t(h.bits) & 0x8000u) << 16;
    uint32_t exp = (h.bits >> 10) & 0x1fu;
    uint32_t man = h.bits & 0x3ffu;
    if (exp == 0x1fu) return bits_to_float(sign | 0x7f800000u | (man << 13));  // inf / NaN
    if (exp == 0) {
        if (man == 0) return bits_to_float(sign);  // +-0
        // subnormal: value = man * 2^-24
        int e = -1;
        do { man <<= 1; ++e; } while ((man & 0x400u) == 0);
        man &= 0x3ffu;
        return bits_to_float(sign | (uint32_t(127 - 15 - e) << 23) | (man << 13));
    }
    return bits_to_float(sign | ((exp + (127 - 15)) << 23) | (man << 13));
#endif
}

// binary32 -> binary16, round to nearest even (what __float2half and NumPy do).
TRTNET_HD half_t float_to_half(float f) {
#if defined(__CUDA_ARCH__)
    return half_t{__half_as_ushort(__float2half_rn(f))};
#else
    const uint32_t u = float_to_bits(f);
    const uint16_t sign = uint16_t((u >> 16) & 0x8000u);
    const uint32_t abs = u & 0x7fffffffu;
    if (abs >= 0x7f800000u) {  // inf or NaN (keep NaN quiet and non-zero)
        return half_t{uint16_t(sign | 0x7c00u | (abs > 0x7f800000u ? 0x200u | ((abs >> 13) & 0x3ffu) : 0u))};
    }
    if (abs >= 0x477ff000u) return half_t{uint16_t(sign | 0x7c00u)};  // rounds to inf (>= 65520)
    if (abs < 0x38800000u) {  // below the smallest normal half 2^-14: subnormal or zero
        if (abs < 0x33000000u) return half_t{sign};  // < 2^-25 rounds to 0
        const uint32_t e = abs >> 23;
        const uint32_t man = (abs & 0x7fffffu) | 0x800000u;
        const uint32_t shift = 126u - e;  // 14 + (127 - 1 - 14) ... places man at 2^-24 units
        const uint32_t q = man >> shift;
        const uint32_t rem = man & ((1u << shift) - 1u);
        const uint32_t halfway = 1u << (shift - 1u);
        uint32_t r = q + ((rem > halfway || (rem == halfway && (q & 1u))) ? 1u : 0u);
        return half_t{uint16_t(sign | r)};
    }
    // normal: rebias exponent, round mantissa 23 -> 10 bits (carry may bump the exponent)
    uint32_t r = abs - ((127u - 15u) << 23);
    const uint32_t rem = r & 0x1fffu;
    r >>= 13;
    if (rem > 0x1000u || (rem == 0x1000u && (r & 1u))) ++r;
    return half_t{uint16_t(sign | r)};
#endif
}

// Typed load / store in float registers: all plugin math is float32.
TRTNET_HD float to_float(float v) { return v; }
TRTNET_HD float to_float(half_t v) { return half_to_float(v); }
template <typename T> TRTNET_HD T from_float(float v);
template <> TRTNET_HD float from_float<float>(float v) { return v; }
template <> TRTNET_HD half_t from_float<half_t>(float v) { return float_to_half(v); }

// Orderable key: a > b as floats  <=>  key(a) > key(b) as unsigned, with -0 == +0.
// Callers never pass NaN (NaN candidates are excluded before sorting).
TRTNET_HD uint32_t score_key(float s) {
    const uint32_t u = float_to_bits(s + 0.0f);  // -0 + 0 = +0
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

TRTNET_HD bool is_nan(float v) { return v != v; }

}  // namespace trtnet
