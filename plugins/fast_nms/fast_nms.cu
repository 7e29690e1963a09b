// FastNMS CUDA kernels, batched over N, deterministic, no allocation.
//
//   1. candidate_flags   one thread per (image, prior): is_candidate()
//   2. compact           one block per image: ordered compaction of the flags (ballot scan)
//   3. class_nms         one block per (class, image): radix-select the top_k candidates by
//                        score, bitonic-sort them by (score desc, prior asc), IoU
//                        suppression against every earlier box, ordered compaction
//   4. final             one block per image: radix-select the best max_det survivors,
//                        sort by (score desc, class asc, prior asc), write fixed-capacity
//                        outputs (zeros and class -1 past the count)
// Shared-memory atomics only build histograms and fill an unordered selection that is
// then fully sorted, so results do not depend on thread timing.
#include <climits>
#include <cuda_runtime.h>

#include "fast_nms.cuh"
#include "fast_nms.h"

namespace trtnet {
namespace nms {
namespace {

constexpr int kFlagBlock = 256;
constexpr int kCompactBlock = 1024;
constexpr int kClassBlock = 256;
constexpr int kFinalBlock = 256;

struct SelectShared {
    unsigned hist[256];
    int warp_totals[32];
    unsigned prefix;
    int remaining;
    int n_sel;
    int total;
};

// Exclusive count of `flag` over the threads before this one (thread order); the block
// total goes to *total. Every thread of the block must call it (blockDim % 32 == 0).
__device__ int block_exclusive_count(bool flag, int* warp_totals, int* total) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const unsigned ballot = __ballot_sync(0xffffffffu, flag);
    const int in_warp = __popc(ballot & ((1u << lane) - 1u));
    if (lane == 0) warp_totals[warp] = __popc(ballot);
    __syncthreads();
    int before = 0, sum = 0;
    const int warps = blockDim.x >> 5;
    for (int w = 0; w < warps; ++w) {
        const int v = warp_totals[w];
        before += (w < warp) ? v : 0;
        sum += v;
    }
    __syncthreads();
    *total = sum;
    return before + in_warp;
}

// Selects the `want` elements of [0, count) ranked first by (key desc, element asc) among
// the valid ones (want >= 1 and <= number of valid elements) into keys/elems[0, want),
// unordered. Radix select on the 32-bit key, 8 bits per pass, then an ordered pass that
// takes every key above the threshold and the first equal ones in element order.
template <typename KeyFn>
__device__ void block_select(const KeyFn& key_of, int count, int want, SelectShared& s,
                             uint32_t* keys, int* elems) {
    if (threadIdx.x == 0) {
        s.prefix = 0;
        s.remaining = want;
        s.n_sel = 0;
    }
    unsigned mask = 0;
    for (int shift = 24; shift >= 0; shift -= 8) {
        for (int i = threadIdx.x; i < 256; i += blockDim.x) s.hist[i] = 0;
        __syncthreads();
        const unsigned prefix = s.prefix;
        for (int e = threadIdx.x; e < count; e += blockDim.x) {
            uint32_t key;
            if (key_of(e, key) && (key & mask) == prefix) atomicAdd(&s.hist[(key >> shift) & 255u], 1u);
        }
        __syncthreads();
        if (threadIdx.x == 0) {
            const unsigned remaining = unsigned(s.remaining);
            unsigned acc = 0;
            int digit = 0;
            for (int d = 255; d >= 0; --d) {
                if (acc + s.hist[d] >= remaining) {
                    digit = d;
                    break;
                }
                acc += s.hist[d];
            }
            s.remaining = int(remaining - acc);
            s.prefix = prefix | (unsigned(digit) << shift);
        }
        mask |= 255u << shift;
        __syncthreads();
    }
    const uint32_t threshold = s.prefix;
    const int eq_take = s.remaining;
    int eq_seen = 0;
    for (int start = 0; start < count; start += blockDim.x) {
        const int e = start + threadIdx.x;
        uint32_t key = 0;
        const bool valid = e < count && key_of(e, key);
        const bool eq = valid && key == threshold;
        int total;
        const int pos = block_exclusive_count(eq, s.warp_totals, &total);
        if ((valid && key > threshold) || (eq && eq_seen + pos < eq_take)) {
            const int slot = atomicAdd(&s.n_sel, 1);
            keys[slot] = key;
            elems[slot] = e;
        }
        eq_seen += total;
    }
    __syncthreads();
}

// Bitonic sort of n (a power of two) pairs by (key desc, elem asc); [count, n) is padded
// with sentinels that sort last.
__device__ void block_sort(uint32_t* keys, int* elems, int count, int n) {
    for (int i = count + threadIdx.x; i < n; i += blockDim.x) {
        keys[i] = 0;
        elems[i] = INT_MAX;
    }
    __syncthreads();
    for (int size = 2; size <= n; size <<= 1) {
        for (int stride = size >> 1; stride > 0; stride >>= 1) {
            for (int i = threadIdx.x; i < n; i += blockDim.x) {
                const int j = i ^ stride;
                if (j > i) {
                    const uint32_t ki = keys[i], kj = keys[j];
                    const int ei = elems[i], ej = elems[j];
                    const bool j_first = kj > ki || (kj == ki && ej < ei);
                    const bool i_first = ki > kj || (ki == kj && ei < ej);
                    if (((i & size) == 0) ? j_first : i_first) {
                        keys[i] = kj;
                        keys[j] = ki;
                        elems[i] = ej;
                        elems[j] = ei;
                    }
                }
            }
            __syncthreads();
        }
    }
}

TRTNET_HD int next_pow2(int v) {
    int p = 1;
    while (p < v) p <<= 1;
    return p;
}

template <typename T>
__global__ void __launch_bounds__(kFlagBlock)
candidate_flags_kernel(Params p, const T* __restrict__ scores, uint8_t* __restrict__ flags) {
    const long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (i >= (long long)p.n * p.a) return;
    flags[i] = is_candidate(p, scores + i * p.c) ? 1 : 0;
}

__global__ void __launch_bounds__(kCompactBlock)
compact_kernel(Params p, Workspace ws, unsigned char* __restrict__ work) {
    __shared__ int warp_totals[32];
    const int b = blockIdx.x;
    const uint8_t* flags = work + ws.flags + (long long)b * p.a;
    int* cand = reinterpret_cast<int*>(work + ws.cand) + (long long)b * p.a;
    int base = 0;
    for (int start = 0; start < p.a; start += blockDim.x) {
        const int i = start + threadIdx.x;
        const bool flag = i < p.a && flags[i] != 0;
        int total;
        const int pos = block_exclusive_count(flag, warp_totals, &total);
        if (flag) cand[base + pos] = i;
        base += total;
    }
    if (threadIdx.x == 0) reinterpret_cast<int*>(work + ws.cand_count)[b] = base;
}

template <typename T>
struct CandidateScore {
    const T* scores;  // this image
    const int* cand;
    int c, col;
    __device__ bool operator()(int e, uint32_t& key) const {
        key = score_key(to_float(scores[(long long)cand[e] * c + col]));
        return true;
    }
};

template <typename T>
__global__ void __launch_bounds__(kClassBlock)
class_nms_kernel(Params p, const T* __restrict__ boxes, const T* __restrict__ scores, Workspace ws,
                 unsigned char* __restrict__ work, int sort_n) {
    extern __shared__ __align__(16) unsigned char smem[];
    __shared__ SelectShared s;
    Box* sbox = reinterpret_cast<Box*>(smem);
    uint32_t* keys = reinterpret_cast<uint32_t*>(sbox + sort_n);
    int* elems = reinterpret_cast<int*>(keys + sort_n);

    const int f = blockIdx.x, b = blockIdx.y;
    const int num_fg = num_foreground(p);
    const int* cand = reinterpret_cast<const int*>(work + ws.cand) + (long long)b * p.a;
    const int count = reinterpret_cast<const int*>(work + ws.cand_count)[b];
    const long long slot = (long long)b * num_fg + f;
    int* kept_prior = reinterpret_cast<int*>(work + ws.kept_prior) + slot * p.top_k;
    float* kept_score = reinterpret_cast<float*>(work + ws.kept_score) + slot * p.top_k;
    int* kept_count = reinterpret_cast<int*>(work + ws.kept_count) + slot;
    const int want = min(p.top_k, count);
    if (want == 0) {
        if (threadIdx.x == 0) *kept_count = 0;
        return;
    }
    const int col = fg_column(p, f);
    const T* sc = scores + (long long)b * p.a * p.c;
    block_select(CandidateScore<T>{sc, cand, p.c, col}, count, want, s, keys, elems);
    block_sort(keys, elems, want, sort_n);

    const T* bx = boxes + (long long)b * p.a * 4;
    for (int j = threadIdx.x; j < want; j += blockDim.x) sbox[j] = load_box(bx + (long long)cand[elems[j]] * 4);
    __syncthreads();

    int base = 0;
    for (int start = 0; start < want; start += blockDim.x) {
        const int j = start + threadIdx.x;
        bool keep = j < want;
        if (keep) {
            const Box bj = sbox[j];
            for (int i = 0; i < j; ++i) {
                if (!survives(sbox[i], bj, p.nms_thresh)) {
                    keep = false;
                    break;
                }
            }
        }
        int total;
        const int pos = block_exclusive_count(keep, s.warp_totals, &total);
        if (keep) {
            const int prior = cand[elems[j]];
            kept_prior[base + pos] = prior;
            kept_score[base + pos] = to_float(sc[(long long)prior * p.c + col]);
        }
        base += total;
    }
    if (threadIdx.x == 0) *kept_count = base;
}

struct KeptScore {
    const float* score;  // this image, [fg, top_k]
    const int* count;    // this image, [fg]
    int top_k;
    __device__ bool operator()(int e, uint32_t& key) const {
        if (e % top_k >= count[e / top_k]) return false;
        key = score_key(score[e]);
        return true;
    }
};

template <typename T>
__global__ void __launch_bounds__(kFinalBlock)
final_kernel(Params p, const T* __restrict__ boxes, const T* __restrict__ scores,
             const T* __restrict__ coeffs, Workspace ws, const unsigned char* __restrict__ work,
             int sort_n, int32_t* __restrict__ count_out, T* __restrict__ out_boxes,
             T* __restrict__ out_scores, int32_t* __restrict__ out_classes, T* __restrict__ out_coeffs) {
    extern __shared__ __align__(16) unsigned char smem[];
    __shared__ SelectShared s;
    uint32_t* keys = reinterpret_cast<uint32_t*>(smem);
    int* elems = reinterpret_cast<int*>(keys + sort_n);

    const int b = blockIdx.x;
    const int num_fg = num_foreground(p);
    const long long slot = (long long)b * num_fg;
    const int* kept_prior = reinterpret_cast<const int*>(work + ws.kept_prior) + slot * p.top_k;
    const float* kept_score = reinterpret_cast<const float*>(work + ws.kept_score) + slot * p.top_k;
    const int* kept_count = reinterpret_cast<const int*>(work + ws.kept_count) + slot;
    if (threadIdx.x == 0) {
        int total = 0;
        for (int f = 0; f < num_fg; ++f) total += kept_count[f];
        s.total = total;
    }
    __syncthreads();
    const int want = min(p.max_det, s.total);
    if (want > 0) {
        block_select(KeptScore{kept_score, kept_count, p.top_k}, num_fg * p.top_k, want, s, keys, elems);
        block_sort(keys, elems, want, sort_n);
    }

    const T zero = from_float<T>(0.0f);
    const T* bx = boxes + (long long)b * p.a * 4;
    const T* sc = scores + (long long)b * p.a * p.c;
    const T* co = coeffs + (long long)b * p.a * p.k;
    T* ob = out_boxes + (long long)b * p.max_det * 4;
    T* os = out_scores + (long long)b * p.max_det;
    int32_t* ocl = out_classes + (long long)b * p.max_det;
    T* oco = out_coeffs + (long long)b * p.max_det * p.k;
    for (int d = threadIdx.x; d < p.max_det; d += blockDim.x) {
        if (d < want) {
            const int e = elems[d];
            const int f = e / p.top_k;
            const int prior = kept_prior[e];
            os[d] = sc[(long long)prior * p.c + fg_column(p, f)];
            ocl[d] = f;
        } else {
            os[d] = zero;
            ocl[d] = -1;
        }
    }
    for (int i = threadIdx.x; i < p.max_det * 4; i += blockDim.x) {
        const int d = i >> 2;
        ob[i] = d < want ? bx[(long long)kept_prior[elems[d]] * 4 + (i & 3)] : zero;
    }
    const long long coeff_total = (long long)p.max_det * p.k;
    for (long long i = threadIdx.x; i < coeff_total; i += blockDim.x) {
        const int d = int(i / p.k), q = int(i % p.k);
        oco[i] = d < want ? co[(long long)kept_prior[elems[d]] * p.k + q] : zero;
    }
    if (threadIdx.x == 0) count_out[b] = want;
}

template <typename T>
int launch(const Params& p, const Tensors& t, void* workspace, cudaStream_t stream) {
    if (p.n == 0) return 0;
    const Workspace ws = Workspace::layout(p);
    unsigned char* work = static_cast<unsigned char*>(workspace);
    const T* boxes = static_cast<const T*>(t.boxes);
    const T* scores = static_cast<const T*>(t.scores);
    const T* coeffs = static_cast<const T*>(t.coeffs);
    const long long na = (long long)p.n * p.a;
    if (na > 0) {
        const unsigned blocks = unsigned((na + kFlagBlock - 1) / kFlagBlock);
        candidate_flags_kernel<T><<<blocks, kFlagBlock, 0, stream>>>(p, scores, work + ws.flags);
    }
    compact_kernel<<<p.n, kCompactBlock, 0, stream>>>(p, ws, work);
    const int num_fg = num_foreground(p);
    if (num_fg > 0) {
        const int sort_n = next_pow2(p.top_k);
        const size_t smem = size_t(sort_n) * (sizeof(Box) + sizeof(uint32_t) + sizeof(int));
        class_nms_kernel<T><<<dim3(num_fg, p.n), kClassBlock, smem, stream>>>(p, boxes, scores, ws, work, sort_n);
    }
    const int sort_n = next_pow2(p.max_det);
    const size_t smem = size_t(sort_n) * (sizeof(uint32_t) + sizeof(int));
    final_kernel<T><<<p.n, kFinalBlock, smem, stream>>>(
        p, boxes, scores, coeffs, ws, work, sort_n, t.count, static_cast<T*>(t.out_boxes),
        static_cast<T*>(t.out_scores), t.out_classes, static_cast<T*>(t.out_coeffs));
    return static_cast<int>(cudaGetLastError());
}

}  // namespace

int fast_nms_launch(DType dtype, int n, int a, int c, int k, const Settings& s, const Tensors& t,
                    void* workspace, void* stream) {
    if (*fast_nms_check(n, a, c, k, s) != '\0') return -1;
    if (n > 65535) return -1;
    const Params p{n, a, c, k, s.top_k, s.max_det, s.background_class, s.conf_thresh, s.nms_thresh};
    cudaStream_t st = static_cast<cudaStream_t>(stream);
    return dtype == DType::kFloat32 ? launch<float>(p, t, workspace, st) : launch<half_t>(p, t, workspace, st);
}

}  // namespace nms
}  // namespace trtnet
