// Error checking for every CUDA runtime / cuBLAS call of the CUDA executor: a failure throws imp::Error with one
// line "<file>:<line>: <call>: <error string>".
#pragma once
#include <cuda_runtime.h>

#include <string>

#include "imp/error.h"

namespace imp::cuda_detail {

[[noreturn]] inline void throw_cuda(cudaError_t e, const char* call, const char* file, int line) {
    throw Error(std::string(file) + ":" + std::to_string(line) + ": " + call + ": " + cudaGetErrorString(e));
}

}  // namespace imp::cuda_detail

#define IMP_CUDA_CHECK(call)                                                                   \
    do {                                                                                       \
        const cudaError_t imp_cuda_err_ = (call);                                              \
        if (imp_cuda_err_ != cudaSuccess)                                                      \
            ::imp::cuda_detail::throw_cuda(imp_cuda_err_, #call, __FILE__, __LINE__);          \
    } while (0)

// After a kernel launch: launch-configuration errors surface here (no device synchronization).
#define IMP_CUDA_CHECK_LAUNCH() IMP_CUDA_CHECK(cudaGetLastError())
