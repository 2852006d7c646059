// The out-of-line part of imp/cuda/check.h: cuBLAS status text (libimp_core links cuBLAS; plugins need not).
#include <cublas_api.h>

#include <string>

#include "imp/cuda/check.h"

namespace imp::cuda {

void throw_cublas(int status, const char* call, const char* file, int line) {
    throw Error(std::string(file) + ":" + std::to_string(line) + ": " + call + ": " +
                cublasGetStatusString(static_cast<cublasStatus_t>(status)));
}

}  // namespace imp::cuda
