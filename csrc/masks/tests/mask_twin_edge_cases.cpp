// Edge cases through the mask assembly CPU twin, built with -fsanitize=address,undefined
// -fno-sanitize-recover=all (tests/test_masks_kernels.py): every invalid argument named by
// checkArgs, no detections with null pointers, counts below / above range, 1x1 grids and
// frames, a 1-pixel-wide tall frame, K = 1 and 64, NaN / infinite / huge boxes and
// prototypes. Besides "no sanitizer report", each case checks invariants (values 0/1,
// nothing outside the crop, pitch padding untouched) and prints one line; exit 1 on failure.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "mask_assembly_host.h"

namespace masks = trtnet::masks;

static int g_fail = 0;
#define EXPECT(cond)                                             \
    do {                                                         \
        if (!(cond)) {                                           \
            std::printf("FAIL line %d: %s\n", __LINE__, #cond); \
            ++g_fail;                                            \
        }                                                        \
    } while (0)

static const float kInf = std::numeric_limits<float>::infinity();
static const float kNaN = std::numeric_limits<float>::quiet_NaN();

struct Inputs {
    int hp, wp, k, n;
    std::vector<float> protos, coeffs, boxes;
    Inputs(int hp_, int wp_, int k_, int n_, float proto_value, float coeff_value)
        : hp(hp_), wp(wp_), k(k_), n(n_), protos(std::size_t(hp_) * wp_ * k_, proto_value),
          coeffs(std::size_t(n_) * k_, coeff_value), boxes(std::size_t(n_) * 4, 0.0f) {}
    masks::MaskAssemblyArgs args(int frame_h, int frame_w, void* out, std::size_t row_pitch) const {
        masks::MaskAssemblyArgs a;
        a.protos = protos.data();
        a.protoH = hp;
        a.protoW = wp;
        a.numProtos = k;
        a.coeffs = coeffs.data();
        a.boxes = boxes.data();
        a.numDetections = n;
        a.frameH = frame_h;
        a.frameW = frame_w;
        a.out = out;
        a.rowPitch = row_pitch;
        a.maskPitch = row_pitch * std::size_t(frame_h);
        return a;
    }
};

static void rejected(const char* what, masks::MaskAssemblyArgs a, const char* expected_words) {
    const std::string problem = masks::checkArgs(a);
    const bool ok = !problem.empty() && problem.find(expected_words) != std::string::npos &&
                    masks::assembleHost(a) == -1;
    EXPECT(ok);
    std::printf("reject %-28s -> \"%s\"\n", what, problem.c_str());
}

static void invalid_arguments() {
    Inputs in(4, 5, 3, 2, 1.0f, 1.0f);
    std::vector<unsigned char> out(64 * 64 * 2);
    const auto good = in.args(8, 9, out.data(), 9);
    EXPECT(std::string(masks::checkArgs(good)).empty());
    auto a = good; a.protoH = 0;                       rejected("empty proto grid", a, "protoH");
    a = good; a.numProtos = 65;                        rejected("65 prototypes", a, "numProtos");
    a = good; a.numProtos = 0;                         rejected("0 prototypes", a, "numProtos");
    a = good; a.numDetections = -1;                    rejected("negative detections", a, "numDetections");
    a = good; a.frameW = 0;                            rejected("zero frame width", a, "frameH and frameW");
    a = good; a.frameH = 40000;                        rejected("huge frame", a, "frameH and frameW");
    a = good; a.rowPitch = 8;                          rejected("row pitch < width", a, "rowPitch");
    a = good; a.maskPitch = 9 * 8 - 1;                 rejected("mask pitch < plane", a, "maskPitch");
    a = good; a.protos = nullptr;                      rejected("null protos", a, "null");
    a = good; a.out = nullptr;                         rejected("null out", a, "null");
    a = good; a.threshold = kNaN;                      rejected("NaN threshold", a, "threshold");
    a = good; a.protoType = masks::DType(7);           rejected("unknown proto dtype", a, "protoType");
    a = good; a.output = masks::Output(3);             rejected("unknown output", a, "output");
    a = good; a.coeffs = reinterpret_cast<const char*>(in.coeffs.data()) + 1;
    rejected("misaligned coeffs", a, "aligned");
    a = good; a.output = masks::Output::kProbF32; a.rowPitch = 38; a.maskPitch = 38 * 8;
    rejected("float rows not 4-aligned", a, "4-byte");
    a = good; a.rowPitch = std::size_t(1) << 62;       rejected("pitch overflow", a, "overflow");
}

// No detections: nothing is read or written, null pointers allowed.
static void no_detections() {
    masks::MaskAssemblyArgs a;
    a.numDetections = 0;
    a.frameH = a.frameW = 5;
    EXPECT(std::string(masks::checkArgs(a)).empty());
    EXPECT(masks::assembleHost(a) == 0);
    EXPECT(masks::workspaceSize(0) == 0);
    EXPECT(masks::workspaceSize(100) == (100u * 138 * 138 * 4 + 255) / 256 * 256);
    EXPECT(masks::workspaceSize(1, 3, 3) == 256);
    std::printf("no detections: ok\n");
}

// Runs one case and checks: values 0/1, row padding untouched, masks past the count untouched.
static std::vector<unsigned char> run_case(const char* name, const Inputs& in, int frame_h, int frame_w,
                                           const int32_t* count, bool crop = true) {
    const std::size_t pitch = std::size_t(frame_w) + 3;
    std::vector<unsigned char> out(pitch * frame_h * std::max(in.n, 1), 0xEE);
    auto a = in.args(frame_h, frame_w, out.data(), pitch);
    a.count = count;
    a.crop = crop;
    EXPECT(masks::assembleHost(a) == 0);
    const int valid = count ? std::max(0, std::min(*count, in.n)) : in.n;
    long long ones = 0;
    for (int d = 0; d < in.n; ++d)
        for (int y = 0; y < frame_h; ++y)
            for (std::size_t x = 0; x < pitch; ++x) {
                const unsigned char v = out[(std::size_t(d) * frame_h + y) * pitch + x];
                if (d >= valid || x >= std::size_t(frame_w)) {
                    EXPECT(v == 0xEE);
                } else {
                    EXPECT(v == 0 || v == 1);
                    ones += v;
                }
            }
    std::printf("%-44s %d dets (%d valid) %dx%d: %lld ones\n", name, in.n, valid, frame_h, frame_w, ones);
    return out;
}

static void cases() {
    {   // whole-image box, prototypes certain (sigmoid 1): every pixel 1
        Inputs in(138, 138, 32, 2, 1.0f, 1.0f);
        for (int d = 0; d < 2; ++d) { in.boxes[4 * d + 2] = 1.0f; in.boxes[4 * d + 3] = 1.0f; }
        auto out = run_case("full box, sigmoid ~1", in, 23, 31, nullptr);
        EXPECT(out[0] == 1 && out[22 * 34 + 30] == 1);
    }
    {   // box of the left half: the right part of the frame stays 0
        Inputs in(138, 138, 32, 1, 1.0f, 1.0f);
        in.boxes = {0.0f, 0.0f, 0.25f, 1.0f};
        auto out = run_case("left-quarter box", in, 40, 100, nullptr);
        for (int y = 0; y < 40; ++y)
            for (int x = 40; x < 100; ++x) EXPECT(out[std::size_t(y) * 103 + x] == 0);
        EXPECT(out[20 * 103 + 10] == 1);
    }
    {   // NaN / infinite / huge boxes and prototypes; reversed corners (logits ~ +4: sigmoid 0.98)
        Inputs in(138, 138, 32, 6, 0.5f, 0.25f);
        const float boxes[6][4] = {{kNaN, 0, 1, 1}, {0, kInf, 1, 1}, {-kInf, -kInf, kInf, kInf},
                                   {1e30f, -1e30f, 2e30f, 1e30f}, {0.9f, 0.9f, 0.1f, 0.1f}, {2, 2, 3, 3}};
        std::memcpy(in.boxes.data(), boxes, sizeof boxes);
        in.protos[0] = kNaN;
        in.protos[5 * 32 + 3] = kInf;
        in.protos[100 * 138 * 32 + 7] = -kInf;
        in.protos[70 * 138 * 32 + 70 * 32] = 3e38f;
        auto out = run_case("NaN / inf / huge boxes and prototypes", in, 50, 70, nullptr);
        const auto ones = [&](int d) {
            long long c = 0;
            for (int y = 0; y < 50; ++y)
                for (int x = 0; x < 70; ++x) c += out[(std::size_t(d) * 50 + y) * 73 + x] == 1;
            return c;
        };
        EXPECT(ones(0) == 0);             // NaN coordinate: nothing inside (torch.min/max propagate NaN)
        EXPECT(ones(2) > 45 * 65);        // infinite box: the whole grid, minus non-finite cells' pixels
        EXPECT(ones(4) > 0);              // reversed corners: min / max like upstream
        EXPECT(ones(5) == 0);             // entirely outside the image
        // Saturated logits: exp overflow (sigmoid 0) and underflow (sigmoid 1), no UB.
        std::fill(in.protos.begin(), in.protos.end(), 1e6f);
        out = run_case("saturated logits (sigmoid 1)", in, 50, 70, nullptr);
        EXPECT(ones(2) == 50 * 70);
        std::fill(in.coeffs.begin(), in.coeffs.end(), -0.25f);
        out = run_case("saturated logits (sigmoid 0)", in, 50, 70, nullptr);
        EXPECT(ones(2) == 0);
    }
    {   // 1x1 grid, 1x1 frame, K = 1
        Inputs in(1, 1, 1, 3, 2.0f, 1.0f);
        for (int d = 0; d < 3; ++d) { in.boxes[4 * d + 2] = 1.0f; in.boxes[4 * d + 3] = 1.0f; }
        auto out = run_case("1x1 grid to 1x1 frame, K=1", in, 1, 1, nullptr);
        EXPECT(out[0] == 1);
        run_case("1x1 grid to 7x5 frame", in, 7, 5, nullptr);
    }
    {   // K = 64, tall 1-pixel-wide frame, counts
        Inputs in(138, 138, 64, 4, 0.1f, 0.2f);
        for (int d = 0; d < 4; ++d) { in.boxes[4 * d] = 0.1f * d; in.boxes[4 * d + 2] = 0.5f; in.boxes[4 * d + 3] = 0.9f; }
        run_case("K=64, 1-pixel-wide tall frame", in, 2000, 1, nullptr);
        const int32_t two = 2, none = -5, many = 1 << 30;
        run_case("count 2 of 4", in, 9, 9, &two);
        run_case("negative count", in, 9, 9, &none);
        run_case("count beyond capacity", in, 9, 9, &many);
        run_case("crop off", in, 9, 9, nullptr, false);
    }
    {   // lowres stage alone on a non-square grid
        Inputs in(5, 7, 3, 2, 1.0f, 1.0f);
        in.boxes = {0.2f, 0.2f, 0.4f, 0.6f, 0.5f, 0.5f, 0.5f, 0.5f};
        std::vector<float> lowres(2 * 5 * 7, -1.0f);
        auto a = in.args(1, 1, lowres.data(), 1);
        EXPECT(masks::lowresHost(a, lowres.data()) == 0);
        for (float v : lowres) EXPECT(v >= 0.0f && v <= 1.0f);
        std::printf("lowres 5x7 grid: ok\n");
    }
}

int main() {
    invalid_arguments();
    no_detections();
    cases();
    std::printf(g_fail == 0 ? "mask edge cases: all passed\n" : "mask edge cases: %d FAILED\n", g_fail);
    return g_fail == 0 ? 0 : 1;
}
