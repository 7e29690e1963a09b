// Mask assembly CUDA kernels: two launches on one stream, no allocation, no host sync.
//
// 1. lowres_kernel: one thread per prototype cell, a block per 128 cells x 32 detections.
//    The cell's K prototype values stay in registers; the block's coefficients and crop
//    rectangles sit in shared memory. Each thread writes sigmoid(p . c) * crop for the cells
//    of the crop grown by one (the only cells a resize tap can read) into the workspace
//    [capacity, Hp, Wp] float32. A direct FMA chain rather than cuBLAS: the product is only
//    N x 19044 x 32 (0.12 GFLOP at N = 100), the crop skips most cells, the sigmoid and
//    crop fuse into it, the summation order is fixed (bit-exact with the CPU twin and
//    upstream), and there is no cuBLAS handle, workspace or library to ship.
// 2. resize_kernel: a thread per 16 consecutive output pixels of one row, a block per
//    512 x 4 pixels x 8 detections. Column taps computed once per block (shared memory),
//    bilinear taps from the workspace (L1/L2 resident: 76 KB per detection), threshold, one
//    16-byte store. Pixels with no tap inside the crop are written 0 without reading. This
//    pass is bound by the output write (N x H x W bytes).
#include <cuda_runtime.h>

#include "mask_assembly.cuh"
#include "mask_assembly.h"

