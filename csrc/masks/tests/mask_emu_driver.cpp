// Runs the mask assembly launcher (mask_assembly.cu compiled for the CPU through
// plugins/tests/cuda_emu/cuda_runtime.h) and the CPU twin on the same inputs and requires
// bit-identical output buffers, padding included (tests/test_masks_cuda_emulated.py).
// Cases: odd / tiny / equal-to-grid / large frames, padded and unaligned pitches, a device
// count below, above and below zero, fp16 inputs, crop off, degenerate / reversed / NaN
// boxes, non-finite prototypes, K = 7 and K = 64, both output kinds. The workspace is
// poisoned on both sides, so a read of a cell outside a detection's crop ring would show.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "common/hd.h"
#include "mask_assembly.h"

using trtnet::half_t;
namespace masks = trtnet::masks;

static int g_fail = 0;

struct Case {
    const char* name;
    unsigned seed;
    int dets, k, frame_h, frame_w;
    int count;               // -2: no count pointer
    std::size_t pitch_pad;   // extra bytes per row
    std::size_t pitch_misalign;  // added to the row pitch (0 keeps 16-byte rows when possible)
    bool crop = true;
    bool prob = false;
    bool fp16_protos = false, fp16_dets = false;
    bool specials = false;   // NaN / inf prototypes and odd boxes
    float threshold = 0.5f;
};

template <typename T>
static std::vector<unsigned char> as_bytes(const std::vector<float>& v) {
    std::vector<unsigned char> out(v.size() * sizeof(T));
    for (std::size_t i = 0; i < v.size(); ++i) {
        const T t = trtnet::from_float<T>(v[i]);
        std::memcpy(out.data() + i * sizeof(T), &t, sizeof(T));
    }
    return out;
}

static std::vector<unsigned char> typed(const std::vector<float>& v, bool fp16) {
    return fp16 ? as_bytes<half_t>(v) : as_bytes<float>(v);
}

// Proto grid hp x wp: small (few emulated blocks) except where the 138 grid matters.
static void run(const Case& c, int hp = 20, int wp = 24) {
    std::mt19937 rng(c.seed);
    std::normal_distribution<float> normal;
    std::uniform_real_distribution<float> uni(0.0f, 1.0f);
    std::vector<float> protos(std::size_t(hp) * wp * c.k), coeffs(std::size_t(c.dets) * c.k), boxes(std::size_t(c.dets) * 4);
    for (auto& v : protos) v = std::max(0.0f, normal(rng));  // after ReLU, like upstream
    for (auto& v : coeffs) v = std::tanh(normal(rng));
    for (int d = 0; d < c.dets; ++d) {
        const float x = uni(rng), y = uni(rng);
        boxes[4 * d] = x;
        boxes[4 * d + 1] = y;
        boxes[4 * d + 2] = x + uni(rng) * 0.5f;
        boxes[4 * d + 3] = y + uni(rng) * 0.5f;
    }
    if (c.specials) {
        const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
        protos[(std::size_t(hp / 2) * wp + wp / 2) * c.k] = nan;
        protos[(std::size_t(hp / 7) * wp + wp / 5) * c.k + 1] = inf;
        protos[(std::size_t(hp - 3) * wp + 5) * c.k] = 1e30f;
        const float odd[][4] = {{0.8f, 0.7f, 0.2f, 0.1f},   // corners swapped
                                {0.5f, 0.5f, 0.5f, 0.5f},   // zero size: exactly-integer bounds (138: 68 and 70)
                                {-3.0f, -1.0f, 4.0f, 9.0f}, // beyond the image
                                {nan, 0.1f, 0.3f, 0.4f},    // NaN: nothing inside
                                {1.2f, 0.2f, 1.5f, 0.6f},   // entirely right of the image
                                {0.0f, 0.0f, 1.0f, 1.0f}};  // the whole image
        for (int d = 0; d < c.dets && d < 6; ++d) std::memcpy(&boxes[4 * d], odd[d], sizeof odd[d]);
    }
    const auto P = typed(protos, c.fp16_protos), C = typed(coeffs, c.fp16_dets), B = typed(boxes, c.fp16_dets);
    const std::size_t elem = c.prob ? 4 : 1;
    const std::size_t row_pitch = std::size_t(c.frame_w) * elem + c.pitch_pad + c.pitch_misalign;
    const std::size_t mask_pitch = row_pitch * c.frame_h + 64;
    const int32_t count = c.count;

    masks::MaskAssemblyArgs a;
    a.protos = P.data();
    a.protoType = c.fp16_protos ? masks::DType::kFloat16 : masks::DType::kFloat32;
    a.protoH = hp;
    a.protoW = wp;
    a.numProtos = c.k;
    a.coeffs = C.data();
    a.boxes = B.data();
    a.detType = c.fp16_dets ? masks::DType::kFloat16 : masks::DType::kFloat32;
    a.numDetections = c.dets;
    a.count = c.count == -2 ? nullptr : &count;
    a.frameH = c.frame_h;
    a.frameW = c.frame_w;
    a.rowPitch = row_pitch;
    a.maskPitch = mask_pitch;
    a.output = c.prob ? masks::Output::kProbF32 : masks::Output::kMaskU8;
    a.threshold = c.threshold;
    a.crop = c.crop;

    // 16-byte aligned buffers (cudaMalloc's are 256-byte aligned), filled with a sentinel.
    const std::size_t bytes = mask_pitch * c.dets + 16;
    std::vector<uint4> host_buf(bytes / 16 + 1), dev_buf(bytes / 16 + 1);
    std::memset(host_buf.data(), 0xEE, host_buf.size() * 16);
    std::memset(dev_buf.data(), 0xEE, dev_buf.size() * 16);
    const std::size_t ws_floats = masks::workspaceSize(c.dets, hp, wp) / 4;
    std::vector<float> host_ws(ws_floats + 1, 4.0f), dev_ws(ws_floats + 1, 4.0f);

    a.out = host_buf.data();
    const int rh = masks::assembleHost(a, host_ws.data());
    a.out = dev_buf.data();
    const cudaError_t rd = masks::launchAssemble(a, dev_ws.data(), nullptr);
    const bool same = std::memcmp(host_buf.data(), dev_buf.data(), host_buf.size() * 16) == 0;
    const bool ws_ok = host_ws.back() == 4.0f && dev_ws.back() == 4.0f;  // nothing past the workspace size
    long long ones = 0;
    const auto* bytes_out = reinterpret_cast<const unsigned char*>(dev_buf.data());
    for (int d = 0; d < c.dets; ++d)
        for (int y = 0; y < c.frame_h; ++y)
            for (int x = 0; x < c.frame_w; ++x) {
                const unsigned char* px = bytes_out + d * mask_pitch + y * row_pitch + x * elem;
                if (c.prob) {
                    float v;
                    std::memcpy(&v, px, 4);
                    ones += v > 0.5f;
                } else {
                    ones += *px == 1;
                }
            }
    const bool ok = rh == 0 && rd == cudaSuccess && same && ws_ok;
    g_fail += ok ? 0 : 1;
    std::printf("masks %-34s %s/%s k=%2d n=%2d grid %dx%d frame %dx%d pitch %zu %s: %lld pixels > 0.5, %s\n", c.name,
                c.fp16_protos ? "fp16" : "fp32", c.fp16_dets ? "fp16" : "fp32", c.k, c.dets, hp, wp, c.frame_h, c.frame_w,
                row_pitch, c.prob ? "prob" : "mask", ones, ok ? "identical" : "MISMATCH");
    if (!ok) std::printf("   host rc %d, device rc %d, buffers %s, workspace bounds %s\n", rh, int(rd),
                         same ? "same" : "differ", ws_ok ? "kept" : "overrun");
}

