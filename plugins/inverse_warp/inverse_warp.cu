// InverseWarp CUDA kernel: one thread per output pixel and a slice of channels.
//
// Threads run along x (coalesced reads of flow / scale / bias and writes of the output);
// the sample position and the four bilinear taps are computed once per pixel and reused
// for kChannelsPerThread channels. No atomics, no shared memory, no allocation.
#include <cuda_runtime.h>

#include "inverse_warp.cuh"
#include "inverse_warp.h"

namespace trtnet {
namespace warp {
namespace {

constexpr int kBlockX = 32;
constexpr int kBlockY = 4;
constexpr int kChannelsPerThread = 16;

template <typename T>
__global__ void __launch_bounds__(kBlockX * kBlockY)
inverse_warp_kernel(Params p, const T* __restrict__ feature, const T* __restrict__ flow,
                    const T* __restrict__ scale, const T* __restrict__ bias, T* __restrict__ out,
                    int channel_slices) {
    const int x = blockIdx.x * kBlockX + threadIdx.x;
    const int y = blockIdx.y * kBlockY + threadIdx.y;
    const int n = blockIdx.z / channel_slices;
    const int c_begin = (blockIdx.z % channel_slices) * kChannelsPerThread;
    if (x >= p.w || y >= p.h) return;
    const long long plane = (long long)p.h * p.w;
    const int pix = y * p.w + x;
    const T* fl = flow + (long long)n * 2 * plane;
    const Taps t = taps_at(p, x, y, to_float(fl[pix]), to_float(fl[plane + pix]));
    const int c_end = min(p.c, c_begin + kChannelsPerThread);
    for (int c = c_begin; c < c_end; ++c) {
        const long long base = ((long long)n * p.c + c) * plane;
        const float v = sample(feature + base, t);
        out[base + pix] = from_float<T>(apply_scale_bias(p, v, scale, bias, n, c, pix));
    }
}

template <typename T>
int launch(const Shape& s, float flow_divisor, const void* feature, const void* flow,
           const void* scale, const void* bias, void* out, cudaStream_t stream) {
    const Params p = make_params(s.n, s.c, s.h, s.w, flow_divisor, scale != nullptr, s.scale_n,
                                 s.scale_c, bias != nullptr, s.bias_n, s.bias_c);
    if (s.n == 0 || s.c == 0 || s.h == 0 || s.w == 0) return 0;
    const int slices = (s.c + kChannelsPerThread - 1) / kChannelsPerThread;
    const dim3 block(kBlockX, kBlockY, 1);
    const dim3 grid((s.w + kBlockX - 1) / kBlockX, (s.h + kBlockY - 1) / kBlockY, s.n * slices);
    inverse_warp_kernel<T><<<grid, block, 0, stream>>>(
        p, static_cast<const T*>(feature), static_cast<const T*>(flow), static_cast<const T*>(scale),
        static_cast<const T*>(bias), static_cast<T*>(out), slices);
    return static_cast<int>(cudaGetLastError());
}

}  // namespace

int inverse_warp_launch(DType dtype, const Shape& s, float flow_divisor, const void* feature,
                        const void* flow, const void* scale, const void* bias, void* out,
                        void* stream) {
    if (*inverse_warp_check(s, flow_divisor) != '\0') return -1;
    if ((long long)s.n * ((s.c + kChannelsPerThread - 1) / kChannelsPerThread) > 65535) return -1;
    cudaStream_t st = static_cast<cudaStream_t>(stream);
    return dtype == DType::kFloat32
               ? launch<float>(s, flow_divisor, feature, flow, scale, bias, out, st)
               : launch<half_t>(s, flow_divisor, feature, flow, scale, bias, out, st);
}

}  // namespace warp
}  // namespace trtnet
