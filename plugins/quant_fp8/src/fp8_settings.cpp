// quant_fp8's settings: declarations and the CUDA kernels' choices they make.
#include "fp8_settings.h"

#include <string>

#include "kernel_settings.h"

namespace imp::fp8 {

void declare_fp8_settings(Registry& reg) {
    quant_hf::declare_kernel_settings(reg, {"dequant_bf16", "fp8_gemm"},
                                      "CUDA: matmuls of more than 8 tokens: dequant_bf16 | fp8_gemm");
}

#ifdef IMP_FP8_HAVE_CUDA
cuda::Settings cuda_settings(const imp::Settings* s) {
    cuda::Settings c;
    if (!s || s->plugin() != "quant_fp8") return c;
    static_cast<quant_hf::KernelSettings&>(c) = quant_hf::read_kernel_settings(*s);
    const std::string& p = s->get_string("prefill");
    c.prefill = p == "fp8_gemm" ? cuda::Settings::Prefill::Fp8Gemm : cuda::Settings::Prefill::DequantBf16;
    return c;
}
#endif

}  // namespace imp::fp8
