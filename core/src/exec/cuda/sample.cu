// Token sampling on the device, the same chain as sample_reference (runtime/sampler.cpp): repetition penalty over
// the distinct recent tokens -> greedy argmax (ties to the lowest id) or: sort by (logit desc, id asc) (CUB radix
// sort, stable over ascending ids) -> top-k -> probabilities at temperature 1 (double) -> top-p -> min-p ->
// weights at the temperature -> the draw u (computed on the host from (seed, step)). Only the token id is written.
#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>
#include <cub/device/device_radix_sort.cuh>

#include <algorithm>
#include <climits>
#include <string>

#include "exec/cuda/common.cuh"
#include "exec/cuda/cuda_check.h"
#include "exec/cuda/kernels.h"
#include "imp/error.h"

namespace imp::cuda_kernels {

namespace {

constexpr int kPrepThreads = 256;
constexpr int kArgThreads = 256;
constexpr int kFinalThreads = 1024;

// keys = logits with -0 folded into +0 (so the radix sort ties them as the reference's comparison does), ids = i.
__global__ void sample_prep_kernel(const float* __restrict__ logits, int64_t n, float* __restrict__ keys,
                                   int32_t* __restrict__ ids) {
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        const float x = logits[i];
        keys[i] = x == 0.f ? 0.f : x;
        ids[i] = int32_t(i);
    }
}

// Divides positive logits by the penalty and multiplies negative ones, once per distinct recent token.
__global__ void sample_penalty_kernel(float* keys, int64_t n, const int32_t* __restrict__ recent, int64_t n_recent,
                                      float penalty) {
    for (int64_t i = threadIdx.x; i < n_recent; i += blockDim.x) {
        const int32_t t = recent[i];
        if (t < 0 || t >= n) continue;
        bool first = true;
        for (int64_t j = 0; j < i && first; ++j) first = recent[j] != t;
        if (!first) continue;
        const float l = keys[t];
        keys[t] = l > 0 ? l / penalty : l * penalty;
    }
}

struct ArgMax {
    float v;
    int32_t i;
};
__device__ __forceinline__ ArgMax better(ArgMax a, ArgMax b) {
    return (b.v > a.v || (b.v == a.v && b.i < a.i)) ? b : a;
}
struct ArgMaxOp {
    __device__ ArgMax operator()(ArgMax a, ArgMax b) const { return better(a, b); }
};

// Stage 1: each block reduces a grid-stride share; stage 2 (final = true): one block reduces the block results.
__global__ void argmax_kernel(const float* __restrict__ keys, const int32_t* __restrict__ ids, int64_t n,
                              float* block_vals, int32_t* block_ids, int32_t* out, bool final) {
    using Reduce = cub::BlockReduce<ArgMax, kArgThreads>;
    __shared__ typename Reduce::TempStorage tmp;
    ArgMax best{-INFINITY, INT32_MAX};
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
        best = better(best, ArgMax{keys[i], ids ? ids[i] : int32_t(i)});
    best = Reduce(tmp).Reduce(best, ArgMaxOp{});
    if (threadIdx.x != 0) return;
    if (final) {
        *out = best.i == INT32_MAX ? 0 : best.i;
    } else {
        block_vals[blockIdx.x] = best.v;
        block_ids[blockIdx.x] = best.i;
    }
}

// One block over the sorted candidates; every thread owns a contiguous slice of [0, k).
struct Final {
    using Scan = cub::BlockScan<double, kFinalThreads>;
    using Reduce = cub::BlockReduce<double, kFinalThreads>;
    using IReduce = cub::BlockReduce<int, kFinalThreads>;
    union Tmp {
        typename Scan::TempStorage scan;
        typename Reduce::TempStorage red;
        typename IReduce::TempStorage ired;
    };
};

// First i in [0, k) where the running sum of f(i) satisfies crossed(sum); -1 if none. f is evaluated per element.
template <typename F, typename C>
__device__ int64_t find_crossing(int64_t k, F f, C crossed, Final::Tmp& tmp, long long* found) {
    const int64_t chunk = (k + kFinalThreads - 1) / kFinalThreads;
    const int64_t b = min64(k, threadIdx.x * chunk), e = min64(k, b + chunk);
    double local = 0;
    for (int64_t i = b; i < e; ++i) local += f(i);
    double before;
    if (threadIdx.x == 0) *found = LLONG_MAX;
    __syncthreads();
    Final::Scan(tmp.scan).ExclusiveSum(local, before);
    if (b < e && crossed(before + local) && !crossed(before)) {
        double run = before;
        int64_t hit = e - 1;  // the sums above crossed inside this slice even if this walk rounds differently
        for (int64_t i = b; i < e; ++i) {
            run += f(i);
            if (crossed(run)) {
                hit = i;
                break;
            }
        }
        atomicMin(found, (long long)hit);
    }
    __syncthreads();
    const int64_t r = *found == LLONG_MAX ? -1 : *found;
    __syncthreads();
    return r;
}

__global__ void __launch_bounds__(kFinalThreads) sample_final_kernel(const float* __restrict__ keys,
                                                                     const int32_t* __restrict__ ids, int64_t n,
                                                                     int32_t top_k, float top_p, float min_p,
                                                                     float temperature, double u, int32_t* out) {
    __shared__ Final::Tmp tmp;
    __shared__ long long found;
    __shared__ double bcast;
    int64_t k = (top_k > 0 && top_k < n) ? top_k : n;
    const double mx = keys[0];
    const int64_t chunk = (k + kFinalThreads - 1) / kFinalThreads;
    const int64_t b = min64(k, threadIdx.x * chunk), e = min64(k, b + chunk);

    double local = 0;
    for (int64_t i = b; i < e; ++i) local += exp(double(keys[i]) - mx);
    double sum = Final::Reduce(tmp.red).Sum(local);
    if (threadIdx.x == 0) bcast = sum;
    __syncthreads();
    sum = bcast;
    __syncthreads();
    auto prob = [&](int64_t i) { return exp(double(keys[i]) - mx) / sum; };

    if (top_p < 1.f) {
        const double tp = top_p;
        const int64_t i = find_crossing(k, prob, [tp](double c) { return c >= tp; }, tmp, &found);
        if (i >= 0) k = i + 1;
    }
    if (min_p > 0.f) {
        const double floor = double(min_p) * prob(0);
        const int64_t c2 = (k + kFinalThreads - 1) / kFinalThreads;
        const int64_t b2 = min64(k, threadIdx.x * c2), e2 = min64(k, b2 + c2);
        int cnt = 0;
        for (int64_t i = b2 < 1 ? 1 : b2; i < e2; ++i) cnt += prob(i) >= floor;
        const int total = Final::IReduce(tmp.ired).Sum(cnt);
        if (threadIdx.x == 0) found = total;
        __syncthreads();
        k = 1 + found;
        __syncthreads();
    }
    auto weight = [&](int64_t i) { return exp((double(keys[i]) - mx) / double(temperature)); };
    const int64_t c3 = (k + kFinalThreads - 1) / kFinalThreads;
    const int64_t b3 = min64(k, threadIdx.x * c3), e3 = min64(k, b3 + c3);
    double wl = 0;
    for (int64_t i = b3; i < e3; ++i) wl += weight(i);
    double tot = Final::Reduce(tmp.red).Sum(wl);
    if (threadIdx.x == 0) bcast = tot;
    __syncthreads();
    tot = bcast;
    __syncthreads();
    const double r = u * tot;
    const int64_t pick = find_crossing(k, weight, [r](double c) { return c > r; }, tmp, &found);
    if (threadIdx.x == 0) *out = ids[pick >= 0 ? pick : k - 1];
}

}  // namespace

