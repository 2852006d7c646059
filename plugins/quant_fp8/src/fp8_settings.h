// quant_fp8's settings ([plugin.quant_fp8] in a profile): declared at registration; the format turns the request's
// settings into the CUDA kernels' choices at plan and load time (nothing reads the environment or a global).
#pragma once
#include "imp/registry.h"
#include "imp/settings.h"
#ifdef IMP_FP8_HAVE_CUDA
#include "fp8_cuda.h"
#endif

namespace imp::fp8 {

void declare_fp8_settings(Registry& reg);
#ifdef IMP_FP8_HAVE_CUDA
// The CUDA choices of s (the request's settings); the defaults when s is null or not quant_fp8's.
cuda::Settings cuda_settings(const imp::Settings* s);
#endif

}  // namespace imp::fp8
