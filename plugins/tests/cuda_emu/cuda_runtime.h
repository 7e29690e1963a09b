// CPU emulation of the small CUDA subset trtnet's kernels use, to run the .cu files'
// kernel code on a machine without a GPU (tests/test_kernels_cuda_emulated.py).
//
// Every block runs on blockDim real threads (std::thread) so __syncthreads, warp ballots
// and shared-memory atomics interleave for real; blocks run one after another, so
// __shared__ variables can be plain statics. Threads that return early drop out of the
// barriers, as exited threads do on the GPU. The test rewrites `k<<<g, b, smem, s>>>(...)`
// into emu::launch(...) and `extern __shared__` arrays into emu::dynamic_smem().
#pragma once

#include <algorithm>
#include <atomic>
#include <mutex>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <thread>
#include <type_traits>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#define __align__(n) alignas(n)

using cudaStream_t = void*;
using cudaError_t = int;
constexpr cudaError_t cudaSuccess = 0;

struct dim3 {
    unsigned x = 1, y = 1, z = 1;
    dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct uint3 {
    unsigned x = 0, y = 0, z = 0;
};

inline thread_local uint3 threadIdx;
inline thread_local uint3 blockIdx;
inline thread_local dim3 blockDim;
inline thread_local dim3 gridDim;

template <typename A, typename B>
inline std::common_type_t<A, B> min(A a, B b) { return a < b ? a : b; }
template <typename A, typename B>
inline std::common_type_t<A, B> max(A a, B b) { return a < b ? b : a; }

namespace emu {

// Generation-counting barrier with arrive_and_drop: arrivals are counted under a mutex, the
// waiters yield until the generation moves (no futex wake-up storms with 1024 threads).
class Barrier {
public:
    explicit Barrier(unsigned count) : expected_(count) {}
    void arrive_and_wait() {
        unsigned long long gen;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            gen = generation_.load(std::memory_order_relaxed);
            if (++arrived_ == expected_) {
                next_phase(gen);
                return;
            }
        }
        while (generation_.load(std::memory_order_acquire) == gen) std::this_thread::yield();
    }
    void arrive_and_drop() {
        std::lock_guard<std::mutex> lock(mutex_);
        --expected_;
        if (expected_ > 0 && arrived_ == expected_) next_phase(generation_.load(std::memory_order_relaxed));
    }

private:
    void next_phase(unsigned long long gen) {
        arrived_ = 0;
        generation_.store(gen + 1, std::memory_order_release);
    }
    std::mutex mutex_;
    unsigned expected_;
    unsigned arrived_ = 0;
    std::atomic<unsigned long long> generation_{0};
};

struct Block {
    std::unique_ptr<Barrier> block_barrier;
    std::vector<std::unique_ptr<Barrier>> warp_barriers;
    std::unique_ptr<std::atomic<uint32_t>[]> ballots;
    std::vector<unsigned char> smem;
};

inline Block*& current_block() {
    static Block* b = nullptr;
    return b;
}

inline unsigned flat_thread() { return threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z); }

inline unsigned char* dynamic_smem() { return current_block()->smem.data(); }

inline cudaError_t& last_error() {
    static cudaError_t e = cudaSuccess;
    return e;
}

// Runs kernel() for every thread of every block of the grid: blockDim worker threads are
// created once per launch and step through the blocks together; worker 0 sets up each
// block's barriers and shared memory between two pool-wide barriers.
template <typename Kernel>
void launch(dim3 grid, dim3 block, size_t smem_bytes, cudaStream_t, Kernel kernel) {
    const unsigned threads = block.x * block.y * block.z;
    if (threads % 32 != 0 || threads > 1024 || smem_bytes > 48 * 1024) {
        last_error() = 1;  // the launch would fail on a GPU too (or the emulation cannot model it)
        return;
    }
    const unsigned warps = threads / 32;
    const unsigned long long blocks = (unsigned long long)grid.x * grid.y * grid.z;
    if (blocks == 0) return;
    Barrier pool_barrier(threads);
    std::unique_ptr<Block> current;
    auto prepare = [&] {
        current = std::make_unique<Block>();
        current->block_barrier = std::make_unique<Barrier>(threads);
        for (unsigned w = 0; w < warps; ++w) current->warp_barriers.push_back(std::make_unique<Barrier>(32));
        current->ballots = std::make_unique<std::atomic<uint32_t>[]>(warps);
        for (unsigned w = 0; w < warps; ++w) current->ballots[w] = 0;
        current->smem.assign(smem_bytes + 16, 0xCD);  // garbage, like uninitialised shared memory
        current_block() = current.get();
    };
    std::vector<std::thread> pool;
    pool.reserve(threads);
    for (unsigned t = 0; t < threads; ++t) {
        pool.emplace_back([&, t] {
            threadIdx = uint3{t % block.x, (t / block.x) % block.y, t / (block.x * block.y)};
            blockDim = block;
            gridDim = grid;
            for (unsigned long long id = 0; id < blocks; ++id) {
                if (t == 0) prepare();
                pool_barrier.arrive_and_wait();  // block ready
                Block* b = current_block();
                blockIdx = uint3{unsigned(id % grid.x), unsigned((id / grid.x) % grid.y),
                                 unsigned(id / ((unsigned long long)grid.x * grid.y))};
                kernel();
                b->warp_barriers[t / 32]->arrive_and_drop();
                b->block_barrier->arrive_and_drop();
                pool_barrier.arrive_and_wait();  // every thread is done with this block
            }
        });
    }
    for (auto& th : pool) th.join();
    current_block() = nullptr;
}

}  // namespace emu

inline void __syncthreads() { emu::current_block()->block_barrier->arrive_and_wait(); }

inline unsigned __ballot_sync(unsigned, bool pred) {
    emu::Block* b = emu::current_block();
    const unsigned t = emu::flat_thread(), w = t / 32, lane = t % 32;
    if (pred) b->ballots[w].fetch_or(1u << lane);
    b->warp_barriers[w]->arrive_and_wait();
    const unsigned v = b->ballots[w].load();
    b->warp_barriers[w]->arrive_and_wait();
    if (lane == 0) b->ballots[w] = 0;
    b->warp_barriers[w]->arrive_and_wait();
    return v;
}

inline int __popc(unsigned v) { return __builtin_popcount(v); }

template <typename T>
inline T atomicAdd(T* address, T value) {
    return std::atomic_ref<T>(*address).fetch_add(value);
}

inline cudaError_t cudaGetLastError() {
    cudaError_t e = emu::last_error();
    emu::last_error() = cudaSuccess;
    return e;
}

// Vector types and the error code the mask assembly launcher (csrc/masks) uses.
constexpr cudaError_t cudaErrorInvalidValue = 1;
struct alignas(16) uint4 {
    unsigned x, y, z, w;
};
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return uint4{x, y, z, w}; }
struct alignas(16) float4 {
    float x, y, z, w;
};
inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }
