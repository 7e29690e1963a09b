// FastNMS entry points: CPU twin, workspace size and CUDA launcher (no CUDA headers).
#pragma once

#include <cstddef>
#include <cstdint>

namespace trtnet {
namespace nms {

enum class DType : int { kFloat32 = 0, kFloat16 = 1 };

struct Settings {
    int top_k = 200;
    float conf_thresh = 0.05f;
    float nms_thresh = 0.5f;
    int max_det = 100;
    int background_class = 0;
};

// Tensors (contiguous): boxes [n,a,4], scores [n,a,c], coeffs [n,a,k] of `dtype`;
// outputs count int32 [n], out_boxes [n,max_det,4], out_scores [n,max_det],
// out_classes int32 [n,max_det], out_coeffs [n,max_det,k].
struct Tensors {
    const void* boxes;
    const void* scores;
    const void* coeffs;
    int32_t* count;
    void* out_boxes;
    void* out_scores;
    int32_t* out_classes;
    void* out_coeffs;
};

// "" when the sizes and settings are valid, otherwise what is wrong.
const char* fast_nms_check(int n, int a, int c, int k, const Settings& s);

// CPU twin. Returns 0 or -1 (invalid: see fast_nms_check).
int fast_nms_host(DType dtype, int n, int a, int c, int k, const Settings& s, const Tensors& t);

// Device workspace bytes for these sizes (the plugin asks at build time with max dims).
size_t fast_nms_workspace_size(int n, int a, int c, const Settings& s);

// CUDA launch on `stream` (cudaStream_t) using `workspace` (>= fast_nms_workspace_size).
// Returns 0, -1 for invalid sizes, or the cudaError_t of a launch.
int fast_nms_launch(DType dtype, int n, int a, int c, int k, const Settings& s, const Tensors& t,
                    void* workspace, void* stream);

}  // namespace nms
}  // namespace trtnet
