// quant_ggml CUDA: host-side launchers of the expert-weight kernels (cuda_experts.cpp calls them; each checks its
// launch and throws imp::Error on failure). All work goes to `stream`; none of them allocates or synchronises, and
// no launch depends on the values of ids or weights (they are read on the device), so a grouped matmul captures
// into a CUDA graph that replays with other routing.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "repack.h"

namespace imp::ggml::cuda {

// The launch attribute of programmatic dependent launch (every expert kernel executes griddepcontrol.wait before
// it touches memory that other kernels write).
inline cudaLaunchAttribute pdl_attr() {
    cudaLaunchAttribute a{};
    a.id = cudaLaunchAttributeProgrammaticStreamSerialization;
    a.val.programmaticStreamSerializationAllowed = 1;
    return a;
}

// Pairs per work item of the grouped path (the GEMV's token tile).
constexpr int kExpertGroupTokens = 8;
// The grouping kernel keeps per-expert counters in shared memory: at most this many experts (else per-pair only).
constexpr int64_t kMaxGroupedExperts = 4095;

// Where a work item finds its pairs. Pair p = t * top_k + j reads activation row (x_per_slot ? p : t) of x and
// writes output row p of out (row strides xs, os). A work item is either one pair (groups == null: item p is pair p,
// its expert ids[p]) or a group of up to kExpertGroupTokens pairs on one expert (groups[3 g] = expert, or -1 for
// pairs whose id is out of range; groups[3 g + 1] = first index into order; groups[3 g + 2] = pair count; items at
// or past *n_groups do nothing).
struct ExpertsRoute {
    const int32_t* ids = nullptr;
    const int32_t* groups = nullptr;
    const int32_t* n_groups = nullptr;
    const int32_t* order = nullptr;
    const float* x = nullptr;
    int64_t xs = 0;
    float* out = nullptr;
    int64_t os = 0;
    int n_expert = 0, top_k = 1, x_per_slot = 0;
    int glu = 0;    // activation rows are [gate | up] (2 cols floats): the GEMV's input is silu(gate) * up
    int item0 = 0;  // first work item of a launch (launches cover at most 65535 items each)
};

// The weighted sum folded into the per-pair GEMV (counters != null): each CTA, after writing its rows of its
// pair's output row (ExpertsRoute::out, the per-pair workspace), counts itself in counters[t * gridDim.x +
// blockIdx.x]; the last of token t's top_k CTAs for those rows resets the counter and writes
// y[t, r] (+)= sum over j < top_k, in order, of weights[t * top_k + j] * out[t * top_k + j, r] (ids out of range
// skipped): the same arithmetic as experts_reduce, without its launch. Pairs whose id is out of range count too.
// Tokens < kSumTokens; counters start at zero and are left at zero.
constexpr int kSumTokens = 16;
struct ExpertsSum {
    const float* weights = nullptr;
    float* y = nullptr;
    int64_t ys = 0;
    int accumulate = 0;
    int* counters = nullptr;
};

struct ExpertsArgs {
    const void* w = nullptr;  // expert 0; expert e at w + e * expert_bytes (each in the DeviceLayout of one expert)
    uint64_t expert_bytes = 0;
    ExpertsRoute route;
    int n_items = 0;          // work items: pairs, or the bound on groups
    int plan_items = 0;       // work items expected to do work (sizes the GEMV plan)
    int accumulate = 0;       // out += instead of out =
    int zero_invalid = 0;     // items whose expert is out of range write zero rows (else nothing)
    int splits = 0, kw = 0;   // tiled types: forced GEMV plan (0 = from the shape), as GemvArgs
    bool pdl = false;         // launch with programmatic dependent launch (CudaHandles::pdl)
    bool dp4a = true;         // per-pair items, Q4_K / Q6_K: the dp4a form, as GemvArgs::dp4a
    ExpertsSum sum;           // per-pair items only
};
// Counters (ints) the fused weighted sum needs per token for a weight of l's shape (a bound on gridDim.x).
inline int64_t experts_sum_counters(const DeviceLayout& l) { return l.n_rg + (l.rows + 1) / 2; }

// The GEMV of every work item: out rows of its pairs (+)= W[expert] x rows. Per pair: one token per item (the dp4a
// form for Q4_K / Q6_K, as the dense one-token GEMV). Grouped: kExpertGroupTokens tokens per item on the tensor cores
// (tiled types) or the CUDA cores (plain types).
void experts_gemv(const DeviceLayout& l, const ExpertsArgs& a, int sm_count, int cc, cudaStream_t stream);
// True when the grouped GEMV (kExpertGroupTokens tokens per item) can run a row of l (its staged activations fit).
bool experts_grouped_fits(const DeviceLayout& l, int sm_count, int cc);
// Per-process setup of the expert kernels of type t (shared-memory limits); call outside any capture (load does).
void prepare_experts(Type t);

// One CTA groups the n_pairs pairs by expert for the grouped GEMV (groups of up to `group` pairs; the GEMV takes
// kExpertGroupTokens, the GEMM 8 nt): *n_groups, groups [max_groups][3] and order [n_pairs] (see ExpertsRoute).
// Pairs whose id is out of range form groups of expert -1 when keep_invalid, else are left out.
// n_expert <= kMaxGroupedExperts.
void experts_group(const int32_t* ids, int n_pairs, int n_expert, int keep_invalid, int32_t* n_groups,
                   int32_t* groups, int32_t* order, bool pdl, cudaStream_t stream, int group = kExpertGroupTokens);
// The bound on the groups of up to `group` pairs of n_pairs pairs over n_expert experts (+ the out-of-range bucket);
// it only falls as `group` grows.
int64_t experts_max_groups(int64_t n_pairs, int64_t n_expert, int64_t group = kExpertGroupTokens);

// The grouped GEMM of prefill (experts_gemm.cuh), for the tiled types and BF16: one work item per (256-row block,
// group of up to 8 nt pairs of one expert; a.route.groups built with that group size), the pairs' activations
// staged as bf16 in shared memory, weights dequantized to bf16 in registers, tensor-core MMA with fp32
// accumulation; out rows of the pairs (+)= W[expert] x rows (a.accumulate, a.zero_invalid as the GEMV).
bool experts_gemm_supported(Type t);
// The 8-token tiles per group for a weight of layout l: 8, 4 or 2 (the most, at most max_nt when max_nt > 0, whose
// staged activations fit in smem_bytes of shared memory), or 0 when not even 16 tokens fit or the type has no GEMM.
int experts_gemm_nt(const DeviceLayout& l, int64_t smem_bytes, int max_nt = 0);
// ctas: 1, or 2 (kernels compiled for two CTAs per SM: at most 128 registers a thread; nt 2 and 4, else as 1).
// bf16x2: the 4- to 6-bit code types' weights dequantized with bf16x2 arithmetic (GemmTiledA2; experts_gemm_dequant).
void experts_gemm(const DeviceLayout& l, const ExpertsArgs& a, int nt, int ctas, bool bf16x2, cudaStream_t stream);
// The dynamic shared memory the GEMM kernels may use on device `device` (also what experts_gemm_nt takes).
int experts_gemm_smem(int device);
// Per-process setup of the GEMM kernels of type t (their shared-memory limit); call outside any capture.
void prepare_experts_gemm(Type t, int smem_bytes);

// y[t, r] (+)= sum over j < top_k, in order, of weights[p] * part[p * rows + r] (p = t * top_k + j), skipping pairs
// whose id is out of range; fp32.
void experts_reduce(const float* part, int rows, const int32_t* ids, const float* weights, int n_expert,
                    int n_tokens, int top_k, float* y, int64_t ys, int accumulate, bool pdl, cudaStream_t stream);

}  // namespace imp::ggml::cuda
