// Token sampling on the device, the same chain as sample_reference (runtime/sampler.cpp): repetition penalty over
// the distinct recent tokens -> greedy argmax (ties to the lowest id) or: sort by (logit desc, id asc) (CUB radix
// sort, stable over ascending ids) -> top-k -> probabilities at temperature 1 (double) -> top-p -> min-p ->
// weights at the temperature -> the draw u (computed on the host from (seed, step)). Only the token id is written.
// Launches per call: plain greedy rows, 2 per 256 rows (batched argmax); rows drawing from a top-k of at most 64 and
// greedy rows with a penalty, 2 per 64 rows (sample_topk_rows: slices sorted in blocks, then one block per row);
// any other row (top-k 0 or above 64, or a vocabulary of at most 2048) 3-5 of its own (a full radix sort).
#include <cub/block/block_radix_sort.cuh>
#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>
#include <cub/device/device_radix_sort.cuh>

#include <algorithm>
#include <climits>
#include <string>

#include "exec/cuda/common.cuh"
#include "exec/cuda/cuda_check.h"
#include "exec/cuda/kernels.h"
#include "exec/cuda/launch.cuh"
#include "imp/error.h"

namespace imp::cuda_kernels {

namespace {

constexpr int kPrepThreads = 256;
constexpr int kArgThreads = 256;
constexpr int kFinalThreads = 1024;

// keys = logits with -0 folded into +0 (so the radix sort ties them as the reference's comparison does), ids = i.
__global__ void sample_prep_kernel(const float* __restrict__ logits, int64_t n, float* __restrict__ keys,
                                   int32_t* __restrict__ ids) {
    pdl_launch_dependents();
    pdl_wait();
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        const float x = logits[i];
        keys[i] = x == 0.f ? 0.f : x;
        ids[i] = int32_t(i);
    }
}

// Divides positive logits by the penalty and multiplies negative ones, once per distinct recent token.
__global__ void sample_penalty_kernel(float* keys, int64_t n, const int32_t* __restrict__ recent, int64_t n_recent,
                                      float penalty) {
    pdl_launch_dependents();
    pdl_wait();
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

// Row blockIdx.y (keys and ids at row * stride). Stage 1: each block of the row reduces a grid-stride share into
// block_vals / block_ids [row][blockIdx.x]; stage 2 (final = true, one block per row): out[row] = the row's best id.
__global__ void argmax_kernel(const float* __restrict__ keys, const int32_t* __restrict__ ids, int64_t n,
                              int64_t stride, float* block_vals, int32_t* block_ids, int32_t* out, bool final) {
    pdl_launch_dependents();
    pdl_wait();
    using Reduce = cub::BlockReduce<ArgMax, kArgThreads>;
    __shared__ typename Reduce::TempStorage tmp;
    const int64_t row = blockIdx.y;
    keys += row * stride;
    if (ids) ids += row * stride;
    ArgMax best{-INFINITY, INT32_MAX};
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
        best = better(best, ArgMax{keys[i], ids ? ids[i] : int32_t(i)});
    best = Reduce(tmp).Reduce(best, ArgMaxOp{});
    if (threadIdx.x != 0) return;
    if (final) {
        out[row] = best.i == INT32_MAX ? 0 : best.i;
    } else {
        block_vals[row * gridDim.x + blockIdx.x] = best.v;
        block_ids[row * gridDim.x + blockIdx.x] = best.i;
    }
}

// ---- top-k candidates without a full sort (0 < top_k <= kFastTopK), many rows per launch: every block radix-sorts
// a slice of 2048 keys of one row (the repetition penalty applied as they load) and keeps its best top_k; one block
// per row sorts the survivors. Both sorts are stable over ascending ids, so ties keep the reference's (logit desc,
// id asc) order. Greedy rows with a penalty run as top-1.
constexpr int kSliceThreads = 256, kSliceItems = 8, kSlice = kSliceThreads * kSliceItems;
constexpr int kMergeItems = kArgmaxBlocks * kFastTopK / kFinalThreads;

struct RowDesc {
    int64_t row;
    const int32_t* recent;  // null: no penalty
    double u;
    int32_t n_recent, top_k, greedy;
    float top_p, min_p, temperature, penalty;
};
struct RowBatch {
    const float* logits;
    int64_t stride, n_vocab;
    int32_t* out;
    float* cand_keys;
    int32_t* cand_ids;
    float* top_keys;
    int32_t* top_ids;
    int n_rows, slices;
    RowDesc r[kTopKBatchRows];
};
static_assert(sizeof(RowBatch) <= 4096, "RowBatch travels as a kernel parameter");

__global__ void __launch_bounds__(kSliceThreads) topk_slice_kernel(const __grid_constant__ RowBatch b) {
    pdl_launch_dependents();
    pdl_wait();
    using Sort = cub::BlockRadixSort<float, kSliceThreads, kSliceItems, int32_t>;
    using Reduce = cub::BlockReduce<ArgMax, kSliceThreads>;
    __shared__ union {
        typename Sort::TempStorage sort;
        typename Reduce::TempStorage reduce;
    } tmp;
    __shared__ float sk[kSlice];
    const RowDesc& d = b.r[blockIdx.y];
    const float* keys = b.logits + d.row * b.stride;
    const int64_t n = b.n_vocab, base = int64_t(blockIdx.x) * kSlice;
    for (int i = threadIdx.x; i < kSlice; i += kSliceThreads) {
        const float x = base + i < n ? keys[base + i] : -INFINITY;
        sk[i] = x == 0.f ? 0.f : x;  // -0 folded into +0, as sample_prep_kernel
    }
    if (d.recent) {  // sample_penalty_kernel's rule for the distinct recent tokens inside this slice
        __syncthreads();
        for (int i = threadIdx.x; i < d.n_recent; i += kSliceThreads) {
            const int32_t t = d.recent[i];
            if (t < base || t >= base + kSlice || t >= n) continue;
            bool first = true;
            for (int j = 0; j < i && first; ++j) first = d.recent[j] != t;
            if (!first) continue;
            const float l = sk[t - base];
            sk[t - base] = l > 0 ? l / d.penalty : l * d.penalty;
        }
    }
    __syncthreads();
    float k[kSliceItems];
    int32_t id[kSliceItems];
#pragma unroll
    for (int i = 0; i < kSliceItems; ++i) {
        const int li = threadIdx.x * kSliceItems + i;
        k[i] = sk[li];
        id[i] = base + li < n ? int32_t(base + li) : INT32_MAX;
    }
    // The row's candidates block-major: slice blockIdx.x at blockIdx.x * top_k.
    const int64_t o = int64_t(blockIdx.y) * kArgmaxBlocks * kFastTopK + int64_t(blockIdx.x) * d.top_k;
    if (d.greedy) {  // argmax_kernel's reduction (a NaN never wins, ties to the lowest id), not a sort
        ArgMax best{-INFINITY, INT32_MAX};
#pragma unroll
        for (int i = 0; i < kSliceItems; ++i) best = better(best, ArgMax{k[i], id[i]});
        best = Reduce(tmp.reduce).Reduce(best, ArgMaxOp{});
        if (threadIdx.x == 0) b.cand_keys[o] = best.v, b.cand_ids[o] = best.i;
        return;
    }
    Sort(tmp.sort).SortDescending(k, id);
#pragma unroll
    for (int i = 0; i < kSliceItems; ++i) {
        const int rank = threadIdx.x * kSliceItems + i;
        if (rank < d.top_k) {
            b.cand_keys[o + rank] = k[i];
            b.cand_ids[o + rank] = id[i];
        }
    }
}

// ---- the chain after the sort, in one block of kFinalThreads over sorted keys/ids.
using FScan = cub::BlockScan<double, kFinalThreads>;
using FReduce = cub::BlockReduce<double, kFinalThreads>;
union FinalTmp {
    typename FScan::TempStorage scan;
    typename FReduce::TempStorage red;
};

// First i in [begin, end) where carry + sum_{begin..i} f crosses (crossed(...) true), walking chunks of the block
// size in order and stopping at the first chunk that crosses; -1 if none. All threads get the result.
template <typename F, typename C>
__device__ int64_t walk(int64_t begin, int64_t end, double carry, F f, C crossed, FinalTmp& tmp, long long* found) {
    for (int64_t c0 = begin; c0 < end; c0 += kFinalThreads) {
        const int64_t i = c0 + threadIdx.x;
        const double v = i < end ? f(i) : 0.0;
        double incl, agg;
        if (threadIdx.x == 0) *found = LLONG_MAX;
        __syncthreads();
        FScan(tmp.scan).InclusiveSum(v, incl, agg);
        if (i < end && crossed(carry + incl)) atomicMin(found, (long long)i);
        __syncthreads();
        const long long r = *found;
        __syncthreads();
        if (r != LLONG_MAX) return r;
        carry += agg;
    }
    return -1;
}

// Block-wide sum of f over [begin, end) (every thread gets it).
template <typename F> __device__ double block_sum_range(int64_t begin, int64_t end, F f, FinalTmp& tmp, double* bc) {
    double local = 0;
    for (int64_t i = begin + threadIdx.x; i < end; i += kFinalThreads) local += f(i);
    const double t = FReduce(tmp.red).Sum(local);
    if (threadIdx.x == 0) *bc = t;
    __syncthreads();
    const double r = *bc;
    __syncthreads();
    return r;
}

// parts (or null): kArgmaxBlocks partial sums of exp(l - mx) and of exp((l - mx) / T) over contiguous slices of
// [0, k) of `slice` items each, from sample_parts_kernel.
__device__ void sample_chain(const float* keys, const int32_t* ids, int64_t k, float top_p, float min_p,
                             float temperature, double u, const double* parts, int64_t slice, int32_t* out) {
    __shared__ FinalTmp tmp;
    __shared__ long long found;
    __shared__ double bc;
    const double mx = keys[0];
    auto pexp = [&](int64_t i) { return exp(double(keys[i]) - mx); };
    double sum = 0;
    if (parts) {
        for (int b = 0; b < kArgmaxBlocks; ++b) sum += parts[b];
    } else {
        sum = block_sum_range(0, k, pexp, tmp, &bc);
    }
    auto prob = [&](int64_t i) { return pexp(i) / sum; };
    int64_t kk = k;
    if (top_p < 1.f) {
        const double tp = top_p;
        const int64_t i = walk(0, kk, 0.0, prob, [tp](double c) { return c >= tp; }, tmp, &found);
        if (i >= 0) kk = i + 1;
    }
    if (min_p > 0.f && kk > 1) {  // probabilities fall along the sorted order: cut at the first one below the floor
        const double floor = double(min_p) * prob(0);
        const int64_t i = walk(1, kk, 0.0, [&](int64_t j) { return prob(j) < floor ? 1.0 : 0.0; },
                               [](double c) { return c > 0.5; }, tmp, &found);
        if (i >= 0) kk = i;
    }
    const double t = temperature;
    auto weight = [&](int64_t i) { return exp((double(keys[i]) - mx) / t); };
    int64_t pick = -1;
    if (parts && kk == k) {
        // Whole range: find the slice whose partial sums cross the draw, then walk inside it.
        __shared__ double carry_s;
        __shared__ int b_s;
        if (threadIdx.x == 0) {
            double tot = 0;
            for (int b = 0; b < kArgmaxBlocks; ++b) tot += parts[kArgmaxBlocks + b];
            const double r = u * tot;
            double c = 0;
            int b = 0;
            for (; b < kArgmaxBlocks - 1; ++b) {
                if (c + parts[kArgmaxBlocks + b] > r) break;
                c += parts[kArgmaxBlocks + b];
            }
            carry_s = c;
            b_s = b;
            bc = r;
        }
        __syncthreads();
        const double r = bc, carry = carry_s;
        const int64_t b0 = min64(k, int64_t(b_s) * slice), b1 = min64(k, b0 + slice);
        pick = walk(b0, b1, carry, weight, [r](double c) { return c > r; }, tmp, &found);
        if (pick < 0) pick = b1 - 1;  // the slice sums crossed; only rounding kept the walk below the draw
    } else {
        const double r = u * block_sum_range(0, kk, weight, tmp, &bc);
        pick = walk(0, kk, 0.0, weight, [r](double c) { return c > r; }, tmp, &found);
    }
    if (threadIdx.x == 0) *out = ids[pick >= 0 ? pick : kk - 1];
}

__global__ void __launch_bounds__(kFinalThreads) sample_final_kernel(const float* __restrict__ keys,
                                                                     const int32_t* __restrict__ ids, int64_t k,
                                                                     float top_p, float min_p, float temperature,
                                                                     double u, const double* parts, int64_t slice,
                                                                     int32_t* out) {
    pdl_launch_dependents();
    pdl_wait();
    sample_chain(keys, ids, k, top_p, min_p, temperature, u, parts, slice, out);
}

// One block per row: merges the row's slice candidates (block-major, so ties stay in id order), keeps the best
// top_k, runs the chain (greedy rows: the first).
__global__ void __launch_bounds__(kFinalThreads) topk_merge_kernel(const __grid_constant__ RowBatch b) {
    pdl_launch_dependents();
    pdl_wait();
    using Sort = cub::BlockRadixSort<float, kFinalThreads, kMergeItems, int32_t>;
    using Reduce = cub::BlockReduce<ArgMax, kFinalThreads>;
    __shared__ union {
        typename Sort::TempStorage sort;
        typename Reduce::TempStorage reduce;
    } tmp;
    const RowDesc& d = b.r[blockIdx.x];
    const int64_t n_cand = int64_t(b.slices) * d.top_k;
    const float* ck = b.cand_keys + int64_t(blockIdx.x) * kArgmaxBlocks * kFastTopK;
    const int32_t* ci = b.cand_ids + int64_t(blockIdx.x) * kArgmaxBlocks * kFastTopK;
    if (d.greedy) {  // the slices' best (one each), as argmax_kernel's second stage
        ArgMax best = threadIdx.x < b.slices ? ArgMax{ck[threadIdx.x], ci[threadIdx.x]} : ArgMax{-INFINITY, INT32_MAX};
        best = Reduce(tmp.reduce).Reduce(best, ArgMaxOp{});
        if (threadIdx.x == 0) b.out[d.row] = best.i == INT32_MAX ? 0 : best.i;
        return;
    }
    float* keys_out = b.top_keys + int64_t(blockIdx.x) * kFastTopK;
    int32_t* ids_out = b.top_ids + int64_t(blockIdx.x) * kFastTopK;
    float k[kMergeItems];
    int32_t id[kMergeItems];
#pragma unroll
    for (int i = 0; i < kMergeItems; ++i) {
        const int64_t g = int64_t(threadIdx.x) * kMergeItems + i;
        k[i] = g < n_cand ? ck[g] : -INFINITY;
        id[i] = g < n_cand ? ci[g] : INT32_MAX;
    }
    Sort(tmp.sort).SortDescending(k, id);
#pragma unroll
    for (int i = 0; i < kMergeItems; ++i) {
        const int rank = threadIdx.x * kMergeItems + i;
        if (rank < d.top_k) {
            keys_out[rank] = k[i];
            ids_out[rank] = id[i];
        }
    }
    __syncthreads();
    sample_chain(keys_out, ids_out, d.top_k, d.top_p, d.min_p, d.temperature, d.u, nullptr, 0, b.out + d.row);
}

// Partial sums over kArgmaxBlocks contiguous slices of [0, k): exp(l - mx) and exp((l - mx) / T), in double.
__global__ void sample_parts_kernel(const float* __restrict__ keys, int64_t k, int64_t slice, float temperature,
                                    double* parts) {
    pdl_launch_dependents();
    pdl_wait();
    using Reduce = cub::BlockReduce<double, kArgThreads>;
    __shared__ typename Reduce::TempStorage tmp;
    const double mx = keys[0], t = temperature;
    const int64_t b0 = min64(k, int64_t(blockIdx.x) * slice), b1 = min64(k, b0 + slice);
    double p = 0, w = 0;
    for (int64_t i = b0 + threadIdx.x; i < b1; i += blockDim.x) {
        const double d = double(keys[i]) - mx;
        p += exp(d);
        w += exp(d / t);
    }
    const double sp = Reduce(tmp).Sum(p);
    __syncthreads();
    const double sw = Reduce(tmp).Sum(w);
    if (threadIdx.x == 0) {
        parts[blockIdx.x] = sp;
        parts[kArgmaxBlocks + blockIdx.x] = sw;
    }
}

// Two launches: `blocks` partial argmaxes per row, then one block per row.
void argmax_rows(const float* keys, int64_t stride, int64_t n_rows, int64_t n, int blocks, int32_t* out,
                 const SampleScratch& sc, Queue s) {
    IMP_CUDA_CHECK(launch(argmax_kernel, dim3(unsigned(blocks), unsigned(n_rows)), dim3(kArgThreads), 0, s.stream,
                          s.pdl, keys, static_cast<const int32_t*>(nullptr), n, stride, sc.block_vals, sc.block_ids,
                          out, false));
    IMP_CUDA_CHECK(launch(argmax_kernel, dim3(1, unsigned(n_rows)), dim3(kArgThreads), 0, s.stream, s.pdl,
                          static_cast<const float*>(sc.block_vals), static_cast<const int32_t*>(sc.block_ids),
                          int64_t(blocks), int64_t(blocks), static_cast<float*>(nullptr),
                          static_cast<int32_t*>(nullptr), out, true));
}

}  // namespace

void sample_argmax_rows(const float* logits, int64_t logits_stride, int64_t n_rows, int64_t n_vocab, int32_t* out,
                        const SampleScratch& sc, Queue s) {
    if (n_vocab <= 0) throw Error("cuda sample: empty vocabulary");
    // Fewer blocks per row when there are many rows (the grid stays near kArgmaxBlocks * 16 blocks); any split
    // gives the same id (ties to the lowest id).
    for (int64_t r0 = 0; r0 < n_rows; r0 += kSampleBatchRows) {
        const int64_t rows = std::min<int64_t>(kSampleBatchRows, n_rows - r0);
        const int blocks = int(std::max<int64_t>(16, kArgmaxBlocks / rows));
        argmax_rows(logits + r0 * logits_stride, logits_stride, rows, n_vocab, blocks, out + r0, sc, s);
    }
}

size_t sample_sort_temp_bytes(int64_t max_vocab) {
    size_t bytes = 0;
    IMP_CUDA_CHECK(cub::DeviceRadixSort::SortPairsDescending(nullptr, bytes, static_cast<const float*>(nullptr),
                                                             static_cast<float*>(nullptr),
                                                             static_cast<const int32_t*>(nullptr),
                                                             static_cast<int32_t*>(nullptr), int(max_vocab)));
    return bytes;
}

void sample(const float* logits, int64_t n_vocab, const SamplingParams& p, double u, const int32_t* recent,
            int64_t n_recent, int32_t* out, const SampleScratch& sc, Queue s) {
    if (n_vocab <= 0) throw Error("cuda sample: empty vocabulary");
    if (n_vocab > sc.max_vocab)
        throw Error("cuda sample: vocabulary of " + std::to_string(n_vocab) + " exceeds the sampler's maximum " +
                    std::to_string(sc.max_vocab));
    const bool penalty = p.repeat_penalty != 1.f && n_recent > 0 && recent;
    const bool greedy = p.temperature <= 0.f;
    const float* keys = logits;
    if (penalty || !greedy) {
        const unsigned blocks = unsigned(min64(div_up(n_vocab, kPrepThreads), 1024));
        IMP_CUDA_CHECK(launch(sample_prep_kernel, dim3(blocks), dim3(kPrepThreads), 0, s.stream, s.pdl, logits, n_vocab,
                              sc.keys_in, sc.ids_in));
        keys = sc.keys_in;
    }
    if (penalty) {
        IMP_CUDA_CHECK(launch(sample_penalty_kernel, dim3(1), dim3(256), 0, s.stream, s.pdl, sc.keys_in, n_vocab,
                              recent, n_recent, p.repeat_penalty));
    }
    if (greedy) return argmax_rows(keys, 0, 1, n_vocab, kArgmaxBlocks, out, sc, s);
    const int64_t k = (p.top_k > 0 && p.top_k < n_vocab) ? p.top_k : n_vocab;
    size_t temp = sc.sort_temp_bytes;
    IMP_CUDA_CHECK(cub::DeviceRadixSort::SortPairsDescending(sc.sort_temp, temp, sc.keys_in, sc.keys_out, sc.ids_in,
                                                             sc.ids_out, int(n_vocab), 0, 32, s.stream));
    const double* parts = nullptr;
    const int64_t slice = (k + kArgmaxBlocks - 1) / kArgmaxBlocks;
    if (k > 4 * kFinalThreads) {
        IMP_CUDA_CHECK(launch(sample_parts_kernel, dim3(kArgmaxBlocks), dim3(kArgThreads), 0, s.stream, s.pdl,
                              sc.keys_out, k, slice, p.temperature, sc.parts));
        parts = sc.parts;
    }
    IMP_CUDA_CHECK(launch(sample_final_kernel, dim3(1), dim3(kFinalThreads), 0, s.stream, s.pdl, sc.keys_out,
                          sc.ids_out, k, p.top_p, p.min_p, p.temperature, u, parts, slice, out));
}

}  // namespace imp::cuda_kernels

