// quant_fp8 / quant_nvfp4: the shared CUDA kernel settings (kernel_settings.h).
#include "kernel_settings.h"

#include "imp/error.h"

namespace imp::quant_hf {

void declare_kernel_settings(Registry& reg, const std::vector<std::string>& prefill_choices,
                             const std::string& prefill_doc) {
    reg.add_setting({"prefill", prefill_choices.at(0), prefill_doc, prefill_choices});
    reg.add_setting({"fast_accum", true, "CUDA: fast accumulation in the FP8 tensor-core GEMM", {}});
    reg.add_setting({"experts_grouped", true,
                     "CUDA: expert matmuls with more (token, slot) pairs than experts group the pairs by expert", {}});
    reg.add_setting({"experts_gemm", std::string("auto"),
                     "CUDA: grouped expert matmuls on the tensor cores: auto | 2 | 4 | 8 (8-token tiles per group of one "
                     "expert's pairs; auto: from the matrix width and the pairs per expert) | off (the 8-token GEMV "
                     "per 8 pairs)",
                     {"off", "auto", "2", "4", "8"}});
    reg.add_setting({"experts_fused_down", false,
                     "CUDA: the MoE down projection reads the [gate | up] rows (SwiGLU folded in) and sums each decode "
                     "token's experts in the same kernel", {}});
    reg.add_setting({"experts_swiglu", true,
                     "CUDA: the MoE down projection reads the [gate | up] rows and its decode GEMV applies SwiGLU as it "
                     "stages them (no SwiGLU kernel between the gate|up and down launches)", {}});
    reg.add_setting({"fuse_norm", true,
                     "CUDA: decode GEMVs (1-8 tokens) that follow a layer's RMSNorm normalize x themselves (one kernel "
                     "instead of the norm's and the GEMV's; the GEMV runs regs)", {}});
    reg.add_setting({"fp8_act", std::string("tensor"),
                     "CUDA: FP8 GEMM activation scales: tensor (one per call, amax pass + quantize pass) | token (one "
                     "per token, one pass; cuBLASLt outer-vector scales)",
                     {"tensor", "token"}});
    reg.add_setting({"gemm_tune", false,
                     "CUDA: prefill GEMMs time every cuBLASLt heuristic algorithm at the first eager call of a shape "
                     "(token counts bucketed by powers of two) and keep the fastest", {}});
    reg.add_setting({"gemv_max_tokens", int64_t(8),
                     "CUDA: with the FP8 GEMM prefill, matmuls of more tokens than this (1-8) run the FP8 GEMM "
                     "instead of the GEMV", {}, 1, 8});
    reg.add_setting({"gemv", std::string("regs"),
                     "CUDA: GEMV (1-8 tokens) weight loads: regs (prefetch one chunk into registers) | regs2 (two chunks, "
                     "1-4 tokens) | async (cp.async ring) | stream (1-2 token calls on matrices of many rows, e.g. an LM "
                     "head: one wave of CTAs whose warps stream row group after row group; other calls: regs) | mma "
                     "(dense calls on the tensor cores, each code dequantized once for all tokens, x rounded to fp16 "
                     "after a 2^-4 scale; expert calls: regs)",
                     {"regs", "regs2", "async", "stream", "mma"}});
    reg.add_setting({"gemv_short_rows", true,
                     "CUDA: GEMV (gemv_kw auto) rows of at most 16 chunks of 16 bytes (NVFP4 <= 512 columns, FP8 <= 256, "
                     "e.g. the MoE down projections) in half-warp row groups instead of whole warps (half of whose "
                     "lanes idle)",
                     {}});
    reg.add_setting({"gemv_stage_x", std::string("experts"),
                     "CUDA: GEMV (regs) thread blocks copy x into shared memory before summing (fewer registers: 3 "
                     "blocks per SM instead of 2 for NVFP4): off | experts (the MoE expert calls of decode) | all (those "
                     "and dense calls on matrices of at most 128 rows per SM)",
                     {"off", "experts", "all"}});
    reg.add_setting({"gemv_int8_x", std::string("all"),
                     "CUDA, NVFP4: GEMV (regs) thread blocks quantize x to int8 per 16 columns as they stage it and sum "
                     "the products with dp4a (fewer instructions a weight; x rounded as an FP8 GEMM's activations): off "
                     "| experts (the MoE expert calls of decode) | all (those and dense calls)",
                     {"off", "experts", "all"}});
    reg.add_setting({"gemv_int8_warps", int64_t(0),
                     "CUDA, NVFP4: warps per thread block of the int8 GEMV (gemv_int8_x) on dense one-token calls: 8, "
                     "16 or 32 (each block stages all of x; fewer, larger blocks stage it fewer times per SM); 0: 16 "
                     "where x is wider than 8192 columns, else 8",
                     {}, 0, 32});
    reg.add_setting({"gemv_mma_tokens", int64_t(3),
                     "CUDA: dense matmuls of at least this many tokens (and at most 8) run the tensor-core GEMV (the "
                     "kernel of gemv = mma: each code dequantized once for all tokens, x rounded to fp16 after a 2^-4 "
                     "scale) whatever gemv says, and their RMSNorm as its own kernel; 0: never",
                     {}, 0, 8});
    reg.add_setting({"gemv_kw", std::string("auto"),
                     "CUDA: GEMV warps per row group: auto (from the shape) | 1 | 2 | 4 | 8", {"auto", "1", "2", "4", "8"}});
}

KernelSettings read_kernel_settings(const imp::Settings& s) {
    KernelSettings k;
    k.fast_accum = s.get_bool("fast_accum");
    k.experts_grouped = s.get_bool("experts_grouped");
    k.experts_fused_down = s.get_bool("experts_fused_down");
    k.experts_swiglu = s.get_bool("experts_swiglu");
    k.fuse_norm = s.get_bool("fuse_norm");
    const std::string& eg = s.get_string("experts_gemm");
    k.experts_gemm = eg == "off" ? 0 : eg == "auto" ? -1 : std::stoi(eg);
    k.gemv_async = s.get_string("gemv") == "async";
    k.gemv_regs2 = s.get_string("gemv") == "regs2";
    k.gemv_stream = s.get_string("gemv") == "stream";
    k.gemv_mma = s.get_string("gemv") == "mma";
    k.gemv_mma_tokens = int(s.get_int("gemv_mma_tokens"));
    k.gemv_short_rows = s.get_bool("gemv_short_rows");
    const std::string& sx = s.get_string("gemv_stage_x");
    k.gemv_stage_x = sx == "all" ? 2 : sx == "experts" ? 1 : 0;
    const std::string& ix = s.get_string("gemv_int8_x");
    k.gemv_int8_x = ix == "all" ? 2 : ix == "experts" ? 1 : 0;
    k.gemv_int8_warps = int(s.get_int("gemv_int8_warps"));
    if (k.gemv_int8_warps != 0 && k.gemv_int8_warps != 8 && k.gemv_int8_warps != 16 && k.gemv_int8_warps != 32)
        throw Error("[plugin." + s.plugin() + "] gemv_int8_warps = " + std::to_string(k.gemv_int8_warps) +
                    ": warps per thread block must be 8, 16 or 32 (0: from the shape)");
    k.fp8_per_token = s.get_string("fp8_act") == "token";
    k.gemm_tune = s.get_bool("gemm_tune");
    k.gemv_max_tokens = int(s.get_int("gemv_max_tokens"));
    const std::string& kw = s.get_string("gemv_kw");
    k.gemv_kw = kw == "auto" ? 0 : std::stoi(kw);
    return k;
}

}  // namespace imp::quant_hf
