// The CUDA executor's launch helpers: the SDK's (imp/cuda/launch.cuh) under the executor's namespace. Whether to
// launch with PDL is CudaHandles::pdl, set from the executor's CudaOptions.
#pragma once
#include "imp/cuda/launch.cuh"

namespace imp::cuda_kernels {

using imp::cuda::aligned16;
using imp::cuda::div_up;
using imp::cuda::launch;
using imp::cuda::pdl_launch_dependents;
using imp::cuda::pdl_wait;

}  // namespace imp::cuda_kernels
