// quant_ggml CUDA: checks of CUDA runtime and cuBLASLt calls; a failure is a one-line imp::Error with file:line.
#pragma once
#include <cublasLt.h>
#include <cuda_runtime_api.h>

namespace imp::ggml::cuda {

[[noreturn]] void fail(const char* expr, const char* msg, const char* file, int line);

}  // namespace imp::ggml::cuda

#define QG_CUDA(expr)                                                                                            \
    do {                                                                                                         \
        const cudaError_t qg_e_ = (expr);                                                                        \
        if (qg_e_ != cudaSuccess) ::imp::ggml::cuda::fail(#expr, cudaGetErrorString(qg_e_), __FILE__, __LINE__); \
    } while (0)

#define QG_LT(expr)                                                                             \
    do {                                                                                        \
        const cublasStatus_t qg_s_ = (expr);                                                    \
        if (qg_s_ != CUBLAS_STATUS_SUCCESS)                                                     \
            ::imp::ggml::cuda::fail(#expr, cublasLtGetStatusString(qg_s_), __FILE__, __LINE__); \
    } while (0)

// After a kernel launch.
#define QG_LAUNCHED() QG_CUDA(cudaGetLastError())
