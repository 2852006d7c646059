// imp SDK, CUDA: warp and block reductions for kernels. Header-only; include it from .cu files.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace imp::cuda {

// Sum (max) over the 32 lanes of a full warp; every lane gets the result.
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024, blockDim.y = blockDim.z = 1); every thread
// gets the result. `red` holds 32 floats of shared memory; the call begins with a barrier, so consecutive calls may
// share `red` (anything else that writes `red` afterwards needs a __syncthreads() first).
__device__ __forceinline__ float block_sum(float v, float* red) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) red[warp] = v;
    __syncthreads();
    float t = lane < nw ? red[lane] : 0.f;
    t = warp_sum(t);
    return t;
}

// One output element of a mixture-of-experts layer's routed sum: over the slots p = t * top_k + j, j < top_k, in slot
// order, fmaf(weights[p], part[p * rows + r], sum) from 0, skipping the slots whose id is outside [0, n_expert)
// (their partial rows are never read). A batch of 8 slots' ids and weights, then their partial values, is loaded
// before any is used: two memory latencies a batch instead of two a slot.
__device__ __forceinline__ float routed_slot_sum(const float* __restrict__ part, int64_t rows, int64_t r,
                                                 const int32_t* __restrict__ ids, const float* __restrict__ weights,
                                                 int n_expert, int top_k, int64_t t) {
    constexpr int kBatch = 8;
    float s = 0.f;
    for (int j0 = 0; j0 < top_k; j0 += kBatch) {
        bool ok[kBatch];
        float w[kBatch], v[kBatch];
#pragma unroll
        for (int u = 0; u < kBatch; ++u) {
            const int64_t p = t * top_k + j0 + u;
            const bool in = j0 + u < top_k;
            const int32_t e = in ? ids[p] : -1;
            ok[u] = e >= 0 && e < n_expert;
            w[u] = in ? weights[p] : 0.f;
        }
#pragma unroll
        for (int u = 0; u < kBatch; ++u) v[u] = ok[u] ? part[(t * top_k + j0 + u) * rows + r] : 0.f;
#pragma unroll
        for (int u = 0; u < kBatch; ++u)
            if (ok[u]) s = fmaf(w[u], v[u], s);
    }
    return s;
}

}  // namespace imp::cuda
