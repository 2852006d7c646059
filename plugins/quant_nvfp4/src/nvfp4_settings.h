// quant_nvfp4's settings ([plugin.quant_nvfp4] in a profile): declared at registration; the format turns the request's
// settings into the CUDA kernels' choices at plan and load time (nothing reads the environment or a global).
#pragma once
#include "imp/registry.h"
#include "imp/settings.h"
#ifdef IMP_NVFP4_HAVE_CUDA
#include "nvfp4_cuda.h"
#endif

namespace imp::nvfp4 {

void declare_nvfp4_settings(Registry& reg);
#ifdef IMP_NVFP4_HAVE_CUDA
// The CUDA choices of s (the request's settings); the defaults when s is null or not quant_nvfp4's.
cuda::Settings cuda_settings(const imp::Settings* s);
#endif

}  // namespace imp::nvfp4
