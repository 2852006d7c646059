// imp SDK, CUDA: the row math of the executor's RMSNorm and SwiGLU ops, for kernels that fuse them (a plugin's GEMM
// input conversion, ...). Written once here and used by the executor's own kernels, so a fused kernel that calls
// these reproduces the ops' values bit for bit. Header-only; include it from .cu files.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "imp/cuda/reduce.cuh"

namespace imp::cuda {

// Threads of the one block per row the executor's rms_norm runs for a row of n floats (vec: read as float4).
inline int rms_norm_threads(int64_t n, bool vec) {
    const int64_t per_thread = vec ? n / 4 : n;
    return per_thread >= 1024 ? 512 : per_thread >= 256 ? 256 : 128;
}

// 1 / sqrt(mean(x^2) + eps) of the row xr[0, n), summed by the block as the executor's rms_norm sums it (kVec:
// float4 loads, n a multiple of 4 and xr 16-byte aligned); every thread gets it. red: 32 floats of shared memory
// (block_sum's). Launch rms_norm_threads(n, kVec) threads for the executor's bits.
template <bool kVec>
__device__ __forceinline__ float rms_norm_scale(const float* xr, int64_t n, float eps, float* red) {
    float ss = 0.f;
    if constexpr (kVec) {
        const int64_t n4 = n / 4;
        const float4* x4 = reinterpret_cast<const float4*>(xr);
        for (int64_t i = threadIdx.x; i < n4; i += blockDim.x) {
            const float4 v = x4[i];
            ss += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
        }
    } else {
        for (int64_t i = threadIdx.x; i < n; i += blockDim.x) ss += xr[i] * xr[i];
    }
    ss = block_sum(ss, red);
    return rsqrtf(ss / float(n) + eps);
}

// The executor's SwiGLU of one element: silu(g) * u.
__device__ __forceinline__ float silu_mul(float g, float u) { return g / (1.f + expf(-g)) * u; }

}  // namespace imp::cuda
