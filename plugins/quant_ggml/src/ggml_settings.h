// quant_ggml's settings ([plugin.quant_ggml] in a profile): declared at registration, read by the format when it
// loads a weight, which keeps its kernel choices (nothing reads the environment or a global at run time).
#pragma once
#include <string>

#include "imp/registry.h"
#include "imp/settings.h"
#include "kernels.h"

namespace imp::ggml {

struct GgmlSettings {
    bool gemv_dp4a = true;            // CUDA: one-token Q4_K / Q6_K GEMV (dense and experts) in the dp4a form
    bool gemv_q8_dp4a = true;         // CUDA: one-token dense Q8_0 GEMV in the dp4a form
    bool gemv_prefetch = false;       // CUDA: block-type GEMVs load both weight buffers before their input is ready
    bool gemv_plain_pdl = false;      // CUDA: F32 / F16 / BF16 GEMVs launched dependent (PDL)
    int64_t gemv_l2_prefetch = 0;     // CUDA: block-type GEMVs prefetch this many bytes per CTA into L2 (0: off)
    bool experts_swiglu = false;      // CUDA: MoE down-projection experts apply silu(gate) * up while staging x
    bool experts_fused_sum = false;   // CUDA: decode expert GEMV sums the routed slots itself (no reduce kernel)
    int64_t experts_gemm_tokens = 64;  // CUDA: expert calls from this many tokens on take the grouped GEMM (0: never)
    int experts_gemm_tiles = 0;       // CUDA: the grouped expert GEMM's 8-token tiles per group at most (0: what fits)
    int experts_gemm_ctas = 1;        // CUDA: the grouped expert GEMM's kernels for 1 or 2 CTAs per SM
    bool experts_gemm_bf16x2 = false;  // CUDA: the grouped expert GEMM's dequantization: fp32 (false) or bf16x2
    int experts_gemv_warps = 0;       // CUDA: warps per row group of the expert GEMV (0: from the plan)
    std::string cpu_kernels = "auto";  // CPU: "auto" (the fastest this CPU runs), "generic", "avx2"
    bool fuse_norm = false;            // CUDA: Weight::matmul_fused takes the RMSNorm into the GEMV
    bool fuse_swiglu = false;          // CUDA: Weight::matmul_fused takes the SwiGLU into the gate|up GEMV
    bool fuse_gemm_input = true;       // CUDA: Weight::matmul_fused takes the norm / SwiGLU into a GEMM's bf16 x
    bool gemm_tune = false;            // CUDA: GEMMs time cuBLASLt's algorithms once per shape bucket
};

void declare_ggml_settings(Registry& reg);
// The values of s (the request's settings), or the defaults when s is null or not quant_ggml's.
GgmlSettings ggml_settings(const Settings* s);
// The CPU kernel set a cpu_kernels value names; throws imp::Error when this CPU cannot run it.
const Kernels& kernels_named(const std::string& name);

}  // namespace imp::ggml
