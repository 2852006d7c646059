// imp SDK, CUDA: error checks for CUDA runtime and cuBLAS/cuBLASLt calls. A failure throws imp::Error with one
// line "<file>:<line>: <call>: <error string>". Header-only for the runtime checks (needs the CUDA runtime);
// the cuBLAS status text comes from libimp_core, so a plugin needs no cuBLAS library for it.
#pragma once
#include <cuda_runtime_api.h>

#include <string>

#include "imp/error.h"
#include "imp/export.h"

namespace imp::cuda {

[[noreturn]] inline void throw_cuda(cudaError_t e, const char* call, const char* file, int line) {
    throw Error(std::string(file) + ":" + std::to_string(line) + ": " + call + ": " + cudaGetErrorString(e));
}

// status: a cublasStatus_t (cuBLAS and cuBLASLt share it).
[[noreturn]] IMP_API void throw_cublas(int status, const char* call, const char* file, int line);

}  // namespace imp::cuda

#define IMP_CUDA_CHECK(call)                                                                                 \
    do {                                                                                                     \
        const cudaError_t imp_cuda_err_ = (call);                                                            \
        if (imp_cuda_err_ != cudaSuccess) ::imp::cuda::throw_cuda(imp_cuda_err_, #call, __FILE__, __LINE__); \
    } while (0)

// After a kernel launch: launch-configuration errors surface here (no device synchronization).
#define IMP_CUDA_CHECK_LAUNCH() IMP_CUDA_CHECK(cudaGetLastError())

// cuBLAS / cuBLASLt calls (anything returning cublasStatus_t; 0 is CUBLAS_STATUS_SUCCESS).
#define IMP_CUBLAS_CHECK(call)                                                                         \
    do {                                                                                               \
        const int imp_cublas_st_ = static_cast<int>(call);                                             \
        if (imp_cublas_st_ != 0) ::imp::cuda::throw_cublas(imp_cublas_st_, #call, __FILE__, __LINE__); \
    } while (0)
