// Small device helpers shared by the CUDA executor's kernels: the SDK's reductions (imp/cuda/reduce.cuh) and
// launch helpers under the executor's namespace.
#pragma once
#include <cstdint>

#include "imp/cuda/launch.cuh"
#include "imp/cuda/reduce.cuh"

namespace imp::cuda_kernels {

using imp::cuda::aligned16;
using imp::cuda::block_sum;
using imp::cuda::div_up;
using imp::cuda::warp_max;
using imp::cuda::warp_sum;

__host__ __device__ __forceinline__ int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

}  // namespace imp::cuda_kernels
