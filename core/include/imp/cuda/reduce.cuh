// imp SDK, CUDA: warp and block reductions for kernels. Header-only; include it from .cu files.
#pragma once
#include <cuda_runtime.h>

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

}  // namespace imp::cuda
