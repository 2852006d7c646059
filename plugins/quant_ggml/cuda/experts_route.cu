// quant_ggml CUDA: the routing kernels of the expert grouped matmul besides the GEMV.
// Grouping: one CTA counts the pairs per expert in shared memory, lays the experts' groups out in expert order
// (one warp scans the counts) and places each pair with an atomic cursor. The order of pairs inside an expert
// may vary from run to run, but every pair's result is computed independently of the other tokens of its group (MMA
// and FMA columns do not mix), so outputs do not.
// Weighted sum: one thread per output, the slots added in order (loads batched): deterministic.
#include <algorithm>
#include <climits>
#include <string>

#include "imp/cuda/check.h"
#include "imp/cuda/launch.cuh"
#include "imp/cuda/reduce.cuh"
#include "mma_bf16.cuh"
#include "experts_kernels.h"
#include "imp/error.h"

namespace imp::ggml::cuda {
namespace {

// Shared memory: count, pair start and group start per bucket (n_expert experts + the out-of-range bucket).
__global__ void __launch_bounds__(1024)
    experts_group_kernel(const int32_t* __restrict__ ids, int n_pairs, int n_expert, int keep_invalid, int G,
                         int32_t* __restrict__ n_groups, int32_t* __restrict__ groups, int32_t* __restrict__ order) {
    extern __shared__ int sm_group[];
    const int nb = n_expert + 1;
    int* count = sm_group;
    int* pstart = count + nb;
    int* gstart = pstart + nb;
    ::imp::cuda::pdl_wait();
    for (int b = threadIdx.x; b < nb; b += blockDim.x) count[b] = 0;
    __syncthreads();
    for (int p = threadIdx.x; p < n_pairs; p += blockDim.x) {
        const int id = ids[p];
        const int b = id >= 0 && id < n_expert ? id : n_expert;
        if (b < n_expert || keep_invalid) atomicAdd(&count[b], 1);
    }
    __syncthreads();
    if (threadIdx.x < 32) {  // exclusive scans of pairs and groups: lane l takes a run of buckets, then a warp scan
        const int lane = int(threadIdx.x), per = (nb + 31) / 32, b0 = min(nb, lane * per), b1 = min(nb, b0 + per);
        int ps = 0, gs = 0;
        for (int b = b0; b < b1; ++b) {
            ps += count[b];
            gs += (count[b] + G - 1) / G;
        }
        int ips = ps, igs = gs;
#pragma unroll
        for (int o = 1; o < 32; o <<= 1) {
            const int vp = __shfl_up_sync(0xFFFFFFFFu, ips, o), vg = __shfl_up_sync(0xFFFFFFFFu, igs, o);
            if (lane >= o) ips += vp, igs += vg;
        }
        ps = ips - ps;
        gs = igs - gs;
        for (int b = b0; b < b1; ++b) {
            pstart[b] = ps;
            gstart[b] = gs;
            ps += count[b];
            gs += (count[b] + G - 1) / G;
        }
        if (lane == 31) *n_groups = igs;
    }
    __syncthreads();
    for (int b = threadIdx.x; b < nb; b += blockDim.x) {
        const int c = count[b];
        for (int k = 0; k * G < c; ++k) {
            int32_t* gp = groups + 3 * int64_t(gstart[b] + k);
            gp[0] = b < n_expert ? b : -1;
            gp[1] = pstart[b] + k * G;
            gp[2] = min(G, c - k * G);
        }
    }
    __syncthreads();
    for (int b = threadIdx.x; b < nb; b += blockDim.x) count[b] = pstart[b];  // cursors
    __syncthreads();
    for (int p = threadIdx.x; p < n_pairs; p += blockDim.x) {
        const int id = ids[p];
        const int b = id >= 0 && id < n_expert ? id : n_expert;
        if (b < n_expert || keep_invalid) order[atomicAdd(&count[b], 1)] = p;
    }
}

constexpr int kReduceThreads = 256;

// Block i: token i / bpt, rows from (i % bpt) * kReduceThreads.
__global__ void __launch_bounds__(kReduceThreads)
    experts_reduce_kernel(const float* __restrict__ part, int rows, int bpt, const int32_t* __restrict__ ids,
                          const float* __restrict__ weights, int n_expert, int top_k, float* __restrict__ y,
                          int64_t ys, int accumulate) {
    ::imp::cuda::pdl_wait();
    const int64_t t = blockIdx.x / bpt;
    const int r = int(blockIdx.x % bpt) * kReduceThreads + int(threadIdx.x);
    if (r >= rows) return;
    // Slot order, out-of-range ids skipped, 8 slots' loads in flight at a time (routed_slot_sum).
    const float s = ::imp::cuda::routed_slot_sum(part, rows, r, ids, weights, n_expert, top_k, t);
    float* yp = y + t * ys + r;
    *yp = accumulate ? *yp + s : s;
}

}  // namespace

int64_t experts_max_groups(int64_t n_pairs, int64_t n_expert, int64_t group) {
    return std::min(n_pairs, n_pairs / group + std::min(n_expert + 1, n_pairs));
}

void experts_group(const int32_t* ids, int n_pairs, int n_expert, int keep_invalid, int32_t* n_groups,
                   int32_t* groups, int32_t* order, bool pdl, cudaStream_t st, int group) {
    if (group < 1) throw Error("quant_ggml: experts grouping: group size " + std::to_string(group));
    if (n_expert > kMaxGroupedExperts)
        throw Error("quant_ggml: experts grouping: " + std::to_string(n_expert) + " experts, at most " +
                    std::to_string(kMaxGroupedExperts));
    cudaLaunchAttribute attr = pdl_attr();
    cudaLaunchConfig_t cfg{};
    cfg.gridDim = dim3(1, 1, 1);
    cfg.blockDim = dim3(1024, 1, 1);
    cfg.dynamicSmemBytes = size_t(3) * size_t(n_expert + 1) * sizeof(int);
    cfg.stream = st;
    cfg.attrs = pdl ? &attr : nullptr;
    cfg.numAttrs = pdl ? 1 : 0;
    IMP_CUDA_CHECK(cudaLaunchKernelEx(&cfg, experts_group_kernel, ids, n_pairs, n_expert, keep_invalid, group, n_groups,
                                      groups, order));
}

void experts_reduce(const float* part, int rows, const int32_t* ids, const float* weights, int n_expert,
                    int n_tokens, int top_k, float* y, int64_t ys, int accumulate, bool pdl, cudaStream_t st) {
    if (n_tokens <= 0) return;
    const int bpt = (rows + kReduceThreads - 1) / kReduceThreads;
    if (int64_t(n_tokens) * bpt > int64_t(INT32_MAX))
        throw Error("quant_ggml: experts weighted sum of " + std::to_string(n_tokens) + " tokens is too large");
    cudaLaunchAttribute attr = pdl_attr();
    cudaLaunchConfig_t cfg{};
    cfg.gridDim = dim3(unsigned(int64_t(n_tokens) * bpt), 1, 1);
    cfg.blockDim = dim3(kReduceThreads, 1, 1);
    cfg.stream = st;
    cfg.attrs = pdl ? &attr : nullptr;
    cfg.numAttrs = pdl ? 1 : 0;
    IMP_CUDA_CHECK(cudaLaunchKernelEx(&cfg, experts_reduce_kernel, part, rows, bpt, ids, weights, n_expert, top_k, y, ys,
                               accumulate));
}

}  // namespace imp::ggml::cuda
