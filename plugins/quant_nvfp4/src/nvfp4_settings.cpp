// quant_nvfp4's settings: declarations and the CUDA kernels' choices they make.
#include "nvfp4_settings.h"

#include <string>

#include "kernel_settings.h"

namespace imp::nvfp4 {

void declare_nvfp4_settings(Registry& reg) {
    quant_hf::declare_kernel_settings(reg, {"dequant_bf16", "fp8_at_load"},
                                      "CUDA: matmuls of more than 8 tokens: dequant_bf16 | fp8_at_load");
}

#ifdef IMP_NVFP4_HAVE_CUDA
cuda::Settings cuda_settings(const imp::Settings* s) {
    cuda::Settings c;
    if (!s || s->plugin() != "quant_nvfp4") return c;
    static_cast<quant_hf::KernelSettings&>(c) = quant_hf::read_kernel_settings(*s);
    const std::string& p = s->get_string("prefill");
    c.prefill = p == "fp8_at_load" ? cuda::Settings::Prefill::Fp8AtLoad : cuda::Settings::Prefill::DequantBf16;
    return c;
}
#endif

}  // namespace imp::nvfp4
