// Runs the CUDA launchers (kernels compiled for the CPU through cuda_runtime.h's
// emulation) and the CPU twins on the same inputs and requires bit-identical outputs.
// Cases: random sizes, ties, NaN / huge flows, A around block sizes, top_k and max_det
// at the kernel limits, float16. Prints one line per case; exit code 1 on a mismatch.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "common/hd.h"
#include "fast_nms/fast_nms.h"
#include "inverse_warp/inverse_warp.h"

using trtnet::half_t;

static int g_fail = 0;

template <typename T>
static bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
    return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
}

template <typename T>
static std::vector<T> convert(const std::vector<float>& v) {
    std::vector<T> out(v.size());
    for (size_t i = 0; i < v.size(); ++i) out[i] = trtnet::from_float<T>(v[i]);
    return out;
}

template <typename T>
static void warp_case(const char* name, unsigned seed, int n, int c, int h, int w, float flow_scale, bool params,
                      int pn, int pc, bool specials) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal;
    std::vector<float> f(size_t(n) * c * h * w), fl(size_t(n) * 2 * h * w), s(size_t(pn) * pc * h * w),
        b(size_t(pn) * pc * h * w);
    for (auto& v : f) v = normal(rng);
    for (auto& v : fl) v = normal(rng) * flow_scale;
    for (auto& v : s) v = normal(rng);
    for (auto& v : b) v = normal(rng);
    if (specials && fl.size() > 8) {
        fl[1] = std::numeric_limits<float>::quiet_NaN();
        fl[3] = std::numeric_limits<float>::infinity();
        fl[5] = -1e30f;
        fl[7] = 16.0f;
    }
    auto F = convert<T>(f), FL = convert<T>(fl), S = convert<T>(s), B = convert<T>(b);
    std::vector<T> host(f.size()), dev(f.size(), trtnet::from_float<T>(-7.0f));
    trtnet::warp::Shape shape{n, c, h, w, pn, pc, pn, pc};
    auto dt = sizeof(T) == 4 ? trtnet::warp::DType::kFloat32 : trtnet::warp::DType::kFloat16;
    int rh = trtnet::warp::inverse_warp_host(dt, shape, 8.0f, F.data(), FL.data(), params ? S.data() : nullptr,
                                             params ? B.data() : nullptr, host.data());
    int rd = trtnet::warp::inverse_warp_launch(dt, shape, 8.0f, F.data(), FL.data(), params ? S.data() : nullptr,
                                               params ? B.data() : nullptr, dev.data(), nullptr);
    bool ok = rh == 0 && rd == 0 && same_bits(host, dev);
    g_fail += ok ? 0 : 1;
    std::printf("warp %-26s %s [%d,%d,%d,%d] %s\n", name, sizeof(T) == 4 ? "fp32" : "fp16", n, c, h, w,
                ok ? "identical" : "MISMATCH");
    if (!ok) std::printf("   return codes: host %d device %d\n", rh, rd);
}

