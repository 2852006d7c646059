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

// The executor's rms_norm of n_rows rows already in dst (shared memory, n_rows x cols / 4 float4, rows contiguous,
// every thread's writes visible), in place: per row rms_norm_scale<true> (the executor's sum when the block has
// rms_norm_threads(cols, true) threads, else the same terms in another order) and x * scale * w. Every thread of the
// block calls it; it ends with __syncthreads. red: 32 floats of shared memory.
__device__ __forceinline__ void rms_norm_rows_in_place(float4* dst, int n_rows, int cols, const float* w, float eps,
                                                       float* red) {
    const int c4 = cols / 4;
    const float4* w4 = reinterpret_cast<const float4*>(w);
    for (int t = 0; t < n_rows; ++t) {
        const float sc = rms_norm_scale<true>(reinterpret_cast<const float*>(dst + t * c4), cols, eps, red);
        for (int i = int(threadIdx.x); i < c4; i += int(blockDim.x)) {
            float4 v = dst[t * c4 + i];
            const float4 g = __ldg(w4 + i);
            v.x *= sc, v.y *= sc, v.z *= sc, v.w *= sc;
            v.x *= g.x, v.y *= g.y, v.z *= g.z, v.w *= g.w;
            dst[t * c4 + i] = v;
        }
    }
    __syncthreads();
}

// The executor's rms_norm of n_rows rows of x (row stride xs floats; rows 16-byte aligned, cols a multiple of 4) into
// dst, shared memory of n_rows x cols / 4 float4, for a kernel that reads its normalized input there (the decode
// GEMVs' fused norm): the block copies the rows, then rms_norm_rows_in_place. Every thread of the block calls it; it
// ends with __syncthreads. red: 32 floats of shared memory.
__device__ __forceinline__ void stage_rms_norm_rows(float4* dst, const float* x, int64_t xs, int n_rows, int cols,
                                                    const float* w, float eps, float* red) {
    const int c4 = cols / 4;
    for (int t = 0; t < n_rows; ++t)
        for (int i = int(threadIdx.x); i < c4; i += int(blockDim.x))
            dst[t * c4 + i] = __ldg(reinterpret_cast<const float4*>(x + int64_t(t) * xs) + i);
    __syncthreads();
    rms_norm_rows_in_place(dst, n_rows, cols, w, eps, red);
}

// The executor's SwiGLU of one element: silu(g) * u.
__device__ __forceinline__ float silu_mul(float g, float u) { return g / (1.f + expf(-g)) * u; }

}  // namespace imp::cuda
