// quant_ggml GPU tests and bench: the core's CUDA executor (imp::CudaExecutor) plus a checked-call macro and its
// stream, for the few raw CUDA calls the tests make (poisoning outputs, timing with events).
#pragma once
#include <cuda_runtime_api.h>

#include <string>

#include "exec/cuda/cuda_executor.h"
#include "imp/error.h"

namespace imp::ggml::test {

#define QG_TEST_CUDA(expr)                                                                                \
    do {                                                                                                  \
        const cudaError_t e_ = (expr);                                                                    \
        if (e_ != cudaSuccess)                                                                            \
            throw imp::Error(std::string(#expr) + ": " + cudaGetErrorString(e_) + " (" + __FILE__ + ":" + \
                             std::to_string(__LINE__) + ")");                                             \
    } while (0)

inline cudaStream_t stream_of(const Executor& ex) { return static_cast<cudaStream_t>(ex.cuda()->stream); }

}  // namespace imp::ggml::test
