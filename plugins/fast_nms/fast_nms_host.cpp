// FastNMS CPU twin: the kernels' math (fast_nms.cuh); orderings by the same keys as the
// kernels (score key, then position), so ties follow specs.TIE_RULE by construction.
#include <algorithm>
#include <cmath>
#include <functional>
#include <vector>

#include "fast_nms.cuh"
#include "fast_nms.h"

namespace trtnet {
namespace nms {

const char* fast_nms_check(int n, int a, int c, int k, const Settings& s) {
    if (n < 0 || a < 0 || c < 0 || k < 0) return "negative dimension";
    if (s.top_k < 1 || s.top_k > kMaxTopK) return "top_k must be in [1, 1024]";
    if (s.max_det < 1 || s.max_det > kMaxMaxDet) return "max_det must be in [1, 1024]";
    if (s.background_class < -1 || s.background_class >= c) return "background_class must be -1 or a score column";
    if (std::isnan(s.conf_thresh) || std::isnan(s.nms_thresh)) return "conf_thresh and nms_thresh must not be NaN";
    return "";
}

size_t fast_nms_workspace_size(int n, int a, int c, const Settings& s) {
    const Params p{n, a, c, 0, s.top_k, s.max_det, s.background_class, s.conf_thresh, s.nms_thresh};
    return Workspace::layout(p).bytes;
}

namespace {

struct Kept {
    float score;
    int cls;
    int prior;
};

template <typename T>
void run_one(const Params& p, const T* boxes, const T* scores, const T* coeffs, int32_t* count,
             T* out_boxes, T* out_scores, int32_t* out_classes, T* out_coeffs) {
    std::vector<int> cand;
    for (int i = 0; i < p.a; ++i)
        if (is_candidate(p, scores + (long long)i * p.c)) cand.push_back(i);

    std::vector<Kept> kept;
    // Per class: one 64-bit sort key per candidate = (score key, then smaller candidate
    // position first), so a partial sort of the top_k gives exactly the stable order.
    std::vector<uint64_t> order(cand.size());
    std::vector<Box> ranked;
    const int num_fg = num_foreground(p);
    const int m = std::min<int>(p.top_k, int(cand.size()));
    for (int f = 0; f < num_fg && m > 0; ++f) {
        const int col = fg_column(p, f);
        for (size_t e = 0; e < cand.size(); ++e) {
            const float s = to_float(scores[(long long)cand[e] * p.c + col]);
            order[e] = (uint64_t(score_key(s)) << 32) | uint64_t(0xffffffffu - uint32_t(e));
        }
        std::partial_sort(order.begin(), order.begin() + m, order.end(), std::greater<uint64_t>());
        ranked.resize(m);
        for (int j = 0; j < m; ++j) ranked[j] = load_box(boxes + (long long)cand[0xffffffffu - uint32_t(order[j])] * 4);
        for (int j = 0; j < m; ++j) {
            bool keep = true;
            for (int i = 0; i < j && keep; ++i) keep = survives(ranked[i], ranked[j], p.nms_thresh);
            if (keep) {
                const int prior = cand[0xffffffffu - uint32_t(order[j])];
                kept.push_back(Kept{to_float(scores[(long long)prior * p.c + col]), f, prior});
            }
        }
    }
    // kept is class-major, rank order inside a class: a stable sort gives the tie rule.
    std::stable_sort(kept.begin(), kept.end(), [](const Kept& x, const Kept& y) {
        return score_key(x.score) > score_key(y.score);
    });
    const int d = std::min<int>(p.max_det, int(kept.size()));
    *count = d;
    for (int j = 0; j < p.max_det; ++j) {
        const bool valid = j < d;
        const int prior = valid ? kept[j].prior : 0;
        for (int q = 0; q < 4; ++q) out_boxes[j * 4 + q] = valid ? boxes[(long long)prior * 4 + q] : from_float<T>(0.0f);
        out_scores[j] = valid ? scores[(long long)prior * p.c + fg_column(p, kept[j].cls)] : from_float<T>(0.0f);
        out_classes[j] = valid ? kept[j].cls : -1;
        for (int q = 0; q < p.k; ++q)
            out_coeffs[(long long)j * p.k + q] = valid ? coeffs[(long long)prior * p.k + q] : from_float<T>(0.0f);
    }
}

template <typename T>
void run(const Params& p, const Tensors& t) {
    for (int b = 0; b < p.n; ++b) {
        run_one(p, static_cast<const T*>(t.boxes) + (long long)b * p.a * 4,
                static_cast<const T*>(t.scores) + (long long)b * p.a * p.c,
                static_cast<const T*>(t.coeffs) + (long long)b * p.a * p.k, t.count + b,
                static_cast<T*>(t.out_boxes) + (long long)b * p.max_det * 4,
                static_cast<T*>(t.out_scores) + (long long)b * p.max_det, t.out_classes + (long long)b * p.max_det,
                static_cast<T*>(t.out_coeffs) + (long long)b * p.max_det * p.k);
    }
}

}  // namespace

int fast_nms_host(DType dtype, int n, int a, int c, int k, const Settings& s, const Tensors& t) {
    if (*fast_nms_check(n, a, c, k, s) != '\0') return -1;
    const Params p{n, a, c, k, s.top_k, s.max_det, s.background_class, s.conf_thresh, s.nms_thresh};
    if (dtype == DType::kFloat32) run<float>(p, t);
    else run<half_t>(p, t);
    return 0;
}

}  // namespace nms
}  // namespace trtnet