template <typename T>
static void nms_case(const char* name, unsigned seed, int n, int a, int c, int k, trtnet::nms::Settings s,
                     int score_levels, float bg_boost) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> uni(0.0f, 1.0f);
    std::normal_distribution<float> normal;
    std::vector<float> boxes(size_t(n) * a * 4), scores(size_t(n) * a * c), coeffs(size_t(n) * a * k);
    for (size_t i = 0; i < boxes.size(); i += 4) {
        float x = uni(rng), y = uni(rng), bw = 0.02f + uni(rng) * 0.3f, bh = 0.02f + uni(rng) * 0.3f;
        boxes[i] = x; boxes[i + 1] = y; boxes[i + 2] = x + bw; boxes[i + 3] = y + bh;
    }
    for (size_t r = 0; r < size_t(n) * a; ++r) {
        float sum = 0.0f;
        for (int j = 0; j < c; ++j) {
            float l = normal(rng) * 1.5f + (j == 0 ? bg_boost : 0.0f);
            float e = std::exp(l);
            scores[r * c + j] = e;
            sum += e;
        }
        for (int j = 0; j < c; ++j) {
            float v = scores[r * c + j] / sum;
            if (score_levels > 0) v = std::floor(v * score_levels) / score_levels;  // many exact ties
            scores[r * c + j] = v;
        }
    }
    for (auto& v : coeffs) v = uni(rng) * 2 - 1;
    auto B = convert<T>(boxes), S = convert<T>(scores), K = convert<T>(coeffs);
    const int m = s.max_det;
    struct Out {
        std::vector<int32_t> count, classes;
        std::vector<T> boxes, scores, coeffs;
    };
    auto make = [&](int32_t fill) {
        Out o;
        o.count.assign(size_t(n), fill);
        o.classes.assign(size_t(n) * m, fill);
        o.boxes.assign(size_t(n) * m * 4, trtnet::from_float<T>(float(fill)));
        o.scores.assign(size_t(n) * m, trtnet::from_float<T>(float(fill)));
        o.coeffs.assign(size_t(n) * m * k, trtnet::from_float<T>(float(fill)));
        return o;
    };
    Out host = make(0), dev = make(-9);
    auto tensors = [&](Out& o) {
        return trtnet::nms::Tensors{B.data(), S.data(), K.data(), o.count.data(), o.boxes.data(), o.scores.data(),
                                    o.classes.data(), o.coeffs.data()};
    };
    auto dt = sizeof(T) == 4 ? trtnet::nms::DType::kFloat32 : trtnet::nms::DType::kFloat16;
    std::vector<unsigned char> workspace(trtnet::nms::fast_nms_workspace_size(n, a, c, s) + 1, 0xAB);
    int rh = trtnet::nms::fast_nms_host(dt, n, a, c, k, s, tensors(host));
    int rd = trtnet::nms::fast_nms_launch(dt, n, a, c, k, s, tensors(dev), workspace.data(), nullptr);
    bool ok = rh == 0 && rd == 0 && host.count == dev.count && host.classes == dev.classes &&
              same_bits(host.boxes, dev.boxes) && same_bits(host.scores, dev.scores) && same_bits(host.coeffs, dev.coeffs);
    ok = ok && workspace.back() == 0xAB;  // nothing written past the workspace size
    g_fail += ok ? 0 : 1;
    std::printf("nms  %-26s %s n=%d a=%d c=%d k=%d top_k=%d max_det=%d count0=%d %s\n", name,
                sizeof(T) == 4 ? "fp32" : "fp16", n, a, c, k, s.top_k, s.max_det, n ? host.count[0] : -1,
                ok ? "identical" : "MISMATCH");
    if (!ok && n > 0) {
        for (int d = 0; d < std::min(m, 12); ++d)
            std::printf("   slot %2d: host class %d score %.6f | device class %d score %.6f\n", d, host.classes[d],
                        trtnet::to_float(host.scores[d]), dev.classes[d], trtnet::to_float(dev.scores[d]));
        std::printf("   counts host %d device %d, return codes host %d device %d\n", host.count[0], dev.count[0], rh, rd);
    }
}

template <typename T>
static void all_cases() {
    warp_case<T>("random + params", 1, 2, 37, 9, 35, 2.0f, true, 2, 37, false);
    warp_case<T>("broadcast params", 2, 2, 5, 18, 18, 0.5f, true, 1, 1, false);
    warp_case<T>("no params, specials", 3, 1, 3, 6, 33, 4.0f, false, 1, 1, true);
    warp_case<T>("one pixel map", 4, 1, 2, 1, 1, 1.0f, true, 1, 2, false);
    trtnet::nms::Settings d;
    nms_case<T>("defaults", 11, 1, 700, 6, 4, d, 0, 2.5f);
    nms_case<T>("batch of 3", 12, 3, 300, 5, 3, d, 0, 1.0f);
    nms_case<T>("ties everywhere", 13, 2, 257, 4, 2, d, 8, 0.0f);
    trtnet::nms::Settings small = d;
    small.top_k = 7;
    small.max_det = 9;
    small.nms_thresh = 0.3f;
    nms_case<T>("small capacities", 14, 2, 1025, 5, 2, small, 0, 0.0f);
    trtnet::nms::Settings big = d;
    big.top_k = 1024;
    big.max_det = 1024;
    big.conf_thresh = 0.0f;
    big.background_class = -1;
    nms_case<T>("limits, no background", 15, 1, 1500, 3, 1, big, 0, 0.0f);
    trtnet::nms::Settings bg2 = d;
    bg2.background_class = 2;
    nms_case<T>("background column 2", 16, 1, 200, 4, 0, bg2, 16, 0.0f);
    nms_case<T>("no candidates", 17, 2, 100, 4, 2, d, 0, 30.0f);
    nms_case<T>("no priors", 18, 2, 0, 4, 2, d, 0, 0.0f);
}

int main() {
    all_cases<float>();
    all_cases<half_t>();
    std::printf(g_fail == 0 ? "emulated kernels: all identical to the CPU twins\n" : "emulated kernels: %d MISMATCHES\n",
                g_fail);
    return g_fail == 0 ? 0 : 1;
}
