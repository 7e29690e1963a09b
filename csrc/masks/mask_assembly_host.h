// Mask assembly, the CUDA-free half of the API: the arguments, their check, the workspace
// size and the CPU twin. Plain C++ (the pybind11 module, tests) includes this; code that
// launches the kernels includes mask_assembly.h, which adds the CUDA launcher.
//
// What is computed (upstream layers/output_utils.postprocess, UPSTREAM_NOTES item 10):
//   lowres[d]  = sigmoid(protos @ coeffs[d]) on the prototype grid, zero outside the box
//                padded by one cell (float bounds, x1 <= i < x2)
//   prob[d]    = bilinear resize of lowres[d] to the frame (align_corners=False, no antialias)
//   mask[d]    = prob[d] > threshold   (uint8 0/1)
#pragma once

#include <cstddef>
#include <cstdint>

namespace trtnet {
namespace masks {

enum class DType : int { kFloat32 = 0, kFloat16 = 1 };

// What launchAssemble / assembleHost write per detection and frame pixel.
enum class Output : int {
    kMaskU8 = 0,   // uint8 0/1: prob > threshold (what Instances hold)
    kProbF32 = 1,  // float32 prob before the threshold (debugging, tests)
};

struct MaskAssemblyArgs {
    // Prototypes of ONE image, NHWC [protoH, protoW, numProtos] contiguous: the network's
    // `proto` output (names.py) without its batch of 1 (for batch b pass proto + b * HWK).
    const void* protos = nullptr;
    DType protoType = DType::kFloat32;
    int protoH = 138, protoW = 138, numProtos = 32;

    // Detections, contiguous: coeffs [numDetections, numProtos] (detType), boxes
    // [numDetections, 4] (detType) relative x1, y1, x2, y2 as Fast NMS writes them (any
    // order of the two corners; upstream takes min/max).
    const void* coeffs = nullptr;
    const void* boxes = nullptr;
    DType detType = DType::kFloat32;
    int numDetections = 0;  // capacity: detections [0, numDetections) may be assembled

    // Optional int32 detection count in the memory space of the other inputs (device for
    // launchAssemble, host for assembleHost), e.g. Fast NMS's `count` output: only
    // detections d < min(*count, numDetections) are written, the others' output is left
    // untouched. Lets a CUDA graph assemble without reading the count on the host.
    // nullptr: all numDetections.
    const int32_t* count = nullptr;

    // Frame size (the original image, any size >= 1x1) and the output: for detection d,
    // row y, column x the element at (char*)out + d * maskPitch + y * rowPitch + x * elem
    // (elem = 1 for kMaskU8, 4 for kProbF32). rowPitch >= frameW * elem, maskPitch >=
    // frameH * rowPitch (a cudaMallocPitch / cv::Mat stride works); kProbF32 pitches are
    // multiples of 4.
    int frameH = 0, frameW = 0;
    void* out = nullptr;
    std::size_t rowPitch = 0;
    std::size_t maskPitch = 0;
    Output output = Output::kMaskU8;

    float threshold = 0.5f;  // mask = prob > threshold (strictly, as upstream)
    bool crop = true;        // upstream crop_masks (True in every released config)
};

// "" when args are valid (sizes, pitches, pointers), otherwise what is wrong.
const char* checkArgs(const MaskAssemblyArgs& args);

// Workspace bytes launchAssemble / assembleHost need for up to maxDetections detections
// on a protoH x protoW grid (independent of the frame size; 256-byte aligned start).
std::size_t workspaceSize(int maxDetections, int protoH = 138, int protoW = 138);

// CPU twin: the same math as the kernels (same headers), bit for bit. `workspace`: host
// memory of workspaceSize(args.numDetections, args.protoH, args.protoW) bytes, or nullptr
// to allocate internally. Returns 0, or -1 when checkArgs fails.
int assembleHost(const MaskAssemblyArgs& args, void* workspace = nullptr);

// Stage 1 alone (tests): lowres [n, protoH, protoW] float32 cropped sigmoid masks, n =
// min(count, numDetections). Returns 0 or -1 (checkArgs; frame/out fields are ignored).
int lowresHost(const MaskAssemblyArgs& args, float* lowres);

}  // namespace masks
}  // namespace trtnet
