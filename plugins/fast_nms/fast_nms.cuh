// FastNMS math shared by the host twin and the CUDA kernels (trtnet/plugins/specs.py).
//
// Per image: candidates = priors whose foreground scores hold no NaN and whose best one is
// > conf_thresh (NumPy's / PyTorch's max propagates NaN, so a NaN row never enters); per
// foreground class the top_k candidates by (score desc, prior asc); IoU without +1; box j
// of a class is kept when IoU(i, j) <= nms_thresh for every i ranked before it (a NaN IoU
// therefore drops j, as upstream's column max does); survivors of all classes ordered by
// (score desc, class asc, prior asc) -- the tie rule in specs.TIE_RULE -- first max_det.
#pragma once

#include <cstddef>

#include "../common/hd.h"

namespace trtnet {
namespace nms {

constexpr int kMaxTopK = 1024;    // per-class sort capacity of the CUDA kernel
constexpr int kMaxMaxDet = 1024;  // global sort capacity of the CUDA kernel

struct Params {
    int n;             // batch
    int a;             // priors
    int c;             // score columns (incl. background)
    int k;             // mask coefficients per prior
    int top_k;
    int max_det;
    int background;    // skipped column, -1 = none
    float conf_thresh;
    float nms_thresh;
};

TRTNET_HD int num_foreground(const Params& p) {
    return (p.background >= 0 && p.background < p.c) ? p.c - 1 : p.c;
}

// Score column of foreground class f (0-based).
TRTNET_HD int fg_column(const Params& p, int f) {
    return (p.background >= 0 && f >= p.background) ? f + 1 : f;
}

template <typename T>
TRTNET_HD bool is_candidate(const Params& p, const T* row) {
    bool above = false;
    for (int col = 0; col < p.c; ++col) {
        if (col == p.background) continue;
        const float s = to_float(row[col]);
        if (is_nan(s)) return false;
        above = above || (s > p.conf_thresh);
    }
    return above;
}

// NaN-propagating min / max (np.minimum / np.maximum), unlike fminf / fmaxf.
TRTNET_HD float nan_min(float a, float b) { return (is_nan(a) || is_nan(b)) ? a + b : (a < b ? a : b); }
TRTNET_HD float nan_max(float a, float b) { return (is_nan(a) || is_nan(b)) ? a + b : (a > b ? a : b); }

struct Box {
    float x1, y1, x2, y2;
};

template <typename T>
TRTNET_HD Box load_box(const T* b) {
    return Box{to_float(b[0]), to_float(b[1]), to_float(b[2]), to_float(b[3])};
}

// Upstream jaccard without +1: inter / union in IEEE float, nothing special-cased. Two
// zero-area boxes give 0 / 0 = NaN, which survives() treats as suppressing, like upstream's
// NaN-propagating column max followed by `<= nms_thresh`.
TRTNET_HD float iou(const Box& a, const Box& b) {
    float w = nan_min(a.x2, b.x2) - nan_max(a.x1, b.x1);
    float h = nan_min(a.y2, b.y2) - nan_max(a.y1, b.y1);
    w = w < 0.0f ? 0.0f : w;
    h = h < 0.0f ? 0.0f : h;
    const float inter = w * h;
    const float area_a = (a.x2 - a.x1) * (a.y2 - a.y1);
    const float area_b = (b.x2 - b.x1) * (b.y2 - b.y1);
    const float uni = area_a + area_b - inter;
    return inter / uni;
}

// Suppression test of one pair: true when box j survives box i (i ranked before j); a NaN
// IoU fails the comparison, so it suppresses.
TRTNET_HD bool survives(const Box& earlier, const Box& later, float nms_thresh) {
    return iou(earlier, later) <= nms_thresh;
}

// Device workspace: byte offsets of each region (256-byte aligned), from the sizes only,
// so the plugin can size it at build time (getWorkspaceSize) and nothing is allocated
// per call.
struct Workspace {
    size_t flags;       // uint8 [n, a]: prior is a candidate
    size_t cand;        // int32 [n, a]: candidate priors, ascending
    size_t cand_count;  // int32 [n]
    size_t kept_prior;  // int32 [n, fg, top_k]: survivors of each class in rank order
    size_t kept_score;  // float [n, fg, top_k]
    size_t kept_count;  // int32 [n, fg]
    size_t bytes;

    static TRTNET_HD size_t align(size_t v) { return (v + 255) & ~size_t(255); }

    static TRTNET_HD Workspace layout(const Params& p) {
        const size_t na = size_t(p.n) * size_t(p.a);
        const size_t nf = size_t(p.n) * size_t(num_foreground(p));
        Workspace w{};
        size_t at = 0;
        w.flags = at;      at += align(na);
        w.cand = at;       at += align(na * 4);
        w.cand_count = at; at += align(size_t(p.n) * 4);
        w.kept_prior = at; at += align(nf * size_t(p.top_k) * 4);
        w.kept_score = at; at += align(nf * size_t(p.top_k) * 4);
        w.kept_count = at; at += align(nf * 4);
        w.bytes = at;
        return w;
    }
};

}  // namespace nms
}  // namespace trtnet