namespace trtnet {
namespace masks {
namespace {

constexpr int kCellsPerBlock = 128;
constexpr int kDetsPerLowresBlock = 32;
constexpr int kChunk = 16;  // output pixels per thread (one 16-byte store of a binary mask)
constexpr int kResizeBlockX = 32;
constexpr int kResizeBlockY = 4;
constexpr int kDetsPerResizeBlock = 8;

template <typename TP, typename TD>
__global__ void __launch_bounds__(kCellsPerBlock)
lowres_kernel(const TP* __restrict__ protos, const TD* __restrict__ coeffs, const TD* __restrict__ boxes,
              const int32_t* __restrict__ count, int capacity, int proto_h, int proto_w, int num_protos,
              bool crop, float* __restrict__ lowres) {
    __shared__ float s_coeff[kDetsPerLowresBlock * kMaxProtos];
    __shared__ Crop s_crop[kDetsPerLowresBlock];
    const int d0 = blockIdx.y * kDetsPerLowresBlock;
    const int n = valid_detections(count, capacity);
    if (d0 >= n) return;  // the whole block: before any barrier
    const int dets = min(kDetsPerLowresBlock, n - d0);
    for (int i = threadIdx.x; i < dets * num_protos; i += kCellsPerBlock) {
        s_coeff[i] = to_float(coeffs[(long long)d0 * num_protos + i]);
    }
    for (int i = threadIdx.x; i < dets; i += kCellsPerBlock) {
        s_crop[i] = crop_of(boxes + 4LL * (d0 + i), proto_h, proto_w, crop);
    }
    __syncthreads();
    const int plane = proto_h * proto_w;
    const int cell = blockIdx.x * kCellsPerBlock + threadIdx.x;
    if (cell >= plane) return;
    const int y = cell / proto_w, x = cell - y * proto_w;
    bool needed = false;  // small boxes: most cells lie in no crop ring of the block's detections
    for (int i = 0; i < dets; ++i) {
        needed = needed || (inside(ring(s_crop[i].y, proto_h), y) && inside(ring(s_crop[i].x, proto_w), x));
    }
    if (!needed) return;
    float p[kMaxProtos];
    load_cell(protos + (long long)cell * num_protos, num_protos, p);
    for (int i = 0; i < dets; ++i) {
        const Crop c = s_crop[i];
        if (!inside(ring(c.y, proto_h), y) || !inside(ring(c.x, proto_w), x)) continue;
        const float s = sigmoid(dot(p, s_coeff + i * num_protos, num_protos));
        lowres[(long long)(d0 + i) * plane + cell] = cropped(s, inside(c.y, y) && inside(c.x, x));
    }
}

struct ResizeParams {
    int capacity, proto_h, proto_w, frame_h, frame_w;
    float scale_y, scale_x, threshold;
    bool crop;
    std::size_t row_pitch, mask_pitch;
};

template <typename TD, bool kProb>
__global__ void __launch_bounds__(kResizeBlockX * kResizeBlockY)
resize_kernel(ResizeParams r, const TD* __restrict__ boxes, const int32_t* __restrict__ count,
              const float* __restrict__ lowres, unsigned char* __restrict__ out) {
    // The block's column taps, computed once and used for its 4 rows x 8 detections; stored
    // chunk-interleaved (pixel i of thread x at [i][x]) so a warp's reads hit distinct banks.
    __shared__ Tap s_tap[kChunk][kResizeBlockX];
    const int n = valid_detections(count, r.capacity);
    const int d_begin = blockIdx.z * kDetsPerResizeBlock;
    if (d_begin >= n) return;  // the whole block: before the barrier
    const int block_x = blockIdx.x * kResizeBlockX * kChunk;
    for (int j = threadIdx.y * kResizeBlockX + threadIdx.x; j < kResizeBlockX * kChunk;
         j += kResizeBlockX * kResizeBlockY) {
        if (block_x + j < r.frame_w) s_tap[j % kChunk][j / kChunk] = linear_tap(block_x + j, r.proto_w, r.frame_w, r.scale_x);
    }
    __syncthreads();
    const int y = blockIdx.y * kResizeBlockY + threadIdx.y;
    const int x0 = block_x + threadIdx.x * kChunk;
    if (y >= r.frame_h || x0 >= r.frame_w) return;
    const int width = min(kChunk, r.frame_w - x0);
    const Tap ty = linear_tap(y, r.proto_h, r.frame_h, r.scale_y);
    const int d_end = min(n, d_begin + kDetsPerResizeBlock);
    for (int d = d_begin; d < d_end; ++d) {
        const Crop c = crop_of(boxes + 4LL * d, r.proto_h, r.proto_w, r.crop);
        const bool row_in = tap_inside(c.y, ty);
        const float* m = lowres + (long long)d * r.proto_h * r.proto_w;
        unsigned char* row = out + d * r.mask_pitch + y * r.row_pitch;
        float v[kChunk];
        TRTNET_UNROLL
        for (int i = 0; i < kChunk; ++i) {
            v[i] = row_in && i < width ? pixel_value(m, r.proto_w, c, row_in, ty, s_tap[i][threadIdx.x]) : 0.0f;
        }
        if (kProb) {
            float* dst = reinterpret_cast<float*>(row) + x0;
            if (width == kChunk && reinterpret_cast<std::uintptr_t>(dst) % 16 == 0) {
                TRTNET_UNROLL
                for (int q = 0; q < kChunk / 4; ++q) {
                    reinterpret_cast<float4*>(dst)[q] = make_float4(v[4 * q], v[4 * q + 1], v[4 * q + 2], v[4 * q + 3]);
                }
            } else {
                for (int i = 0; i < width; ++i) dst[i] = v[i];
            }
        } else {
            unsigned char* dst = row + x0;
            if (width == kChunk && reinterpret_cast<std::uintptr_t>(dst) % 16 == 0) {
                uint32_t w[4] = {0, 0, 0, 0};
                TRTNET_UNROLL
                for (int i = 0; i < kChunk; ++i) w[i / 4] |= uint32_t(binarize(v[i], r.threshold)) << (8 * (i % 4));
                *reinterpret_cast<uint4*>(dst) = make_uint4(w[0], w[1], w[2], w[3]);  // little-endian bytes
            } else {
                for (int i = 0; i < width; ++i) dst[i] = binarize(v[i], r.threshold);
            }
        }
    }
}

template <typename TP, typename TD>
void launch_lowres(const MaskAssemblyArgs& a, float* lowres, cudaStream_t stream) {
    const dim3 grid((a.protoH * a.protoW + kCellsPerBlock - 1) / kCellsPerBlock,
                    (a.numDetections + kDetsPerLowresBlock - 1) / kDetsPerLowresBlock, 1);
    lowres_kernel<TP, TD><<<grid, kCellsPerBlock, 0, stream>>>(
        static_cast<const TP*>(a.protos), static_cast<const TD*>(a.coeffs), static_cast<const TD*>(a.boxes),
        a.count, a.numDetections, a.protoH, a.protoW, a.numProtos, a.crop, lowres);
}

template <typename TD>
void launch_resize(const MaskAssemblyArgs& a, const float* lowres, cudaStream_t stream) {
    ResizeParams r{a.numDetections, a.protoH, a.protoW, a.frameH, a.frameW,
                   resize_scale(a.protoH, a.frameH), resize_scale(a.protoW, a.frameW), a.threshold, a.crop,
                   a.rowPitch, a.maskPitch};
    const int pixels_per_block = kResizeBlockX * kChunk;
    const dim3 grid((a.frameW + pixels_per_block - 1) / pixels_per_block, (a.frameH + kResizeBlockY - 1) / kResizeBlockY,
                    (a.numDetections + kDetsPerResizeBlock - 1) / kDetsPerResizeBlock);
    const dim3 block(kResizeBlockX, kResizeBlockY, 1);
    unsigned char* out = static_cast<unsigned char*>(a.out);
    const TD* boxes = static_cast<const TD*>(a.boxes);
    if (a.output == Output::kProbF32) {
        resize_kernel<TD, true><<<grid, block, 0, stream>>>(r, boxes, a.count, lowres, out);
    } else {
        resize_kernel<TD, false><<<grid, block, 0, stream>>>(r, boxes, a.count, lowres, out);
    }
}

}  // namespace

cudaError_t launchAssemble(const MaskAssemblyArgs& a, void* workspace, cudaStream_t stream) {
    if (*checkArgs(a) != '\0' || (a.numDetections > 0 && workspace == nullptr)) return cudaErrorInvalidValue;
    if (a.numDetections == 0) return cudaSuccess;
    float* lowres = static_cast<float*>(workspace);
    const bool p32 = a.protoType == DType::kFloat32, d32 = a.detType == DType::kFloat32;
    if (p32 && d32) launch_lowres<float, float>(a, lowres, stream);
    else if (p32) launch_lowres<float, half_t>(a, lowres, stream);
    else if (d32) launch_lowres<half_t, float>(a, lowres, stream);
    else launch_lowres<half_t, half_t>(a, lowres, stream);
    if (d32) launch_resize<float>(a, lowres, stream);
    else launch_resize<half_t>(a, lowres, stream);
    return cudaGetLastError();
}

}  // namespace masks
}  // namespace trtnet
