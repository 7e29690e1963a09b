// InverseWarp CPU twin: the kernel's math (inverse_warp.cuh) in plain loops.
#include <cmath>

#include "inverse_warp.cuh"
#include "inverse_warp.h"

namespace trtnet {
namespace warp {

const char* inverse_warp_check(const Shape& s, float flow_divisor) {
    if (s.n < 0 || s.c < 0 || s.h < 0 || s.w < 0) return "negative dimension";
    if (s.scale_n != 1 && s.scale_n != s.n) return "scale batch must be 1 or N";
    if (s.scale_c != 1 && s.scale_c != s.c) return "scale channels must be 1 or C";
    if (s.bias_n != 1 && s.bias_n != s.n) return "bias batch must be 1 or N";
    if (s.bias_c != 1 && s.bias_c != s.c) return "bias channels must be 1 or C";
    if (!std::isfinite(flow_divisor) || flow_divisor == 0.0f) return "flow_divisor must be finite and non-zero";
    return "";
}

namespace {

template <typename T>
void run(const Shape& s, float flow_divisor, const T* feature, const T* flow, const T* scale,
         const T* bias, T* out) {
    const Params p = make_params(s.n, s.c, s.h, s.w, flow_divisor, scale != nullptr, s.scale_n,
                                 s.scale_c, bias != nullptr, s.bias_n, s.bias_c);
    const long long plane = (long long)s.h * s.w;
    for (int n = 0; n < s.n; ++n) {
        const T* fx = flow + (long long)n * 2 * plane;
        const T* fy = fx + plane;
        for (int y = 0; y < s.h; ++y) {
            for (int x = 0; x < s.w; ++x) {
                const int pix = y * s.w + x;
                const Taps t = taps_at(p, x, y, to_float(fx[pix]), to_float(fy[pix]));
                for (int c = 0; c < s.c; ++c) {
                    const long long base = ((long long)n * s.c + c) * plane;
                    const float v = sample(feature + base, t);
                    out[base + pix] = from_float<T>(apply_scale_bias(p, v, scale, bias, n, c, pix));
                }
            }
        }
    }
}

}  // namespace

int inverse_warp_host(DType dtype, const Shape& s, float flow_divisor, const void* feature,
                      const void* flow, const void* scale, const void* bias, void* out) {
    if (*inverse_warp_check(s, flow_divisor) != '\0') return -1;
    if (dtype == DType::kFloat32) {
        run(s, flow_divisor, static_cast<const float*>(feature), static_cast<const float*>(flow),
            static_cast<const float*>(scale), static_cast<const float*>(bias), static_cast<float*>(out));
    } else {
        run(s, flow_divisor, static_cast<const half_t*>(feature), static_cast<const half_t*>(flow),
            static_cast<const half_t*>(scale), static_cast<const half_t*>(bias), static_cast<half_t*>(out));
    }
    return 0;
}

}  // namespace warp
}  // namespace trtnet