namespace imp::cuda_kernels {

bool topk_row_fits(const SamplingParams& p, bool penalty, int64_t n_vocab, int64_t max_vocab) {
    if (n_vocab <= kSlice || n_vocab > max_vocab || n_vocab > int64_t(kArgmaxBlocks) * kSlice) return false;
    return p.temperature <= 0.f ? penalty : p.top_k > 0 && p.top_k <= kFastTopK;
}

void sample_topk_rows(const float* logits, int64_t logits_stride, int64_t n_vocab, const TopKRow* rows,
                      int64_t n_rows, int32_t* out, const SampleScratch& sc, Queue s) {
    for (int64_t r0 = 0; r0 < n_rows; r0 += kTopKBatchRows) {
        RowBatch b{};
        b.logits = logits;
        b.stride = logits_stride;
        b.n_vocab = n_vocab;
        b.out = out;
        b.cand_keys = sc.cand_keys;
        b.cand_ids = sc.cand_ids;
        b.top_keys = sc.top_keys;
        b.top_ids = sc.top_ids;
        b.slices = div_up(n_vocab, kSlice);
        b.n_rows = int(std::min<int64_t>(kTopKBatchRows, n_rows - r0));
        for (int i = 0; i < b.n_rows; ++i) {
            const TopKRow& t = rows[r0 + i];
            if (!topk_row_fits(t.p, t.recent && t.n_recent > 0 && t.p.repeat_penalty != 1.f, n_vocab, sc.max_vocab))
                throw Error("cuda sample: a row the batched top-k sampler does not take (top_k " +
                            std::to_string(t.p.top_k) + ", vocabulary " + std::to_string(n_vocab) + ")");
            RowDesc& d = b.r[i];
            d.row = t.row;
            const bool pen = t.recent && t.n_recent > 0 && t.p.repeat_penalty != 1.f;
            d.recent = pen ? t.recent : nullptr;
            if (t.n_recent > INT32_MAX) throw Error("cuda sample: " + std::to_string(t.n_recent) + " recent tokens");
            d.n_recent = pen ? int32_t(t.n_recent) : 0;
            d.greedy = t.p.temperature <= 0.f;
            d.top_k = d.greedy ? 1 : int32_t(std::min<int64_t>(t.p.top_k, n_vocab));
            d.top_p = t.p.top_p;
            d.min_p = t.p.min_p;
            d.temperature = t.p.temperature;
            d.penalty = t.p.repeat_penalty;
            d.u = t.u;
        }
        IMP_CUDA_CHECK(launch(topk_slice_kernel, dim3(unsigned(b.slices), unsigned(b.n_rows)), dim3(kSliceThreads), 0,
                              s.stream, s.pdl, b));
        IMP_CUDA_CHECK(launch(topk_merge_kernel, dim3(unsigned(b.n_rows)), dim3(kFinalThreads), 0, s.stream, s.pdl, b));
    }
}

}  // namespace imp::cuda_kernels