size_t sample_sort_temp_bytes(int64_t max_vocab) {
    size_t bytes = 0;
    IMP_CUDA_CHECK(cub::DeviceRadixSort::SortPairsDescending(nullptr, bytes, static_cast<const float*>(nullptr),
                                                             static_cast<float*>(nullptr),
                                                             static_cast<const int32_t*>(nullptr),
                                                             static_cast<int32_t*>(nullptr), int(max_vocab)));
    return bytes;
}

void sample(const float* logits, int64_t n_vocab, const SamplingParams& p, double u, const int32_t* recent,
            int64_t n_recent, int32_t* out, const SampleScratch& sc, cudaStream_t s) {
    if (n_vocab <= 0) throw Error("cuda sample: empty vocabulary");
    if (n_vocab > sc.max_vocab)
        throw Error("cuda sample: vocabulary of " + std::to_string(n_vocab) + " exceeds the sampler's maximum " +
                    std::to_string(sc.max_vocab));
    const bool penalty = p.repeat_penalty != 1.f && n_recent > 0 && recent;
    const bool greedy = p.temperature <= 0.f;
    const float* keys = logits;
    if (penalty || !greedy) {
        const unsigned blocks = unsigned(min64(div_up(n_vocab, kPrepThreads), 1024));
        sample_prep_kernel<<<blocks, kPrepThreads, 0, s>>>(logits, n_vocab, sc.keys_in, sc.ids_in);
        IMP_CUDA_CHECK_LAUNCH();
        keys = sc.keys_in;
    }
    if (penalty) {
        sample_penalty_kernel<<<1, 256, 0, s>>>(sc.keys_in, n_vocab, recent, n_recent, p.repeat_penalty);
        IMP_CUDA_CHECK_LAUNCH();
    }
    if (greedy) {
        argmax_kernel<<<kArgmaxBlocks, kArgThreads, 0, s>>>(keys, nullptr, n_vocab, sc.block_vals, sc.block_ids, out,
                                                            false);
        IMP_CUDA_CHECK_LAUNCH();
        argmax_kernel<<<1, kArgThreads, 0, s>>>(sc.block_vals, sc.block_ids, kArgmaxBlocks, nullptr, nullptr, out,
                                                true);
        IMP_CUDA_CHECK_LAUNCH();
        return;
    }
    size_t temp = sc.sort_temp_bytes;
    IMP_CUDA_CHECK(cub::DeviceRadixSort::SortPairsDescending(sc.sort_temp, temp, sc.keys_in, sc.keys_out, sc.ids_in,
                                                             sc.ids_out, int(n_vocab), 0, 32, s));
    sample_final_kernel<<<1, kFinalThreads, 0, s>>>(sc.keys_out, sc.ids_out, n_vocab, p.top_k, p.top_p, p.min_p,
                                                    p.temperature, u, out);
    IMP_CUDA_CHECK_LAUNCH();
}

}  // namespace imp::cuda_kernels
