// quant_fp8's settings: declarations and the CUDA kernels' choices they make.
#include "fp8_settings.h"

#include <string>

namespace imp::fp8 {

void declare_fp8_settings(Registry& reg) {
    reg.add_setting({"prefill", std::string("dequant_bf16"),
                     "CUDA: matmuls of more than 8 tokens: fp8_gemm | dequant_bf16", {"fp8_gemm", "dequant_bf16"}});
    reg.add_setting({"fast_accum", true, "CUDA: fast accumulation in the FP8 tensor-core GEMM", {}});
    reg.add_setting({"experts_grouped", true,
                     "CUDA: expert matmuls with more (token, slot) pairs than experts group the pairs by expert", {}});
    reg.add_setting({"gemv", std::string("regs"),
                     "CUDA: GEMV (1-8 tokens) weight loads: regs (prefetch into registers) | async (cp.async ring)",
                     {"regs", "async"}});
    reg.add_setting({"gemv_kw", std::string("auto"), "CUDA: GEMV warps per row group: auto (from the shape) | 1 | 2 | 4 | 8",
                     {"auto", "1", "2", "4", "8"}});
}

#ifdef IMP_FP8_HAVE_CUDA
cuda::Settings cuda_settings(const imp::Settings* s) {
    cuda::Settings c;
    if (!s || s->plugin() != "quant_fp8") return c;
    const std::string& p = s->get_string("prefill");
    if (p == "fp8_gemm") c.prefill = cuda::Settings::Prefill::Fp8Gemm;
    if (p == "dequant_bf16") c.prefill = cuda::Settings::Prefill::DequantBf16;
    c.fast_accum = s->get_bool("fast_accum");
    c.experts_grouped = s->get_bool("experts_grouped");
    c.gemv_async = s->get_string("gemv") == "async";
    const std::string& kw = s->get_string("gemv_kw");
    c.gemv_kw = kw == "auto" ? 0 : std::stoi(kw);
    return c;
}
#endif

}  // namespace imp::fp8
