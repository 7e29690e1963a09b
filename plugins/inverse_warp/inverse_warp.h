// InverseWarp entry points: the CPU twin and the CUDA launcher (declared without CUDA
// headers so plain C++ code, e.g. the pybind11 module, can include this).
#pragma once

#include <cstddef>

namespace trtnet {
namespace warp {

enum class DType : int { kFloat32 = 0, kFloat16 = 1 };

// Shapes: feature/out [n,c,h,w], flow [n,2,h,w], scale [scale_n,scale_c,h,w] (nullptr
// = none), bias [bias_n,bias_c,h,w] (nullptr = none); scale_n/bias_n in {1,n},
// scale_c/bias_c in {1,c}. All tensors of one dtype, contiguous NCHW.
struct Shape {
    int n, c, h, w;
    int scale_n, scale_c, bias_n, bias_c;
};

// CPU twin: loops over every output element. Returns 0, or -1 for a bad shape.
int inverse_warp_host(DType dtype, const Shape& s, float flow_divisor, const void* feature,
                      const void* flow, const void* scale, const void* bias, void* out);

// CUDA launch on `stream` (a cudaStream_t); no allocation, no synchronisation.
// Returns 0, -1 for a bad shape, or the cudaError_t of the launch.
int inverse_warp_launch(DType dtype, const Shape& s, float flow_divisor, const void* feature,
                        const void* flow, const void* scale, const void* bias, void* out,
                        void* stream);

// "" when the shape is valid, otherwise what is wrong with it.
const char* inverse_warp_check(const Shape& s, float flow_divisor);

}  // namespace warp
}  // namespace trtnet
