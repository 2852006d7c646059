// Weight-only CUDA kernels shared by quant_fp8 and quant_nvfp4: host-side launchers. Each checks its launch and
// throws imp::Error on failure; none allocates or synchronises, and none depends on device values (ids, amax) on
// the host, so all of them record into a CUDA graph.
#pragma once
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdint>

#include "wo_layout.h"

namespace imp::wo {

constexpr int kMaxGemvTokens = 8;

// How the GEMV feeds its chunks (wo_gemv.cu): Regs: one chunk per row in flight per lane, in registers; Regs2: two
// (twice the bytes in flight; up to 4 tokens, 5-8 run Regs); Async: cp.async into a shared-memory ring, several
// chunks deep (up to 4 tokens; 5-8 tokens run Regs).
// Stream: dense 1-2 token calls on matrices of many row groups run the persistent streaming kernel
// (wo_gemv_stream.cu); other calls of that plan run Regs.
// Mma: dense calls on the tensor cores (wo_gemv_mma.cu: each code dequantized once for all tokens); expert calls of
// that plan run Regs.
enum class GemvPlan { Regs, Async, Regs2, Stream, Mma };

// One GEMV launch: y[t, r] (+)= sum_c x[t, c] * W[r, c].
//   Dense (ids == null): n_tokens <= kMaxGemvTokens rows of x.
//   Experts (ids != null): n_pairs work items, one token each: pair p reads expert ids[p] (matrix w + e * l.bytes),
//     activation row (x_per_slot ? p : p / top_k) of x and writes output row p of y. An id outside [0, n_expert)
//     writes a zero row when zero_invalid, else nothing.
//   Grouped experts (ids and groups != null): n_items work items of up to kExpertGroup pairs routed to one expert
//     (experts_group), each reading that expert's weights once for all its pairs; items at or past *n_groups exit.
struct GemvArgs {
    const uint8_t* w = nullptr;
    const float* x = nullptr;
    int64_t xs = 0;
    float* y = nullptr;
    int64_t ys = 0;
    int n_tokens = 0;
    bool accumulate = false;
    const int32_t* ids = nullptr;
    int n_expert = 0, top_k = 1, n_pairs = 0;
    const int32_t* groups = nullptr;    // [item][3]: expert (-1: ids out of range), first index into order, count
    const int32_t* n_groups = nullptr;  // device: the number of items
    const int32_t* order = nullptr;     // [n_pairs] pairs sorted by expert
    int n_items = 0;                    // grouped: the bound on the items (experts_max_groups)
    bool x_per_slot = false, zero_invalid = false;
    // Ungrouped expert calls: items n_routed .. n_pairs - 1 run on the matrix at `extra` (one expert's layout) for
    // token item - n_routed (ExpertMatmul::extra; x row item - n_routed, or item when x_per_slot; y row item).
    const uint8_t* extra = nullptr;
    int n_routed = 0;
    int kw = 0;        // warps per row group (1, 2, 4, 8; 0 = from the shape)
    bool short_rows = false;  // kw 0 and rows of at most 16 chunks: half-warp row groups (setting gemv_short_rows)
    GemvPlan plan = GemvPlan::Regs;
    int sm_count = 0;  // the device's SMs (CudaHandles::sm_count), for kw == 0
    bool pdl = false;  // programmatic dependent launch (CudaHandles::pdl)
    // Dense calls: x is replaced by rms_norm(x) * norm per token (eps norm_eps; the executor's rms_norm up to the
    // order of its sum of squares), staged in shared memory by each CTA: one kernel instead of the norm's and the
    // GEMV's. The Regs plan whatever `plan` says; only where gemv_norm_applies.
    const float* norm = nullptr;
    float norm_eps = 0.f;
    // Ungrouped expert calls: x rows are [gate | up] (2 x cols floats) and the input is silu(gate) * up, staged in
    // shared memory by each CTA (the executor's SwiGLU bit for bit): no SwiGLU pass before the GEMV. The Regs plan
    // whatever `plan` says; only where gemv_swiglu_applies.
    bool swiglu = false;
    // The Regs plan's calls (dense, or ungrouped experts) stage x in shared memory first (each CTA copies its rows),
    // where gemv_stage_applies; the same sums. Other plans ignore it.
    bool stage_x = false;
    // NVFP4, the Regs plan's calls (dense, or ungrouped experts): x quantized to int8 per 16-column group as each
    // CTA stages it (unit amax / 127, codes rint(x * 127 / amax)), the products summed by dp4a: not the fp32 sums
    // of the other paths (x's rounding, as an FP8 GEMM's activations). Where gemv_q8_applies; else ignored (and
    // by swiglu calls).
    bool x_int8 = false;
    // Warps per CTA of x_int8's dense one-token calls: 8 (every GEMV kernel's), 16 or 32 (one CTA of 1024 threads
    // an SM stages x once where four CTAs of 256 staged it four times; the same sums as 8 at the same kw); 0: from
    // the shape (q8_auto_warps).
    int q8_warps = 0;
    // Dense calls of at least this many tokens run the Mma plan's kernel whatever `plan` says (0: never; norm-fused
    // calls are refused above it by the weight, so their norm runs first).
    int mma_tokens = 0;
};
void gemv(const Layout& l, const GemvArgs& a, cudaStream_t st);
// Whether a GEMV of n_tokens (per item) over x can stage x in shared memory (GemvArgs::stage_x, and for the
// [gate | up] rows of GemvArgs::swiglu, n_tokens 1, experts): 1-8 tokens, cols a multiple of 4, x 16-byte aligned
// and, past one token or for expert items (rows xs apart), its row stride a multiple of 4 floats; the rows within
// kMaxNormSmem.
bool gemv_stage_applies(const Layout& l, int64_t n_tokens, const float* x, int64_t xs, bool experts = false);
// Whether an ungrouped expert call can stage its [gate | up] rows (GemvArgs::swiglu): each CTA writes silu(gate) *
// up (cols floats).
inline bool gemv_swiglu_applies(const Layout& l, const float* x, int64_t xs) {
    return gemv_stage_applies(l, 1, x, xs, true);
}
// The shared memory of GemvArgs::x_int8's staged rows for cp padded columns and n_tokens (its token bucket), and
// whether a call can take it (NVFP4, 1-8 tokens, the rows within kMaxNormSmem).
int64_t gemv_q8_smem(int64_t cp, int n_tokens);
// GemvArgs::q8_warps 0: 16 warps a CTA where x is wider than 8192 columns (H100, session 20: 4096x14336 15.2 us at
// 16 warps against 16.4 at 8; 14336x4096 13.5 against 13.2), else 8.
inline int q8_auto_warps(int64_t cp) { return cp > 8192 ? 16 : 8; }
bool gemv_q8_applies(const Layout& l, int n_tokens);
// Shared memory a norm-fused GEMV stages its rows in (T x cols floats, T the token bucket 1, 2, 4 or 8).
constexpr int64_t kMaxNormSmem = 40 * 1024;
// Whether a GEMV of n_tokens over x (row stride xs) can take the RMSNorm with weight `norm` (GemvArgs::norm):
// 1-8 tokens, cols a multiple of 4, x rows and norm 16-byte aligned, the staged rows within kMaxNormSmem.
bool gemv_norm_applies(const Layout& l, int64_t n_tokens, const float* x, int64_t xs, const float* norm);
// The streaming GEMV (GemvPlan::Stream): the grid it runs a dense call of n_tokens on (one resident wave: 2 CTAs
// per SM), or 0 where it does not apply (more than 2 tokens, unknown SM count, fewer than kStreamGroupsPerWarp row
// groups per warp of that wave); the launch.
constexpr int kStreamGroupsPerWarp = 4;
int stream_grid(const Layout& l, int n_tokens, int sm_count);
// The fewest rows a matrix needs for the streaming GEMV to apply on a device of sm_count SMs.
int64_t stream_min_rows(int sm_count);
void gemv_stream(const Layout& l, const GemvArgs& a, int grid, cudaStream_t st);
// Sets what the plan's kernels need before the first launch (Async: their shared-memory limit) on the current
// device; called when a weight that uses the plan is made (never inside a graph capture).
void gemv_init(GemvPlan plan);
// The warps per row group gemv picks when kw == 0: for l, plan, n_tokens per item, n_items (1 dense) on a device
// of sm_count SMs (0: unknown) for a kernel of which ctas_per_sm thread blocks fit an SM.
// warps: the CTA's (kWarps; the int8 one-token dense kernel's GemvArgs::q8_warps).
int auto_kw(const Layout& l, GemvPlan plan, int n_tokens, int n_items, int sm_count, int ctas_per_sm = 2,
            int warps = 8);
// The lanes per row group gemv runs a call with, given the warps per row group kw it chose: kw * 32, or 16 (half
// warps) with GemvArgs::short_rows on rows of at most 16 chunks where the automatic plan chose kw 1.
int gemv_row_lanes(const Layout& l, const GemvArgs& a, int kw);

// Pairs per item of the grouped expert GEMV (its token tile), and the most experts the grouping kernel counts in
// shared memory.
constexpr int kExpertGroup = 8;
constexpr int64_t kMaxGroupedExperts = 4000;
// One CTA sorts the n_pairs pairs by expert: *n_groups, groups [item][3] (items of up to `group` pairs; the GEMV
// takes kExpertGroup, the GEMM 8 * nt) and order [n_pairs] as GemvArgs / ExpertsGemmArgs want; pairs whose id is
// out of range form items of expert -1. The order of pairs inside an expert may vary from run to run; each pair's
// result does not depend on it.
void experts_group(const int32_t* ids, int n_pairs, int n_expert, int group, int32_t* n_groups, int32_t* groups,
                   int32_t* order, cudaStream_t st);
// The bound on the items of n_pairs pairs over n_expert experts (+ the out-of-range bucket) in groups of up to
// `group` pairs; the default group size's bound holds for every larger one (the workspace is sized with it).
inline int64_t experts_max_groups(int64_t n_pairs, int64_t n_expert, int64_t group = kExpertGroup) {
    return n_pairs / group + std::min<int64_t>(n_pairs, n_expert + 1);
}

// The grouped expert GEMM on the tensor cores (wo_experts_gemm.cu), for prefill: work items are the groups of up to
// 8 * nt pairs of one expert that experts_group made (group = 8 * nt); each reads its expert's weights once for all
// its pairs (dequantized to bf16 in registers, m16n8k16 MMAs with fp32 sums) and writes output row p of y for each
// pair p: y[p, r] (+)= sum_c x[row(p), c] * W_e[r, c], row(p) = x_per_slot ? p : p / top_k. An item of expert -1
// writes zero rows when zero_invalid, else nothing.
struct ExpertsGemmArgs {
    const uint8_t* w = nullptr;  // expert e at w + e * l.bytes
    const float* x = nullptr;
    int64_t xs = 0;
    float* y = nullptr;
    int64_t ys = 0;
    int n_expert = 0, top_k = 1;
    bool x_per_slot = false, accumulate = false, zero_invalid = false;
    const int32_t* groups = nullptr;    // [item][3]: expert, first index into order, count
    const int32_t* n_groups = nullptr;  // device: the number of items
    const int32_t* order = nullptr;     // [n_pairs] pairs sorted by expert
    int n_items = 0;                    // the bound on the items (experts_max_groups)
    bool swiglu = false;                // x rows are [gate | up] (2 cols each): the input is silu(gate) * up
    bool pdl = false;
};
// Sets the GEMM kernels' shared-memory limit on the current device (once per process and codec; never inside a
// graph capture) and returns the largest token tile count nt (8, 4 or 2 tiles of 8 tokens per item) whose staged
// activations fit for l; 0: none fits (the GEMV stays).
int experts_gemm_init(const Layout& l);
// The shared memory one item of nt token tiles stages for l.
int64_t experts_gemm_smem_need(const Layout& l, int nt);
void experts_gemm(const Layout& l, const ExpertsGemmArgs& a, int nt, cudaStream_t st);

// The fused MoE down projection of decode (wo_moe_down.cu): y[t, r] (+)= sum over j < top_k of weights[t, j] *
// (W_{ids[t, j]} row r . a_{t, j}), a_{t, j} = x row t * top_k + j, or silu(gate) * up of it when swiglu (rows
// [gate | up], 2 cols each); ids out of range add nothing; with MoeDownArgs::extra one slot more per token (its
// top_k counts the extra slot for _fits and _smem). One kernel, deterministic.
constexpr int kMaxFusedTopK = 32;
// The staged activation rows of one token: dynamic shared memory, within the 48 KiB a launch gets without opting in
// once the kernel's static part (under 1 KiB) is counted.
constexpr int64_t kMaxFusedSmem = 47 * 1024;
struct MoeDownArgs {
    const uint8_t* w = nullptr;  // expert e at w + e * l.bytes
    const float* x = nullptr;
    int64_t xs = 0;
    bool swiglu = false;
    const int32_t* ids = nullptr;
    const float* weights = nullptr;
    int n_expert = 0, top_k = 1;
    int64_t n_tokens = 0;
    float* y = nullptr;
    int64_t ys = 0;
    bool accumulate = false, pdl = false;
    // The extra slot (ExpertMatmul::extra: the shared expert), or null: one more matrix of l's layout for every token,
    // its activation row t at extra_x + t * xs ([gate | up] when swiglu), its weight extra_weights[t] (1 when null).
    const uint8_t* extra = nullptr;
    const float* extra_x = nullptr;
    const float* extra_weights = nullptr;
};
// Whether experts_down_fused takes l at top_k (its staged rows fit kMaxFusedSmem), and those bytes.
bool experts_down_fused_fits(const Layout& l, int top_k);
int64_t experts_down_fused_smem(const Layout& l, int top_k);
void experts_down_fused(const Layout& l, const MoeDownArgs& a, cudaStream_t st);
// out[i, c] = silu(x[i, c]) * x[i, cols + c] for i < n, c < cols (x row stride xs; out row stride cols), as the
// executor's SwiGLU.
void swiglu_rows(const float* x, int64_t xs, int64_t n, int64_t cols, float* out, bool pdl, cudaStream_t st);

// out[i, :] = W[ids[i], :] as fp32 (w = e2m1 * (e4m3 * global) / e4m3 * scale, as the CPU references); an id out
// of range gives a zero row.
void get_rows(const Layout& l, const uint8_t* w, const int32_t* ids, int64_t n, float* out, cudaStream_t st);
// Rows [r0, r0 + nr) of W without the per-tensor factor, as bf16 [nr, ldo] (ldo >= cp, ldo % 8 == 0, out 16-byte
// aligned; columns past cols zero):
// NVFP4 e2m1 * e4m3 (exact in bf16), FP8 e4m3 (n_post == 1, exact) or e4m3 * scale[r] rounded (n_post == rows).
// The per-tensor factor left out (NVFP4 global, per-tensor FP8 scale) is the GEMM's alpha.
void dequant_bf16(const Layout& l, const uint8_t* w, int64_t r0, int64_t nr, uint16_t* out, int64_t ldo,
                  cudaStream_t st);
// x [n, cols] (row stride xs) as bf16 [n, ldo], zero past cols.
void to_bf16(const float* x, int64_t xs, int64_t n, int64_t cols, uint16_t* out, int64_t ldo, cudaStream_t st);
// Activation quantization for the FP8 GEMM (wo_quant.cu); E4M3 [n, ldo] out (ldo % 4 == 0, zero past cols):
// q = e4m3(x / unit) (saturating), unit = amax / 448 (1 when amax is 0).
// quantize_fp8: one unit per call (amax over all of x [n, cols], row stride xs): a pass writing one partial amax per
// CTA into stat, then the quantizing pass (each CTA reduces the partials). stat: kStatBytes of device memory,
// 256-aligned; [kStatUnit] the unit (read by the FP8 GEMM as its B scale; cuBLASLt wants scale pointers 16-byte
// aligned). Nothing to clear between calls.
constexpr int kStatUnit = 64;
constexpr int kStatParts = 128;  // the partials: stat[kStatParts + i], i < kMaxParts
constexpr int kMaxParts = 512;
constexpr uint64_t kStatBytes = 4096;
void quantize_fp8(const float* x, int64_t xs, int64_t n, int64_t cols, uint8_t* out, int64_t ldo, float* stat,
                  cudaStream_t st);
// quantize_fp8_rows: one unit per token (amax over its row), in one pass (a CTA per row): units[t] for t < n.
void quantize_fp8_rows(const float* x, int64_t xs, int64_t n, int64_t cols, uint8_t* out, int64_t ldo, float* units,
                       cudaStream_t st);
// y[t, r] (+)= tmp[t * ldt + r] * s_row[r] * s_tok[t] for r < rows, t < n (a null scale: 1).
void scale_rows(const float* tmp, int64_t ldt, int64_t rows, int64_t n, const float* s_row, const float* s_tok,
                float* y, int64_t ys, bool accumulate, cudaStream_t st);
// y[t, r] (+)= sum over j < top_k in order of weights[p] * part[p * rows + r] (p = t * top_k + j), pairs whose id
// is out of range skipped; fp32, deterministic.
// extra: part also holds row n_tokens * top_k + t of each token's extra slot, added with extra_weights[t] (1 where
// null) after the slots.
void experts_reduce(const float* part, int64_t rows, const int32_t* ids, const float* weights, int n_expert,
                    int64_t n_tokens, int top_k, float* y, int64_t ys, bool accumulate, bool pdl, cudaStream_t st,
                    bool extra = false, const float* extra_weights = nullptr);
// NVFP4 with has_fp8: fills the FP8 copy of matrix w from its codes and scales: e4m3(e2m1 * e4m3s * inv_unit).
void nvfp4_to_fp8(const Layout& l, uint8_t* w, float inv_unit, cudaStream_t st);

}  // namespace imp::wo
