// quant_ggml's settings: declarations and the typed view the format reads at load.
#include "ggml_settings.h"

#include "imp/error.h"

namespace imp::ggml {

void declare_ggml_settings(Registry& reg) {
    reg.add_setting({"gemv_dp4a", true,
                     "CUDA: one-token Q4_K/Q6_K GEMV (dense and experts) in the dp4a form; false: on the tensor cores",
                     {}});
    reg.add_setting({"gemv_q8_dp4a", true,
                     "CUDA: one-token dense Q8_0 GEMV in the dp4a form (x quantized to two int8 parts per CTA); "
                     "false: on the tensor cores",
                     {}});
    reg.add_setting({"gemv_prefetch", false,
                     "CUDA: block-type GEMVs issue the loads of both weight register buffers before waiting for "
                     "the previous kernel (PDL); false: the first buffer only",
                     {}});
    reg.add_setting({"gemv_plain_pdl", false,
                     "CUDA: F32/F16/BF16 GEMVs launched dependent (PDL, when [plugin.core] pdl): weight loads "
                     "overlap the previous kernel; false: ordinary stream order",
                     {}});
    reg.add_setting({"gemv_l2_prefetch", int64_t(0),
                     "CUDA: block-type GEMVs ask the L2 for up to this many bytes of each CTA's weights before "
                     "waiting for the previous kernel (PDL); 0: off",
                     {},
                     0,
                     1 << 20});
    reg.add_setting({"experts_swiglu", false,
                     "CUDA: the MoE block's down-projection experts read [gate | up] and apply silu(gate) * up while "
                     "staging their input (one kernel less per MoE layer); false: a separate SwiGLU kernel",
                     {}});
    reg.add_setting({"experts_fused_sum", false,
                     "CUDA: in decode (up to 16 tokens, one GEMV item per token and slot) the last expert GEMV block "
                     "of a token writes the routing-weighted sum over its slots (no separate sum kernel)",
                     {}});
    reg.add_setting({"experts_gemm_tokens", int64_t(64),
                     "CUDA: from this many tokens in one call (prefill), expert weights run the grouped GEMM (pairs "
                     "sorted by expert on the device, weights dequantized to bf16 in registers, tensor-core MMA over "
                     "up to 64 tokens per expert tile) instead of the 8-token grouped GEMV; 0: never",
                     {},
                     0,
                     1e9});
    reg.add_setting({"experts_gemm_tiles", int64_t(0),
                     "CUDA: 8-token tiles per expert group of the grouped GEMM at most (2, 4 or 8; fewer where the "
                     "group's activations do not fit in shared memory); 0: the most that fit",
                     {},
                     0,
                     8});
    reg.add_setting({"experts_gemm_ctas", int64_t(1),
                     "CUDA: the grouped expert GEMM's kernels compiled for 1 or 2 thread blocks per SM (2: at most "
                     "128 registers a thread, spilling where more are needed; groups of 2 or 4 tiles; same results)",
                     {},
                     1,
                     2});
    reg.add_setting({"experts_gemm_dequant", std::string("bf16x2"),
                     "CUDA: how the grouped expert GEMM turns 4- to 6-bit codes into bf16 operands: fp32 (scale in "
                     "fp32, rounded once: the reference's bits) | bf16x2 (scale and offset rounded to bf16, two values an "
                     "instruction pair: fewer instructions per MMA; within ~1 % of a quantization step)",
                     {"fp32", "bf16x2"}});
    reg.add_setting({"experts_gemv_warps", int64_t(0),
                     "CUDA: warps per 16-row group in the expert GEMV of the block types (1, 2, 4 or 8: more warps, "
                     "more CTAs, fewer chunks per warp); 0: the plan of the dense GEMV for the routed rows",
                     {},
                     0,
                     8});
    reg.add_setting({"fuse_norm", false,
                     "CUDA: decode GEMVs of fused q|k|v and gate|up weights apply the layer's RMSNorm to x themselves "
                     "(block types, up to 8 tokens; one kernel less per use)",
                     {}});
    reg.add_setting({"fuse_swiglu", false,
                     "CUDA: the decode GEMV of a fused gate|up weight writes silu(gate) * up (block types, up to 8 "
                     "tokens; one kernel less per FFN)",
                     {}});
    reg.add_setting({"fuse_gemm_input", true,
                     "CUDA: GEMMs (more than 8 tokens) of F16, BF16 and block-type weights take the RMSNorm before "
                     "them (q|k|v, gate|up) or the SwiGLU (down) into the kernel that converts x to bf16 (one kernel "
                     "and one fp32 round trip less per use; same bits)",
                     {}});
    reg.add_setting({"gemm_tune", false,
                     "CUDA: the first call outside a graph capture of each GEMM shape (more than 8 tokens; token counts "
                     "bucketed by powers of two) times cuBLASLt's algorithms and keeps the fastest instead of the "
                     "heuristic's first; accumulating GEMMs take rows x tokens floats of workspace for it",
                     {}});
    reg.add_setting({"cpu_kernels", std::string("auto"),
                     "CPU: block kernels: auto (the fastest this CPU runs), generic (baseline C++), avx2",
                     {"auto", "generic", "avx2"}});
}

GgmlSettings ggml_settings(const Settings* s) {
    GgmlSettings g;
    // A format registered outside its plugin (a test's own registry) gets that registry's "core" settings: defaults.
    if (!s || s->plugin() != "quant_ggml") return g;
    g.gemv_dp4a = s->get_bool("gemv_dp4a");
    g.gemv_q8_dp4a = s->get_bool("gemv_q8_dp4a");
    g.gemv_prefetch = s->get_bool("gemv_prefetch");
    g.gemv_plain_pdl = s->get_bool("gemv_plain_pdl");
    g.gemv_l2_prefetch = s->get_int("gemv_l2_prefetch");
    g.experts_swiglu = s->get_bool("experts_swiglu");
    g.experts_fused_sum = s->get_bool("experts_fused_sum");
    g.experts_gemm_tokens = s->get_int("experts_gemm_tokens");
    g.experts_gemm_tiles = int(s->get_int("experts_gemm_tiles"));
    if (g.experts_gemm_tiles != 0 && g.experts_gemm_tiles != 2 && g.experts_gemm_tiles != 4 && g.experts_gemm_tiles != 8)
        throw Error("[plugin.quant_ggml] experts_gemm_tiles = " + std::to_string(g.experts_gemm_tiles) +
                    ": must be 0, 2, 4 or 8");
    g.experts_gemm_ctas = int(s->get_int("experts_gemm_ctas"));
    g.experts_gemm_bf16x2 = s->get_string("experts_gemm_dequant") == "bf16x2";
    g.experts_gemv_warps = int(s->get_int("experts_gemv_warps"));
    if (g.experts_gemv_warps & (g.experts_gemv_warps - 1))
        throw Error("[plugin.quant_ggml] experts_gemv_warps = " + std::to_string(g.experts_gemv_warps) +
                    ": must be 0, 1, 2, 4 or 8");
    g.cpu_kernels = s->get_string("cpu_kernels");
    g.fuse_norm = s->get_bool("fuse_norm");
    g.fuse_swiglu = s->get_bool("fuse_swiglu");
    g.fuse_gemm_input = s->get_bool("fuse_gemm_input");
    g.gemm_tune = s->get_bool("gemm_tune");
    return g;
}

const Kernels& kernels_named(const std::string& name) {
    if (name == "auto") return kernels_best();
    for (const Kernels* k : kernels_available())
        if (name == k->name) return *k;
    throw Error("[plugin.quant_ggml] cpu_kernels = \"" + name + "\": this CPU cannot run them");
}

}  // namespace imp::ggml
