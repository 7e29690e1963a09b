// Mask assembly on the GPU: detections + prototypes -> instance masks at the frame's size.
// The public C++ API the runtime (csrc/runtime) calls; see mask_assembly_host.h for the
// arguments, what is computed, and the CPU twin.
//
//   MaskAssemblyArgs a;  a.protos = proto; a.coeffs = coeffs; a.boxes = boxes;
//   a.numDetections = 100; a.count = d_count; a.frameH = 720; a.frameW = 1280;
//   a.out = d_masks; a.rowPitch = 1280; a.maskPitch = 1280 * 720;
//   cudaMalloc(&ws, trtnet::masks::workspaceSize(100));            // once per capacity
//   cudaError_t e = trtnet::masks::launchAssemble(a, ws, stream);  // no sync, no allocation
#pragma once

#include <cuda_runtime_api.h>

#include "mask_assembly_host.h"

namespace trtnet {
namespace masks {

// Enqueue the assembly on `stream`: no allocation, no synchronisation, capturable in a
// CUDA graph. `workspace`: device memory of at least workspaceSize(args.numDetections,
// args.protoH, args.protoW) bytes, 256-byte aligned (cudaMalloc's are). All pointers in
// args are device pointers. Returns cudaErrorInvalidValue when checkArgs(args) fails (the
// reason is checkArgs' text), otherwise the launch's error (cudaSuccess).
cudaError_t launchAssemble(const MaskAssemblyArgs& args, void* workspace, cudaStream_t stream);

}  // namespace masks
}  // namespace trtnet
