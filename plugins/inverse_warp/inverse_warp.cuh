// InverseWarp math, shared by the host twin and the CUDA kernel.
//
// out[n,c,y,x] = bilinear(feature[n,c], ix, iy) * scale[n,c,y,x] + bias[n,c,y,x]
// with upstream YolactEdge's convention (layers/warp_utils.py deform_op, then
// grid_sample(bilinear, zeros, align_corners=True)):
//   gx = x * (2 / (W - 1)) - 1 + flow[n,0,y,x] / flow_divisor      (same for y, H, flow[n,1])
//   ix = (gx + 1) / 2 * (W - 1)
// A corner outside the map contributes 0. A non-finite or far-away position samples
// 0 (checked in float before any integer conversion). A 1-pixel axis uses a base grid
// step of 0. The float operations are done in the same order as
// trtnet/plugins/reference.py, one rounding each (build with FMA contraction off).
#pragma once

#include "../common/hd.h"

namespace trtnet {
namespace warp {

// Per-call constants: sizes, grid steps, broadcast strides of scale and bias.
struct Params {
    int n, c, h, w;
    float step_x, step_y;        // 2 / (W - 1), 2 / (H - 1) rounded to float; 0 for a 1-pixel axis
    float half_w1, half_h1;      // W - 1, H - 1 as float (named for the unnormalise step)
    float flow_divisor;
    // scale / bias element offset = n * n_stride + c * c_stride + y * W + x (0 strides broadcast)
    long long scale_n_stride, scale_c_stride;
    long long bias_n_stride, bias_c_stride;
    bool has_scale, has_bias;
};

// Sizes of an optional per-pixel parameter: [ns, cs, H, W] with ns in {1, N}, cs in {1, C}.
inline Params make_params(int n, int c, int h, int w, float flow_divisor,
                          bool has_scale, int scale_n, int scale_c,
                          bool has_bias, int bias_n, int bias_c) {
    Params p{};
    p.n = n; p.c = c; p.h = h; p.w = w;
    // Upstream computes 2/(w-1) in double (Python) and multiplies a float32 grid by it.
    p.step_x = w > 1 ? float(2.0 / double(w - 1)) : 0.0f;
    p.step_y = h > 1 ? float(2.0 / double(h - 1)) : 0.0f;
    p.half_w1 = float(w - 1);
    p.half_h1 = float(h - 1);
    p.flow_divisor = flow_divisor;
    const long long plane = (long long)h * w;
    p.has_scale = has_scale;
    p.scale_c_stride = (has_scale && scale_c != 1) ? plane : 0;
    p.scale_n_stride = (has_scale && scale_n != 1) ? plane * scale_c : 0;
    p.has_bias = has_bias;
    p.bias_c_stride = (has_bias && bias_c != 1) ? plane : 0;
    p.bias_n_stride = (has_bias && bias_n != 1) ? plane * bias_c : 0;
    return p;
}

// The four corners of one sample: flat offsets within a channel plane and weights
// (weight 0 and offset 0 for a corner outside the map).
struct Taps {
    int offset[4];    // nw, ne, sw, se
    float weight[4];
};

TRTNET_HD Taps taps_at(const Params& p, int x, int y, float flow_x, float flow_y) {
    Taps t;
    for (int k = 0; k < 4; ++k) { t.offset[k] = 0; t.weight[k] = 0.0f; }
    const float gx = (float(x) * p.step_x - 1.0f) + flow_x / p.flow_divisor;
    const float gy = (float(y) * p.step_y - 1.0f) + flow_y / p.flow_divisor;
    const float ix = (gx + 1.0f) / 2.0f * p.half_w1;
    const float iy = (gy + 1.0f) / 2.0f * p.half_h1;
    // NaN fails both comparisons; anything beyond one pixel outside has no corner inside.
    if (!(ix > -1.0f && ix < float(p.w) && iy > -1.0f && iy < float(p.h))) return t;
    const float x0f = floorf(ix), y0f = floorf(iy);
    const float fx = ix - x0f, fy = iy - y0f;
    const int x0 = int(x0f), y0 = int(y0f);
    const float wx[2] = {1.0f - fx, fx};
    const float wy[2] = {1.0f - fy, fy};
    int k = 0;
    for (int dy = 0; dy < 2; ++dy) {
        for (int dx = 0; dx < 2; ++dx, ++k) {
            const int xs = x0 + dx, ys = y0 + dy;
            if (xs >= 0 && xs < p.w && ys >= 0 && ys < p.h) {
                t.offset[k] = ys * p.w + xs;
                t.weight[k] = wx[dx] * wy[dy];
            }
        }
    }
    return t;
}

// One output value of channel plane `plane` (already offset to [n, c]).
template <typename T>
TRTNET_HD float sample(const T* plane, const Taps& t) {
    float acc = 0.0f;
    for (int k = 0; k < 4; ++k) acc = acc + to_float(plane[t.offset[k]]) * t.weight[k];
    return acc;
}

template <typename T>
TRTNET_HD float apply_scale_bias(const Params& p, float v, const T* scale, const T* bias,
                                 int n, int c, int pix) {
    if (p.has_scale) v = v * to_float(scale[n * p.scale_n_stride + c * p.scale_c_stride + pix]);
    if (p.has_bias) v = v + to_float(bias[n * p.bias_n_stride + c * p.bias_c_stride + pix]);
    return v;
}

}  // namespace warp
}  // namespace trtnet
