// The CUDA executor's launch helpers: the SDK's (imp/cuda/launch.cuh) under the executor's namespace, plus the
// one process-wide PDL switch, which only the core reads (plugins read CudaHandles::pdl).
#pragma once
#include <cstdlib>

#include "imp/cuda/launch.cuh"

namespace imp::cuda_kernels {

using imp::cuda::aligned16;
using imp::cuda::div_up;
using imp::cuda::launch;
using imp::cuda::pdl_launch_dependents;
using imp::cuda::pdl_wait;

// IMP_PDL=0 turns PDL off for the process (read once); anything else, or unset, leaves it on where supported.
inline bool pdl_env_enabled() {
    static const bool on = [] {
        const char* e = std::getenv("IMP_PDL");
        return !(e && e[0] == '0' && e[1] == '\0');
    }();
    return on;
}

}  // namespace imp::cuda_kernels
