// Edge cases through both CPU twins, meant to be built with
// -fsanitize=address,undefined -fno-sanitize-recover=all (tests/test_kernels_sanitizers.py):
// non-finite and huge flows, 1-pixel and empty maps, broadcast parameters, float16
// specials; FastNMS with no priors / classes / coefficients, NaN and infinite scores and
// boxes, equal scores, capacities at their limits. Besides "no sanitizer report", each case
// checks a few invariants and prints one line; exit code 1 on a failed invariant.
#include <cmath>
#include <cstdio>
#include <limits>
#include <random>
#include <vector>

#include "common/hd.h"
#include "fast_nms/fast_nms.h"
#include "inverse_warp/inverse_warp.h"

using trtnet::half_t;

static int g_fail = 0;
#define EXPECT(cond)                                                       \
    do {                                                                   \
        if (!(cond)) {                                                     \
            std::printf("FAIL line %d: %s\n", __LINE__, #cond);           \
            ++g_fail;                                                      \
        }                                                                  \
    } while (0)

static const float kInf = std::numeric_limits<float>::infinity();
static const float kNaN = std::numeric_limits<float>::quiet_NaN();
static const float kMax = std::numeric_limits<float>::max();

template <typename T>
static std::vector<T> convert(const std::vector<float>& v) {
    std::vector<T> out(v.size());
    for (size_t i = 0; i < v.size(); ++i) out[i] = trtnet::from_float<T>(v[i]);
    return out;
}

template <typename T>
static void warp_case(const char* name, int n, int c, int h, int w, const std::vector<float>& flow_values,
                      float divisor, bool with_params, int pn, int pc) {
    std::mt19937 rng(7);
    std::normal_distribution<float> normal;
    std::vector<float> feature(size_t(n) * c * h * w), flow(size_t(n) * 2 * h * w);
    for (auto& v : feature) v = normal(rng);
    for (size_t i = 0; i < flow.size(); ++i) flow[i] = flow_values[i % flow_values.size()];
    std::vector<float> scale(size_t(pn) * pc * h * w, 2.0f), bias(size_t(pn) * pc * h * w, 0.5f);
    auto f = convert<T>(feature), fl = convert<T>(flow), s = convert<T>(scale), b = convert<T>(bias);
    std::vector<T> out(feature.size() + 1);  // +1: a canary the twin must not touch
    out.back() = trtnet::from_float<T>(1234.0f);
    trtnet::warp::Shape shape{n, c, h, w, pn, pc, pn, pc};
    auto dtype = sizeof(T) == 4 ? trtnet::warp::DType::kFloat32 : trtnet::warp::DType::kFloat16;
    int rc = trtnet::warp::inverse_warp_host(dtype, shape, divisor, f.data(), fl.data(), with_params ? s.data() : nullptr,
                                             with_params ? b.data() : nullptr, out.data());
    EXPECT(rc == 0);
    EXPECT(trtnet::to_float(out.back()) == 1234.0f);
    size_t finite = 0;
    for (size_t i = 0; i + 1 < out.size(); ++i) finite += std::isfinite(trtnet::to_float(out[i])) ? 1 : 0;
    EXPECT(finite == out.size() - 1);  // finite features give finite outputs whatever the flow
    std::printf("warp %-28s %s n=%d c=%d h=%d w=%d ok\n", name, sizeof(T) == 4 ? "fp32" : "fp16", n, c, h, w);
}

template <typename T>
static void warp_cases() {
    warp_case<T>("zero flow", 1, 3, 5, 7, {0.0f}, 8.0f, true, 1, 3);
    warp_case<T>("nan/inf flow", 2, 4, 6, 5, {kNaN, kInf, -kInf, 0.3f, kNaN}, 8.0f, true, 2, 1);
    warp_case<T>("huge flow", 1, 2, 4, 4, {kMax, -kMax, 1e30f, -1e30f, 3e9f}, 8.0f, false, 1, 1);
    warp_case<T>("tiny divisor", 1, 2, 4, 4, {1.0f, -1.0f}, 1e-30f, true, 1, 2);
    warp_case<T>("one pixel wide", 1, 3, 6, 1, {0.5f, -0.2f}, 8.0f, true, 1, 3);
    warp_case<T>("one pixel map", 3, 2, 1, 1, {0.1f}, 8.0f, true, 3, 2);
    warp_case<T>("empty batch", 0, 3, 4, 4, {0.0f}, 8.0f, true, 1, 1);
    warp_case<T>("empty channels", 1, 0, 4, 4, {0.0f}, 8.0f, false, 1, 1);
    warp_case<T>("empty map", 1, 3, 0, 4, {0.0f}, 8.0f, true, 1, 3);
    warp_case<T>("flow at the borders", 1, 17, 9, 33, {8.0f, -8.0f, 7.99f, -7.99f}, 8.0f, true, 1, 17);
    trtnet::warp::Shape bad{1, 3, 4, 4, 2, 3, 1, 1};
    float dummy[64] = {};
    EXPECT(trtnet::warp::inverse_warp_host(trtnet::warp::DType::kFloat32, bad, 8.0f, dummy, dummy, dummy, nullptr,
                                           dummy) == -1);
}

template <typename T>
static void nms_case(const char* name, int n, int a, int c, int k, trtnet::nms::Settings s,
                     const std::vector<float>& box_values, const std::vector<float>& score_values) {
    std::mt19937 rng(11);
    std::uniform_real_distribution<float> uni(0.0f, 1.0f);
    std::vector<float> boxes(size_t(n) * a * 4), scores(size_t(n) * a * c), coeffs(size_t(n) * a * k);
    for (size_t i = 0; i < boxes.size(); i += 4) {
        float x = uni(rng), y = uni(rng), w = uni(rng) * 0.3f, h = uni(rng) * 0.3f;
        boxes[i] = x; boxes[i + 1] = y; boxes[i + 2] = x + w; boxes[i + 3] = y + h;
    }
    for (size_t i = 0; i < box_values.size() && i < boxes.size(); ++i) boxes[i * 7 % boxes.size()] = box_values[i];
    for (auto& v : scores) v = uni(rng);
    for (size_t i = 0; i < score_values.size() && i < scores.size(); ++i) scores[i * 5 % scores.size()] = score_values[i];
    for (auto& v : coeffs) v = uni(rng) * 2 - 1;
    auto b = convert<T>(boxes), sc = convert<T>(scores), co = convert<T>(coeffs);
    const int m = s.max_det;
    std::vector<int32_t> count(size_t(n) + 1, 77), classes(size_t(n) * m + 1, 77);
    std::vector<T> ob(size_t(n) * m * 4 + 1), os(size_t(n) * m + 1), oc(size_t(n) * m * k + 1);
    trtnet::nms::Tensors t{b.data(), sc.data(), co.data(), count.data(), ob.data(), os.data(), classes.data(), oc.data()};
    auto dtype = sizeof(T) == 4 ? trtnet::nms::DType::kFloat32 : trtnet::nms::DType::kFloat16;
    int rc = trtnet::nms::fast_nms_host(dtype, n, a, c, k, s, t);
    EXPECT(rc == 0);
    EXPECT(count[size_t(n)] == 77 && classes[size_t(n) * m] == 77);  // canaries
    for (int i = 0; i < n; ++i) {
        EXPECT(count[i] >= 0 && count[i] <= m);
        for (int d = 0; d < m; ++d) {
            const int cls = classes[size_t(i) * m + d];
            EXPECT(d < count[i] ? (cls >= 0 && cls < c) : cls == -1);
            if (d > 0 && d < count[i]) {  // descending scores
                EXPECT(trtnet::to_float(os[size_t(i) * m + d]) <= trtnet::to_float(os[size_t(i) * m + d - 1]));
            }
        }
    }
    std::printf("nms  %-28s %s n=%d a=%d c=%d k=%d count0=%d ok\n", name, sizeof(T) == 4 ? "fp32" : "fp16", n, a, c, k,
                n > 0 ? count[0] : -1);
}

template <typename T>
static void nms_cases() {
    trtnet::nms::Settings d;
    nms_case<T>("random", 2, 300, 6, 4, d, {}, {});
    nms_case<T>("no priors", 2, 0, 6, 4, d, {}, {});
    nms_case<T>("empty batch", 0, 10, 6, 4, d, {}, {});
    trtnet::nms::Settings only_bg = d;
    nms_case<T>("background only", 1, 20, 1, 3, only_bg, {}, {});
    trtnet::nms::Settings none = d;
    none.background_class = -1;
    nms_case<T>("no classes at all", 1, 20, 0, 3, none, {}, {});
    nms_case<T>("no coefficients", 1, 50, 4, 0, d, {}, {});
    nms_case<T>("nan and inf scores", 1, 64, 5, 2, d, {}, {kNaN, kInf, -kInf, kNaN, kInf, 0.0f, -0.0f});
    nms_case<T>("nan and inf boxes", 1, 64, 5, 2, d, {kNaN, kInf, -kInf, kNaN, kMax, -kMax}, {});
    nms_case<T>("degenerate boxes", 1, 64, 5, 2, d, {0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f}, {});
    std::vector<float> equal(64 * 5, 0.3f);
    nms_case<T>("all scores equal", 1, 64, 5, 2, d, {}, equal);
    trtnet::nms::Settings big = d;
    big.top_k = 1024;
    big.max_det = 1024;
    big.conf_thresh = -kInf;
    nms_case<T>("capacities at the limit", 2, 1500, 3, 2, big, {}, {});
    trtnet::nms::Settings all_suppress = d;
    all_suppress.nms_thresh = -1.0f;
    nms_case<T>("everything suppressed", 1, 40, 3, 2, all_suppress, {}, {});
    trtnet::nms::Settings bad = d;
    bad.top_k = 0;
    trtnet::nms::Tensors t{};
    EXPECT(trtnet::nms::fast_nms_host(trtnet::nms::DType::kFloat32, 1, 1, 2, 1, bad, t) == -1);
    bad = d;
    bad.nms_thresh = kNaN;
    EXPECT(trtnet::nms::fast_nms_host(trtnet::nms::DType::kFloat32, 1, 1, 2, 1, bad, t) == -1);
}

static void half_conversions() {
    size_t mismatches = 0;
    for (uint32_t bits = 0; bits < 0x10000u; ++bits) {
        const half_t h{uint16_t(bits)};
        const float f = trtnet::half_to_float(h);
        const half_t back = trtnet::float_to_half(f);
        const bool nan = std::isnan(f);
        if (!nan && back.bits != h.bits) ++mismatches;
        if (nan && ((back.bits & 0x7c00u) != 0x7c00u || (back.bits & 0x3ffu) == 0)) ++mismatches;
    }
    EXPECT(mismatches == 0);
    std::printf("half round trip of all 65536 patterns: %zu mismatches\n", mismatches);
}

int main() {
    half_conversions();
    warp_cases<float>();
    warp_cases<half_t>();
    nms_cases<float>();
    nms_cases<half_t>();
    std::printf(g_fail == 0 ? "edge cases: all passed\n" : "edge cases: %d FAILED\n", g_fail);
    return g_fail == 0 ? 0 : 1;
}
