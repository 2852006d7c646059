// quant_fp8 / quant_nvfp4: the CUDA kernel settings both weight-only formats declare in their [plugin.<name>]
// tables besides `prefill` (whose choices differ), and what they choose. Library quant_hf_common.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "imp/registry.h"
#include "imp/settings.h"

namespace imp::quant_hf {

// The weight-only CUDA kernels' choices common to both formats (their cuda::Settings add `prefill`).
struct KernelSettings {
    bool fast_accum = true;  // the FP8 GEMM's fast accumulation (CUBLASLT_MATMUL_DESC_FAST_ACCUM)
    // Expert matmuls with more (token, slot) pairs than experts (prefill): pairs sorted by expert on the device and
    // each expert's weights read once per 8 of its pairs; false: one GEMV per pair always.
    bool experts_grouped = true;
    // Grouped expert matmuls (experts_grouped, more pairs than experts) on the tensor cores: each expert's weights
    // read once per group of up to 8 * experts_gemm pairs (2, 4 or 8 token tiles), dequantized to bf16 in
    // registers (activations rounded to bf16); -1 (the default): the tile count from the matrix width and the pairs
    // per expert; 0: the 8-token GEMV instead (fp32 activations).
    int experts_gemm = -1;
    // The MoE down projection takes the [gate | up] rows (ExpertWeights::swiglu_input) and a decode call with
    // routing weights runs as one kernel: SwiGLU, each token's experts and their weighted sum.
    bool experts_fused_down = false;
    // The MoE down projection takes the [gate | up] rows (ExpertWeights::swiglu_input) and its decode GEMV stages
    // silu(gate) * up in each CTA: the SwiGLU kernel between the gate|up and down launches goes.
    bool experts_swiglu = true;
    // Weight::matmul_fused with an RMSNorm (the layers' input norms): decode calls normalize x inside the GEMV (Regs)
    // instead of a separate norm kernel.
    bool fuse_norm = true;
    int gemv_kw = 0;              // GEMV warps per row group: 1, 2, 4, 8 (0 = from the shape)
    bool gemv_async = false;      // GEMV: weight chunks streamed by cp.async through shared memory (else registers)
    bool gemv_regs2 = false;      // GEMV (not async): two chunks per row prefetched into registers instead of one
    bool gemv_stream = false;     // GEMV: 1-2 token calls on matrices of many rows on the persistent streaming kernel
    bool gemv_mma = false;        // GEMV: dense calls on the tensor cores (expert calls: regs)
    // GEMV: dense calls of at least this many tokens on the tensor cores whatever the plan (0: never).
    int gemv_mma_tokens = 0;
    bool gemv_short_rows = true;  // GEMV (gemv_kw auto): rows of at most 16 chunks in half-warp row groups
    // GEMV (regs): each CTA stages x in shared memory first: 0 never, 1 expert calls (decode), 2 those and dense
    // calls on matrices of at most 128 rows per SM.
    int gemv_stage_x = 1;
    // NVFP4 GEMV (regs): x quantized to int8 per 16 columns as each CTA stages it and the products summed by dp4a:
    // 0 never, 1 expert calls (decode), 2 those and dense calls. Profiles default to 2 ("all", kernel_settings.cpp);
    // this struct's 0 keeps the kernel tests that build Settings themselves on the exact sums.
    int gemv_int8_x = 0;
    // The int8 GEMV's dense one-token calls on CTAs of 8, 16 or 32 warps (each CTA stages all of x: fewer, larger
    // CTAs stage it fewer times per SM); 0: from the width of x (wo::q8_auto_warps).
    int gemv_int8_warps = 0;
    int64_t tile_rows = 0;        // bf16-tile prefill: weight rows per tile (0 = automatic)
    bool fp8_refuse_all = false;  // tests: act as if cuBLASLt refused every FP8 GEMM (the bf16 fallback runs)
    // FP8 GEMM activations: false: one E4M3 unit per call (amax over all its tokens, two passes); true: one unit per
    // token (one pass), applied with the weight's per-row scales as cuBLASLt outer-vector scales.
    bool fp8_per_token = false;
    bool fp8_refuse_vec = false;  // tests: act as if cuBLASLt refused the outer-vector FP8 GEMM (the epilogue runs)
    // Prefill GEMMs: the first eager call of each shape times every algorithm cuBLASLt's heuristic offers and keeps
    // the fastest (else: the heuristic's first that runs).
    bool gemm_tune = false;
    // With the FP8 GEMM prefill: matmuls of more tokens than this (1-8) take the FP8 GEMM instead of the GEMV (which
    // pays the dequantization per token); 8: the GEMV up to 8 tokens.
    int gemv_max_tokens = 8;
};

// Declares `prefill` (choices[0] the default; doc says what each does) and the settings of KernelSettings.
void declare_kernel_settings(Registry& reg, const std::vector<std::string>& prefill_choices,
                             const std::string& prefill_doc);
// The KernelSettings part of a plugin's settings (declared by declare_kernel_settings).
KernelSettings read_kernel_settings(const imp::Settings& s);

}  // namespace imp::quant_hf
