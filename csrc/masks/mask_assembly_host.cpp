// Mask assembly CPU twin: the kernels' math (mask_assembly.cuh) in plain loops, plus the
// argument check and the workspace size both sides share.
#include <cstring>
#include <limits>
#include <vector>

#include "mask_assembly.cuh"
#include "mask_assembly_host.h"

// x86-64 builds without -mfma would call libm's fmaf (~20 ns each, dozens per cell): the two
// loops are cloned for FMA-capable CPUs and picked at load time (an ifunc), with everything
// they call inlined (flatten) so the clone's std::fma is one instruction. Same results: fma is
// exact either way. Elsewhere (aarch64 has FMA; sanitizer builds) plain functions.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
#define TRTNET_FMA_CLONES __attribute__((target_clones("fma", "default"), flatten))
#else
#define TRTNET_FMA_CLONES
#endif

namespace trtnet {
namespace masks {

namespace {

constexpr int kMaxFrameSide = 1 << 15;  // 32768: grid and index arithmetic stay in int
constexpr int kMaxDetections = 65535;   // one CUDA grid z per detection
constexpr int kMaxProtoSide = 4096;

std::size_t element_size(Output o) { return o == Output::kMaskU8 ? 1 : 4; }

std::size_t round_up(std::size_t v, std::size_t a) { return (v + a - 1) / a * a; }

}  // namespace

const char* checkArgs(const MaskAssemblyArgs& a) {
    if (a.protoType != DType::kFloat32 && a.protoType != DType::kFloat16) return "protoType must be kFloat32 or kFloat16";
    if (a.detType != DType::kFloat32 && a.detType != DType::kFloat16) return "detType must be kFloat32 or kFloat16";
    if (a.output != Output::kMaskU8 && a.output != Output::kProbF32) return "output must be kMaskU8 or kProbF32";
    if (a.protoH < 1 || a.protoW < 1 || a.protoH > kMaxProtoSide || a.protoW > kMaxProtoSide)
        return "protoH and protoW must be in [1, 4096]";
    if (a.numProtos < 1 || a.numProtos > kMaxProtos) return "numProtos must be in [1, 64]";
    if (a.numDetections < 0 || a.numDetections > kMaxDetections) return "numDetections must be in [0, 65535]";
    if (a.frameH < 1 || a.frameW < 1 || a.frameH > kMaxFrameSide || a.frameW > kMaxFrameSide)
        return "frameH and frameW must be in [1, 32768]";
    if (!(a.threshold == a.threshold)) return "threshold is NaN";
    if (a.numDetections == 0) return "";
    if (a.protos == nullptr || a.coeffs == nullptr || a.boxes == nullptr || a.out == nullptr)
        return "protos, coeffs, boxes and out must not be null";
    const auto misaligned = [](const void* p, DType t) {
        return reinterpret_cast<std::uintptr_t>(p) % (t == DType::kFloat32 ? 4 : 2) != 0;
    };
    if (misaligned(a.protos, a.protoType) || misaligned(a.coeffs, a.detType) || misaligned(a.boxes, a.detType))
        return "protos, coeffs and boxes must be aligned to their element size";
    if (a.count != nullptr && reinterpret_cast<std::uintptr_t>(a.count) % 4 != 0) return "count must be 4-byte aligned";
    const std::size_t elem = element_size(a.output);
    if (a.rowPitch < std::size_t(a.frameW) * elem) return "rowPitch is smaller than frameW * element size";
    if (a.frameH > 0 && a.rowPitch > std::numeric_limits<std::size_t>::max() / std::size_t(a.frameH))
        return "rowPitch * frameH overflows";
    if (a.maskPitch < std::size_t(a.frameH) * a.rowPitch) return "maskPitch is smaller than frameH * rowPitch";
    if (elem == 4 && (a.rowPitch % 4 != 0 || a.maskPitch % 4 != 0 || reinterpret_cast<std::uintptr_t>(a.out) % 4 != 0))
        return "kProbF32 needs 4-byte aligned out, rowPitch and maskPitch";
    return "";
}

std::size_t workspaceSize(int maxDetections, int protoH, int protoW) {
    if (maxDetections <= 0 || protoH <= 0 || protoW <= 0) return 0;
    return round_up(std::size_t(maxDetections) * std::size_t(protoH) * std::size_t(protoW) * sizeof(float), 256);
}

namespace {

template <typename TP, typename TD>
void lowres_all(const MaskAssemblyArgs& a, int n, float* lowres, bool ring_only) {
    const TP* protos = static_cast<const TP*>(a.protos);
    const TD* coeffs = static_cast<const TD*>(a.coeffs);
    const TD* boxes = static_cast<const TD*>(a.boxes);
    const long long plane = (long long)a.protoH * a.protoW;
    float c[kMaxProtos];
    for (int d = 0; d < n; ++d) {
        for (int k = 0; k < a.numProtos; ++k) c[k] = to_float(coeffs[(long long)d * a.numProtos + k]);
        const Crop crop = crop_of(boxes + 4LL * d, a.protoH, a.protoW, a.crop);
        const Range ry = ring_only ? ring(crop.y, a.protoH) : Range{0, a.protoH};
        const Range rx = ring_only ? ring(crop.x, a.protoW) : Range{0, a.protoW};
        for (int y = ry.begin; y < ry.end; ++y) {
            for (int x = rx.begin; x < rx.end; ++x) {
                const long long cell = (long long)y * a.protoW + x;
                float p[kMaxProtos];
                load_cell(protos + cell * a.numProtos, a.numProtos, p);
                const float s = sigmoid(dot(p, c, a.numProtos));
                lowres[d * plane + cell] = cropped(s, inside(crop.y, y) && inside(crop.x, x));
            }
        }
    }
}

TRTNET_FMA_CLONES void lowres_dispatch(const MaskAssemblyArgs& a, int n, float* lowres, bool ring_only) {
    const bool p32 = a.protoType == DType::kFloat32, d32 = a.detType == DType::kFloat32;
    if (p32 && d32) lowres_all<float, float>(a, n, lowres, ring_only);
    else if (p32) lowres_all<float, half_t>(a, n, lowres, ring_only);
    else if (d32) lowres_all<half_t, float>(a, n, lowres, ring_only);
    else lowres_all<half_t, half_t>(a, n, lowres, ring_only);
}

template <typename TD>
void resize_all(const MaskAssemblyArgs& a, int n, const float* lowres) {
    const TD* boxes = static_cast<const TD*>(a.boxes);
    const long long plane = (long long)a.protoH * a.protoW;
    const float sx = resize_scale(a.protoW, a.frameW), sy = resize_scale(a.protoH, a.frameH);
    std::vector<Tap> taps_x(a.frameW);
    for (int x = 0; x < a.frameW; ++x) taps_x[x] = linear_tap(x, a.protoW, a.frameW, sx);
    for (int d = 0; d < n; ++d) {
        const Crop crop = crop_of(boxes + 4LL * d, a.protoH, a.protoW, a.crop);
        for (int y = 0; y < a.frameH; ++y) {
            const Tap ty = linear_tap(y, a.protoH, a.frameH, sy);
            const bool row_in = tap_inside(crop.y, ty);
            unsigned char* row = static_cast<unsigned char*>(a.out) + d * a.maskPitch + y * a.rowPitch;
            if (!row_in) {  // no tap inside the crop on this row: every pixel is 0 (0.0f is all-zero bytes)
                std::memset(row, 0, std::size_t(a.frameW) * element_size(a.output));
                continue;
            }
            for (int x = 0; x < a.frameW; ++x) {
                const float v = pixel_value(lowres + d * plane, a.protoW, crop, row_in, ty, taps_x[x]);
                if (a.output == Output::kMaskU8) row[x] = binarize(v, a.threshold);
                else reinterpret_cast<float*>(row)[x] = v;
            }
        }
    }
}

TRTNET_FMA_CLONES void resize_dispatch(const MaskAssemblyArgs& a, int n, const float* lowres) {
    if (a.detType == DType::kFloat32) resize_all<float>(a, n, lowres);
    else resize_all<half_t>(a, n, lowres);
}

}  // namespace

int lowresHost(const MaskAssemblyArgs& args, float* lowres) {
    MaskAssemblyArgs a = args;  // the frame / output fields are not used here
    a.frameH = a.frameW = 1;
    a.output = Output::kMaskU8;
    a.rowPitch = a.maskPitch = 1;
    a.out = lowres;
    if (*checkArgs(a) != '\0') return -1;
    lowres_dispatch(a, valid_detections(a.count, a.numDetections), lowres, /*ring_only=*/false);
    return 0;
}

int assembleHost(const MaskAssemblyArgs& a, void* workspace) {
    if (*checkArgs(a) != '\0') return -1;
    const int n = valid_detections(a.count, a.numDetections);
    if (n == 0) return 0;
    std::vector<float> own;
    float* lowres = static_cast<float*>(workspace);
    if (lowres == nullptr) {
        // Cells outside each detection's crop ring are never computed nor read; the poison
        // (no sigmoid is 4) would turn any such read into a visible mask pixel in the tests.
        own.assign(workspaceSize(a.numDetections, a.protoH, a.protoW) / sizeof(float), 4.0f);
        lowres = own.data();
    }
    lowres_dispatch(a, n, lowres, /*ring_only=*/true);
    resize_dispatch(a, n, lowres);
    return 0;
}

}  // namespace masks
}  // namespace trtnet