int main() {
    //    name                               seed dets k  H    W    count pad mis crop  prob  fp16p fp16d spec
    run({"odd frame, aligned rows",            1, 5, 32, 37, 53, -2, 11, 0});
    run({"frame = proto grid (copy path)",     2, 4, 32, 20, 24, -2, 10, 0});
    run({"1x1 frame",                          3, 3, 32, 1, 1, -2, 15, 0});
    run({"down- and upsampled axes",           4, 6, 32, 69, 300, -2, 4, 0});
    run({"upstream grid, padded rows",          5, 3, 32, 150, 451, -2, 13, 0}, 138, 138);
    run({"unaligned row pitch",                6, 3, 32, 41, 70, -2, 0, 3});
    run({"device count below capacity",        7, 9, 32, 33, 40, 4, 8, 0});
    run({"count above capacity",               8, 3, 32, 20, 35, 50, 13, 0});
    run({"negative count: nothing written",    9, 3, 32, 20, 35, -1, 13, 0});
    run({"two coefficient blocks (40 dets)",  10, 40, 32, 24, 40, -2, 8, 0});
    run({"crop off",                          11, 3, 32, 45, 61, -2, 3, 0, false});
    run({"probabilities",                     12, 4, 32, 37, 53, -2, 12, 0, true, true});
    run({"probabilities, unaligned pitch",    13, 3, 32, 29, 31, -2, 0, 4, true, true});
    run({"fp16 prototypes",                   14, 4, 32, 37, 53, -2, 11, 0, true, false, true, false});
    run({"fp16 prototypes and detections",    15, 4, 32, 37, 53, -2, 11, 0, true, false, true, true});
    run({"fp16 detections",                   16, 4, 32, 37, 53, -2, 11, 0, true, false, false, true});
    run({"odd boxes, non-finite prototypes",  17, 6, 32, 60, 80, -2, 0, 0, true, false, false, false, true}, 138, 138);
    run({"odd boxes, probabilities",          18, 6, 32, 60, 80, -2, 0, 0, true, true, false, false, true});
    run({"K = 7",                             19, 4, 7, 37, 53, -2, 11, 0});
    run({"K = 64",                            20, 4, 64, 37, 53, -2, 11, 0});
    run({"threshold 0.9",                     21, 4, 32, 37, 53, -2, 11, 0, true, false, false, false, false, 0.9f});
    std::printf(g_fail == 0 ? "emulated mask kernels: all identical to the CPU twin\n"
                            : "emulated mask kernels: %d MISMATCHES\n", g_fail);
    return g_fail == 0 ? 0 : 1;
}
