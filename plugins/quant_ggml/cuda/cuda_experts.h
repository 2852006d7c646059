// quant_ggml CUDA: expert weights (imp/experts.h) on a CUDA executor: the n_expert matrices repacked into the GPU
// layout of one [rows, cols] weight each (repack.h: 16-row tiles for block types, padded rows for plain types) and
// stacked in ONE device allocation, expert e at e * (bytes of one expert); grouped matmul on the device from the
// routed ids and weights. Needs no CUDA headers to include.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ggml_types.h"
#include "imp/executor.h"
#include "cuda_weight.h"
#include "imp/experts.h"

namespace imp::ggml::cuda {

// True when the CUDA expert kernels handle type t (the types of the CUDA GEMV: F32, F16, BF16, Q4_0, Q4_1, Q8_0,
// Q4_K, Q5_K, Q6_K).
bool experts_supported(Type t);
// Device bytes of n_expert experts [rows, cols] of type t: n_expert * device_layout(t, rows, cols).bytes. Throws
// imp::Error naming `name` when the type has no CUDA kernels or the shape is bad.
uint64_t experts_device_bytes(const std::string& name, Type t, int64_t n_expert, int64_t rows, int64_t cols);
// Repacks and uploads the experts into one allocation of ex (a CUDA executor): expert_data[e] holds expert e's
// `rows` ggml rows of `cols` elements (row-major), e.g. expert_pointers() of a GGUF / HF 3-D tensor, or one 2-D
// tensor per expert. Throws imp::Error naming `name` on an unsupported type, a bad shape, a missing pointer or an
// executor without CUDA handles.
std::unique_ptr<ExpertWeights> load_experts(const std::string& name, Type t, int64_t n_expert, int64_t rows,
                                            int64_t cols, const std::vector<const uint8_t*>& expert_data,
                                            Executor& ex, const CudaOptions& opt = {});
// The same from experts whose rows lie in several places: expert_parts[e] lists expert e's rows as consecutive
// segments (a fused stack's parts, e.g. its gate rows then its up rows, each in its own tensor), whose row counts add
// up to `rows`. Each expert is joined in a per-thread buffer as it is repacked (no host copy of the whole stack).
// Throws imp::Error naming `name` as above, and on segments that are missing or do not add up.
struct ExpertRows {
    const uint8_t* data = nullptr;
    int64_t rows = 0;
};
std::unique_ptr<ExpertWeights> load_experts(const std::string& name, Type t, int64_t n_expert, int64_t rows,
                                            int64_t cols, const std::vector<std::vector<ExpertRows>>& expert_parts,
                                            Executor& ex, const CudaOptions& opt = {});

// Knobs for tests and the bench, per ExpertWeights of load_experts (0 = automatic): path 1 = one (token, slot) pair
// per work item, 2 = pairs grouped by expert (when the grouped GEMV fits the row), 3 = the grouped GEMM (when the
// type has one and 16 tokens' activations fit in shared memory; else as 0); automatic takes the GEMM from
// CudaOptions::experts_gemm_tokens tokens on; splits / warps per row group of
// the tiled GEMV plan, as set_gemv_plan (cuda_weight.h); the GEMM's 8-token tiles per group (2, 4 or 8; at most
// what fits in shared memory: experts_gemm_nt) and CTAs per SM (1 or 2: CudaOptions::experts_gemm_ctas). Throws
// imp::Error when w is not a CUDA ExpertWeights or gemm_nt is not 0, 2, 4 or 8.
struct ExpertsPlan {
    int path = 0;
    int splits = 0;
    int kw = 0;
    int gemm_nt = 0;
    int gemm_ctas = 0;
    int gemm_dequant = 0;  // 0: CudaOptions::experts_gemm_bf16x2; 1 fp32 (the reference's bits); 2 bf16x2
};
void set_experts_plan(ExpertWeights& w, const ExpertsPlan& plan);

}  // namespace imp::ggml::cuda
