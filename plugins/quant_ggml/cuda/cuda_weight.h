// quant_ggml CUDA: weights on a CUDA executor. Needs no CUDA headers to include.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ggml_types.h"
#include "imp/executor.h"
#include "imp/quant_format.h"

namespace imp::ggml::cuda {

// Kernel choices of one CUDA weight: from the plugin's settings ([plugin.quant_ggml] gemv_dp4a, gemv_q8_dp4a,
// gemv_prefetch, gemv_plain_pdl, gemv_l2_prefetch, fuse_norm, fuse_swiglu, fuse_gemm_input, gemm_tune) at load; tests and
// the bench change them per weight (0 = automatic): the block types' GEMV plan (column splits over the CTAs of a
// cluster, 1..8; warps per row group, 1/2/4/8), rows per dequantized tile on the GEMM path, and whether the GEMM
// path dequantizes the next tile on a side stream while the current one is multiplied (0 = never, the default;
// 1 = whenever there are several tiles).
struct CudaOptions {
    bool dp4a = true;  // one-token Q4_K / Q6_K GEMV in the dp4a form (false: on the tensor cores)
    bool q8_dp4a = false;    // one-token Q8_0 GEMV in the dp4a form (false: on the tensor cores)
    bool prefetch = false;   // block-type GEMVs: both weight buffers loaded before the input is ready
    bool plain_pdl = false;  // F32 / F16 / BF16 GEMVs launched dependent (PDL), weights loaded before the wait
    int l2_prefetch = 0;     // block-type GEMVs: bytes per CTA prefetched into L2 before the wait (0: none)
    bool fuse_norm = false, fuse_swiglu = false;  // what matmul_fused may take into the GEMV (gemv_fusable)
    bool fuse_gemm_input = false;  // matmul_fused on the GEMM path: the norm / SwiGLU in the conversion of x to bf16
    bool gemm_tune = false;  // GEMMs: cuBLASLt's algorithms timed once per shape bucket (imp/cuda/lt_gemm.h)
    bool tune_scratch = true;  // with gemm_tune: workspace for timing accumulating calls (false: they are not timed)
    int splits = 0, kw = 0;
    int64_t tile_rows = 0;
    int overlap = 0;
    bool experts_swiglu = false;    // expert weights: take [gate | up] input and fold SwiGLU in (swiglu_input())
    bool experts_fused_sum = false;  // expert weights: the per-pair GEMV writes the weighted sum over the slots
    int64_t experts_gemm_tokens = 0;  // expert weights: from this many tokens on, the grouped GEMM (0: never)
    int experts_gemm_tiles = 0;  // expert weights: the GEMM's 8-token tiles per group at most (2, 4, 8; 0: what fits)
    int experts_gemm_ctas = 1;   // expert weights: GEMM kernels compiled for 1 or 2 CTAs per SM (2: <= 128 registers)
    bool experts_gemm_bf16x2 = false;  // expert weights: the GEMM dequantizes 4-6-bit codes with bf16x2 arithmetic
    int experts_kw = 0;  // expert weights: warps per row group of the GEMV plan (ExpertsPlan::kw; 0: automatic)
};

// True when the CUDA kernels handle type t.
bool cuda_supports(Type t);
// Device bytes of a [rows, cols] weight of type t on the GPU (tiled / padded layout). Throws imp::Error naming
// `tensor` when the type has no CUDA kernels.
uint64_t device_bytes(const std::string& tensor, Type t, int64_t rows, int64_t cols);
// Rows of ggml bytes on the host (row_bytes each).
struct RowPart {
    const uint8_t* data;
    int64_t rows;
};
// Repacks the row concatenation of `parts` into the GPU layout and uploads it to `ex` (a CUDA executor). Block
// types: every part but the last a multiple of 16 rows. Throws imp::Error naming the tensor when the type has no
// CUDA kernels or ex gives no CUDA handles.
std::unique_ptr<Weight> load_weight(const std::string& tensor, Type t, int64_t cols, const std::vector<RowPart>& parts,
                                    uint64_t row_bytes, Executor& ex, const CudaOptions& opt = {});

// Throws imp::Error when w is not a CUDA weight of this plugin.
void set_gemv_plan(const Weight& w, int splits, int warps_per_row_group);
void set_gemm_tile_rows(const Weight& w, int64_t rows);
// What matmul_fused may take into the GEMV (CudaOptions::fuse_norm / fuse_swiglu), and the one-token K-type form.
void set_gemv_fusion(const Weight& w, bool norm, bool swiglu);
void set_gemv_dp4a(const Weight& w, bool dp4a);
// CudaOptions::fuse_gemm_input.
void set_gemm_fusion(const Weight& w, bool on);
// CudaOptions::gemm_tune and tune_scratch (workspace_bytes grows with both), and how many token buckets of its GEMM
// shapes were timed.
void set_gemm_tune(const Weight& w, bool on, bool scratch = true);
int gemm_tuned_buckets(const Weight& w);
// The GEMV variants of CudaOptions: q8_dp4a, prefetch, plain_pdl, l2_prefetch.
void set_gemv_variants(const Weight& w, bool q8_dp4a, bool prefetch, bool plain_pdl, int l2_prefetch = 0);
void set_gemm_overlap(const Weight& w, int mode);
// A copy of a CUDA weight in new memory of `ex` (the bench rotates copies to defeat the L2 cache).
std::unique_ptr<Weight> clone_weight(const Weight& w, Executor& ex);

}  // namespace imp::ggml::cuda
