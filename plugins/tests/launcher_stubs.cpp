// Stand-ins for the CUDA launchers, for host-only test builds of the plugin code (no nvcc,
// no GPU): enqueue is never exercised there, and a call fails loudly with -1.
#include "fast_nms/fast_nms.h"
#include "inverse_warp/inverse_warp.h"

namespace trtnet {
namespace warp {
int inverse_warp_launch(DType, const Shape&, float, const void*, const void*, const void*, const void*, void*, void*) {
    return -1;
}
}  // namespace warp
namespace nms {
int fast_nms_launch(DType, int, int, int, int, const Settings&, const Tensors&, void*, void*) { return -1; }
}  // namespace nms
}  // namespace trtnet
