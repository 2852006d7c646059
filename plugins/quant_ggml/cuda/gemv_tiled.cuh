// quant_ggml CUDA: the decode GEMV of the tiled block types, on the tensor cores.
//
// A CTA of 8 warps covers 8 / KW row groups (16 rows each) and one range of column chunks; the KW warps of a row
// group take its chunks in turn. Each warp streams kUnroll chunks per step with 16-byte loads (the next step's loads
// issued before the current step is computed, two register buffers), decodes the codes into exact bf16 pairs in
// registers and runs one m16n8k16 MMA per 16 columns per group of 4 tokens. The B operand holds, for each token, x's
// bf16 hi part in column 2t and its lo part in column 2t + 1 (~16 significant bits): the CTA converts its column
// range of x into these B fragments in shared memory once, before the loop (batched loads; no branch per k-step:
// lanes of unused token columns read padding). Each scale block (32 columns; 16 for Q6_K) gets a fresh accumulator
// that is scaled into the fp32 result; types with a min add (add * sum of x over the block), the sum from an MMA
// with A = 1. Columns are split over the CTAs of a thread-block cluster (up to 8) when there are too few row groups
// to fill the GPU or the staged activations need it: the partial sums meet in distributed shared memory. Each
// output is written once (and read once before, when accumulating), no atomics, deterministic. tiled_plan picks KW
// and the splits.
#pragma once
#include <cooperative_groups.h>

#include <algorithm>
#include <string>
#include <type_traits>

#include "gemv_dp4a.cuh"
#include "imp/cuda/check.h"
#include "imp/cuda/launch.cuh"
#include "imp/error.h"
#include "kernels.h"
#include "mma_bf16.cuh"

namespace imp::ggml::cuda {


constexpr int kGemvWarps = 8;
// Shared memory for the staged B fragments of one CTA (2 CTAs per SM fit).
constexpr int kGemvSmemB = 100 * 1024;

struct TiledArgs {
    const uint8_t* w;
    int64_t rg_bytes;
    int chunks, rows, cols;
    const float* x;
    int64_t xs;
    float* y;
    int64_t ys;
    int n_tokens, x_vec, accumulate;
    const float* norm;  // fused RMSNorm weight (null: none)
    float norm_eps;
    int swiglu;         // fused SwiGLU: row groups paired gate (first half of the rows) / up (second half)
    int l2_prefetch;    // bytes per CTA of its weights prefetched into L2 before griddepcontrol.wait (0: none)
};

// Asks the L2 to fetch `bytes` (a multiple of 16) from p (16-byte aligned): no registers, no completion to wait for.
__device__ __forceinline__ void l2_prefetch(const void* p, uint32_t bytes) {
    asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(p), "r"(bytes) : "memory");
}

// 1 / sqrt(mean(x_t^2) + eps) of each token row t < TP into rs[t] (rs[t] = 1 past n_tokens); every thread of the CTA
// takes part, scratch holds kGemvWarps floats. As the executor's rms_norm computes it (fp32 sums).
template <int TP>
__device__ __forceinline__ void tiled_norm_scales(const TiledArgs& a, float* rs, float* scratch) {
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, n_warps = blockDim.x >> 5;
#pragma unroll 1
    for (int t = 0; t < TP; ++t) {
        float s = 0.f;
        if (t < a.n_tokens) {
            const float* xt = a.x + int64_t(t) * a.xs;
            for (int c = threadIdx.x; c < a.cols; c += blockDim.x) {
                const float v = __ldg(xt + c);
                s = fmaf(v, v, s);
            }
        }
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xFFFFFFFFu, s, o);
        if (lane == 0) scratch[warp] = s;
        __syncthreads();
        if (threadIdx.x == 0) {
            float tot = 0.f;
            for (int w = 0; w < n_warps; ++w) tot += scratch[w];
            rs[t] = t < a.n_tokens ? 1.f / sqrtf(tot / float(a.cols) + a.norm_eps) : 1.f;
        }
        __syncthreads();
    }
}

// B fragments in shared memory: per k-step 8 TP pairs, item 8 t + 4 part + c for token t, part (hi/lo) and lane c.
// Lane (g, c) of MMA group j reads item 32 j + 4 g + c; lanes of tokens >= TP read past their k-step (padding at the
// end): those columns only reach outputs of tokens that are never written.
template <int TP>
__host__ __device__ constexpr int b_stride() {
    return 8 * TP;
}
template <int TP>
__host__ __device__ constexpr size_t b_pad_bytes() {
    return 32 * ((TP + 3) / 4) * sizeof(uint2);
}

template <class L, int TP>
struct TiledGemv {
    static constexpr int J = (TP + 3) / 4;
    static constexpr int U = L::kUnroll;
    using Frag = typename L::Frag;

    const uint8_t* wr;
    const uint2* sb;
    int lane, c_begin, c_end, kw_count;
    float acc[J][4];

    __device__ __forceinline__ void load(Frag (&f)[U], int ch0) const {
#pragma unroll
        for (int u = 0; u < U; ++u) {
            const int ch = ch0 + u * kw_count;
            if (ch < c_end)
                L::load(wr + int64_t(ch) * L::kTileBytes, lane, f[u]);
            else
                f[u] = {};
        }
    }

    __device__ __forceinline__ void compute(const Frag (&f)[U], int ch0) {
#pragma unroll
        for (int u = 0; u < U; ++u) {
            const int ch = ch0 + u * kw_count;
            if (ch >= c_end) continue;
            const uint2* bp = sb + (ch - c_begin) * L::kSteps * b_stride<TP>() + lane;
#pragma unroll
            for (int sbk = 0; sbk < L::kSteps / L::kSubSteps; ++sbk) {
                float blk[J][4], xsum[J][4];
#pragma unroll
                for (int j = 0; j < J; ++j)
#pragma unroll
                    for (int e = 0; e < 4; ++e) blk[j][e] = xsum[j][e] = 0.f;
#pragma unroll
                for (int ss = 0; ss < L::kSubSteps; ++ss) {
                    const int s = sbk * L::kSubSteps + ss;
                    uint2 b[J];
#pragma unroll
                    for (int j = 0; j < J; ++j) b[j] = bp[s * b_stride<TP>() + 32 * j];
                    const uint32_t a0 = a_reg<L>(f[u], s, 0), a1 = a_reg<L>(f[u], s, 1);
                    const uint32_t a2 = a_reg<L>(f[u], s, 2), a3 = a_reg<L>(f[u], s, 3);
#pragma unroll
                    for (int j = 0; j < J; ++j) mma_bf16(blk[j], a0, a1, a2, a3, b[j].x, b[j].y);
                    if constexpr (L::kHasMin) {
#pragma unroll
                        for (int j = 0; j < J; ++j)
                            mma_bf16(xsum[j], kBf16One2, kBf16One2, kBf16One2, kBf16One2, b[j].x, b[j].y);
                    }
                }
                const RowScale s0 = L::scale(f[u], sbk, 0), s1 = L::scale(f[u], sbk, 1);
#pragma unroll
                for (int j = 0; j < J; ++j) {
                    acc[j][0] = fmaf(s0.mul, blk[j][0], acc[j][0]);
                    acc[j][1] = fmaf(s0.mul, blk[j][1], acc[j][1]);
                    acc[j][2] = fmaf(s1.mul, blk[j][2], acc[j][2]);
                    acc[j][3] = fmaf(s1.mul, blk[j][3], acc[j][3]);
                    if constexpr (L::kHasMin) {
                        acc[j][0] = fmaf(s0.add, xsum[j][0], acc[j][0]);
                        acc[j][1] = fmaf(s0.add, xsum[j][1], acc[j][1]);
                        acc[j][2] = fmaf(s1.add, xsum[j][2], acc[j][2]);
                        acc[j][3] = fmaf(s1.add, xsum[j][3], acc[j][3]);
                    }
                }
            }
        }
    }
};

// Grid (CTA rows, splits); a cluster of (1, splits, 1) when splits > 1. Dynamic shared memory: the B fragments of
// this CTA's chunks (TP = tokens rounded up to 1, 2, 4 or 8). kw_count: warps per row group (1, 2, 4 or 8).
// MINB: CTAs per SM that the register allocation must allow (launch bounds). Measured on an H100 at 1 token (NOTES,
// v6): 3 (80 registers, no spills) lifts Q8_0 and Q4_0 on 14336 rows by 13-16% and leaves the other shapes within
// noise; the K types and Q4_1 spill at 80 registers and lose 5-20%, 4 (64 registers) loses everywhere.
template <class L, int TP>
constexpr int tiled_minb() {
    return TP == 1 && (std::is_same_v<L, LayoutQ8_0> || std::is_same_v<L, LayoutQ4_0>) ? 3 : 2;
}

// DP: one token of a kDp4aTile type on the dp4a units (gemv_dp4a.cuh) instead of the MMA; same loads, plan and
// reduction. PF (one token, GemvArgs::prefetch): both register buffers are loaded before griddepcontrol.wait and
// the loop refills each right after computing it (else the first only, and the second at the top of the loop). A
// template flag, not a branch: as a runtime branch the Q8_0 / Q4_0 kernels at 80 registers spilled.
template <class L, int TP, int MINB, bool DP = false, bool PF = false>
__global__ void __launch_bounds__(kGemvWarps * 32, MINB) gemv_tiled_kernel(TiledArgs a, int kw_count) {
    static_assert(!DP || (TP == 1 && kDp4aTile<L>), "dp4a GEMV: one token, Q4_K, Q6_K or Q8_0");
    constexpr int J = (TP + 3) / 4;
    constexpr int kOut = 2 * J * 32;  // outputs of one row group: 16 rows x 4 J token columns, as hi + lo sums
    extern __shared__ uint2 smem_b[];
    __shared__ float red[kGemvWarps * kOut];
    __shared__ float part[kGemvWarps * kOut];
    __shared__ float norm_rs[TP], norm_scratch[kGemvWarps];
    const int splits = gridDim.y, split = blockIdx.y;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int rgc = kGemvWarps / kw_count;  // row groups per CTA
    const int n_rg = (a.rows + kTileRows - 1) / kTileRows;
    // SwiGLU: the CTA's first rgc / 2 row groups are gate rows, the other rgc / 2 the up rows f apart (n_rg even).
    const int half = rgc / 2, rgl = warp / kw_count;
    const int gate_rg = half > 0 ? int(blockIdx.x) * half + rgl % half : 0;
    const int rg = !a.swiglu ? int(blockIdx.x) * rgc + rgl
                             : (gate_rg < n_rg / 2 ? (rgl < half ? gate_rg : n_rg / 2 + gate_rg) : n_rg);
    TiledGemv<L, TP> g;
    g.lane = lane;
    g.kw_count = kw_count;
    g.c_begin = int(int64_t(a.chunks) * split / splits);
    g.c_end = rg < n_rg ? int(int64_t(a.chunks) * (split + 1) / splits) : g.c_begin;  // no rows: no chunks
    g.wr = a.w + int64_t(rg < n_rg ? rg : 0) * a.rg_bytes;
    g.sb = smem_b;
#pragma unroll
    for (int j = 0; j < J; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) g.acc[j][e] = 0.f;

    const int kStep = kw_count * L::kUnroll;
    typename L::Frag fa[L::kUnroll], fb[L::kUnroll];
    const int first = g.c_begin + warp % kw_count;
    // With a.l2_prefetch, the first warp of each row group asks the L2 for the start of its row group's tiles (the
    // CTA's budget split over its row groups): the weights stream while the previous kernel still runs, without
    // registers (the register loads below may be scheduled after the wait by the compiler, as ptxas does for Q8_0).
    if (a.l2_prefetch > 0 && lane == 0 && warp % kw_count == 0 && rg < n_rg && g.c_end > g.c_begin) {
        const int64_t span = int64_t(g.c_end - g.c_begin) * L::kTileBytes;
        const int64_t want = int64_t(a.l2_prefetch / rgc) & ~int64_t(15);
        const int64_t bytes = span < want ? span : want;
        if (bytes >= 16) l2_prefetch(g.wr + int64_t(g.c_begin) * L::kTileBytes, uint32_t(bytes));
    }
    // In flight while x is staged (and, launched dependent, while the previous kernel ends): the first buffer, or
    // with PF both.
    g.load(fa, first);
    if constexpr (PF) g.load(fb, first + kStep);
    ::imp::cuda::pdl_wait();
    // dp4a with one column split: the RMSNorm's 1 / rms is applied to the result (a linear factor), and its sum of
    // squares comes from the staging loads (every column once), so x is read once and no extra pass runs.
    const bool late_norm = DP && a.norm && splits == 1;
    if (a.norm && !late_norm) tiled_norm_scales<TP>(a, norm_rs, norm_scratch);

    const int c_all = int(int64_t(a.chunks) * (split + 1) / splits) - g.c_begin;
    [[maybe_unused]] const Dp4aSmem dsm = dp4a_smem(smem_b, c_all * L::kSteps);
    [[maybe_unused]] float ydp[2] = {0.f, 0.f};
    if constexpr (DP) {
        float ssq = dp4a_stage(a.x, a.cols, a.x_vec, g.c_begin * L::kChunkCols, c_all * L::kSteps, dsm, a.norm,
                               a.norm && !late_norm ? norm_rs[0] : 1.f);
        if (late_norm) {
#pragma unroll
            for (int o = 16; o > 0; o >>= 1) ssq += __shfl_xor_sync(0xFFFFFFFFu, ssq, o);
            if (lane == 0) norm_scratch[warp] = ssq;
        }
        __syncthreads();
    } else {
        // Pair (k-step, token, c): one load of 4 x values, written as the hi item 8 t + c and the lo item 8 t + 4 + c.
        constexpr int kBatch = 8;
        const int n_pairs = c_all * L::kSteps * 4 * TP;
        for (int p0 = threadIdx.x; p0 < n_pairs; p0 += kBatch * blockDim.x) {
            float4 v[kBatch];
#pragma unroll
            for (int b = 0; b < kBatch; ++b) {
                const int p = p0 + b * blockDim.x;
                const int cc = p & 3, t = (p >> 2) % TP, ks = (p >> 2) / TP;
                const int col = g.c_begin * L::kChunkCols + 16 * ks + 4 * cc;
                v[b] = make_float4(0.f, 0.f, 0.f, 0.f);
                if (p < n_pairs && col < a.cols && t < a.n_tokens) {
                    const float* xp = a.x + int64_t(t) * a.xs + col;
                    v[b] = a.x_vec ? __ldg(reinterpret_cast<const float4*>(xp))
                                   : make_float4(__ldg(xp), __ldg(xp + 1), __ldg(xp + 2), __ldg(xp + 3));
                    if (a.norm) {
                        const float r = norm_rs[t];
                        v[b] = make_float4(v[b].x * r * __ldg(a.norm + col), v[b].y * r * __ldg(a.norm + col + 1),
                                           v[b].z * r * __ldg(a.norm + col + 2), v[b].w * r * __ldg(a.norm + col + 3));
                    }
                }
            }
#pragma unroll
            for (int b = 0; b < kBatch; ++b) {
                const int p = p0 + b * blockDim.x;
                if (p >= n_pairs) break;
                const int cc = p & 3, t = (p >> 2) % TP, ks = (p >> 2) / TP;
                uint2* d = smem_b + ks * b_stride<TP>() + 8 * t + cc;
                d[0] = make_uint2(split_pair(v[b].x, v[b].y, 0.f), split_pair(v[b].z, v[b].w, 0.f));
                d[4] = make_uint2(split_pair(v[b].x, v[b].y, -1.f), split_pair(v[b].z, v[b].w, -1.f));
            }
        }
        __syncthreads();
    }

    if constexpr (DP) {
        const auto tiles = [&](const typename L::Frag (&f)[L::kUnroll], int ch0) {
#pragma unroll
            for (int u = 0; u < L::kUnroll; ++u) {
                const int ch = ch0 + u * kw_count;
                if (ch < g.c_end) dp4a_tile(f[u], dsm, ch - g.c_begin, lane, ydp);
            }
        };
        for (int ch0 = first; ch0 < g.c_end; ch0 += 2 * kStep) {
            if constexpr (!PF) g.load(fb, ch0 + kStep);
            tiles(fa, ch0);
            g.load(fa, ch0 + 2 * kStep);
            tiles(fb, ch0 + kStep);
            if constexpr (PF) g.load(fb, ch0 + 3 * kStep);
        }
        if (late_norm) {
            float tot = 0.f;
#pragma unroll
            for (int w = 0; w < kGemvWarps; ++w) tot += norm_scratch[w];
            const float rs = 1.f / sqrtf(tot / float(a.cols) + a.norm_eps);
            ydp[0] *= rs;
            ydp[1] *= rs;
        }
    } else {
        for (int ch0 = first; ch0 < g.c_end; ch0 += 2 * kStep) {
            if constexpr (!PF) g.load(fb, ch0 + kStep);
            g.compute(fa, ch0);
            g.load(fa, ch0 + 2 * kStep);
            g.compute(fb, ch0 + kStep);
            if constexpr (PF) g.load(fb, ch0 + 3 * kStep);
        }
    }

    // The next kernel may launch now (its CTAs wait in griddepcontrol.wait for this grid to finish). Measured on an
    // H100 (tg128, core kernels with PDL): triggering here rather than right after the first loads gives Llama-3.2-3B
    // Q4_K_M 475.7 vs 474.1 t/s and 8B Q8_0 245.1 vs 228.7 t/s (early dependents slowed the Q8_0 step).
    ::imp::cuda::pdl_launch_dependents();
    if constexpr (DP) {
        // The 4 lanes c of row pair g hold column shares: their sum, in the C-fragment slots of token 0 (lane c = 0).
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            ydp[r] += __shfl_xor_sync(0xFFFFFFFFu, ydp[r], 1);
            ydp[r] += __shfl_xor_sync(0xFFFFFFFFu, ydp[r], 2);
        }
        red[warp * kOut + lane] = ydp[0];
        red[warp * kOut + 32 + lane] = ydp[1];
    } else {
        // C fragment: acc[j][0/1] = row g, token 4j + c, hi/lo part; acc[j][2/3] = row g + 8.
#pragma unroll
        for (int j = 0; j < J; ++j) {
            red[warp * kOut + (2 * j) * 32 + lane] = g.acc[j][0] + g.acc[j][1];
            red[warp * kOut + (2 * j + 1) * 32 + lane] = g.acc[j][2] + g.acc[j][3];
        }
    }
    __syncthreads();
    // Sum over the kw_count warps of each row group: part[rgl * kOut + q * 32 + ln].
    const int n_out = rgc * kOut;
    for (int i = threadIdx.x; i < n_out; i += blockDim.x) {
        const int rgo = i / kOut, rem = i % kOut;
        float v = 0.f;
        for (int k = 0; k < kw_count; ++k) v += red[(rgo * kw_count + k) * kOut + rem];
        part[i] = v;
    }
    if (splits > 1) {
        // The CTAs of the cluster add their partial sums in rank 0, through distributed shared memory.
        cooperative_groups::cluster_group cl = cooperative_groups::this_cluster();
        cl.sync();
        if (split == 0) {
            for (int i = threadIdx.x; i < n_out; i += blockDim.x) {
                float v = part[i];
                for (int r = 1; r < splits; ++r) v += cl.map_shared_rank(part, r)[i];
                part[i] = v;
            }
        }
        cl.sync();  // the other CTAs' shared memory stays until rank 0 has read it
        if (split != 0) return;
    } else {
        __syncthreads();
    }
    if (a.swiglu) {
        // Gate output i (row group rgl < half) meets its up output at i + half * kOut: y = silu(gate) * up, f columns.
        for (int i = threadIdx.x; i < half * kOut; i += blockDim.x) {
            const int rgo = i / kOut, q = (i % kOut) >> 5, ln = i & 31;
            const int p = q & 1, j = q >> 1;
            const int row = (blockIdx.x * half + rgo) * kTileRows + (ln >> 2) + 8 * p;
            const int t = 4 * j + (ln & 3);
            if (row < a.rows / 2 && t < a.n_tokens) {
                const float gv = part[i], uv = part[i + half * kOut];
                a.y[int64_t(t) * a.ys + row] = gv / (1.f + expf(-gv)) * uv;
            }
        }
        return;
    }
    for (int i = threadIdx.x; i < n_out; i += blockDim.x) {
        const int rgo = i / kOut, q = (i % kOut) >> 5, ln = i & 31;
        const int p = q & 1, j = q >> 1;
        const int row = (blockIdx.x * rgc + rgo) * kTileRows + (ln >> 2) + 8 * p;
        const int t = 4 * j + (ln & 3);
        if (row < a.rows && t < a.n_tokens) {
            float* yp = a.y + int64_t(t) * a.ys + row;
            *yp = a.accumulate ? *yp + part[i] : part[i];
        }
    }
}

template <class L, int TP>
size_t tiled_smem(int64_t chunks_per_cta) {
    const size_t mma = size_t(chunks_per_cta) * L::kSteps * b_stride<TP>() * sizeof(uint2) + b_pad_bytes<TP>();
    if constexpr (TP == 1 && kDp4aTile<L>) return std::max(mma, dp4a_smem_bytes(chunks_per_cta * L::kSteps));
    return mma;
}

struct TiledPlan {
    int kw = 8, splits = 1;
};

// Warps per row group (KW) and column splits, from measurements on an H200 (bench/gpu_bench.cpp, plans forced):
// KW = 8 without splits was fastest at 1 token; 1 warp per row group over clusters of 8 CTAs ran at half that
// speed; KW = 4 with 2 splits was within 10%. So: KW = 8 up to 2 tokens, KW = 4 above (half the staging of x per
// weight byte), 2 splits when the CTAs alone would leave SMs idle, and more splits only as the staged activations
// need to fit (-1 splits when they cannot, even over 8).
// dp4a: the GEMV runs in the dp4a form (read for kDp4aLayout types; Q8_0 reads q8_dp4a instead, so the experts, which
// pass only dp4a, keep the MMA plan for Q8_0).
template <class L, int TP>
TiledPlan tiled_plan(const DeviceLayout& l, int sm_count, int cc, int forced, int forced_kw, bool dp4a,
                     bool q8_dp4a = false) {
    TiledPlan p;
    const int64_t max_splits = cc >= 90 ? 8 : 1;
    p.kw = forced_kw > 0 ? forced_kw : (TP <= 2 ? kGemvWarps : kGemvWarps / 2);
    if constexpr (TP == 1 && kDp4aTile<L>) {
        if constexpr (!kDp4aLayout<L>) dp4a = q8_dp4a;
        // dp4a form: every CTA quantizes the x of its columns, so more row groups per CTA (fewer warps each) pay off
        // as long as the CTAs x splits still make one full wave (2 CTAs per SM). H100, Q4_K GB/s (KW warps per row
        // group, S splits): 14336x4096 K8S1 1654, K4S1 1918, K2S1 2264 (224 units), K1S2 2124; 4096x14336 K8S1
        // 1898, K4S2 2019; 4096x4096 K8S1 1366, K4S2 1404; 1024x4096 K8S2 606. So: the first (S, KW) with
        // 80-100 % of a wave, S = 2 first for wide rows (>= 8192 columns: halves each CTA's staging), KW ascending;
        // else the fullest plan within a wave; else KW 1.
        if (forced_kw <= 0 && forced <= 0 && dp4a && cc >= 90) {
            const int64_t slots = tiled_minb<L, TP>() * int64_t(sm_count);
            TiledPlan best{1, 1}, within{0, 0};
            int64_t within_units = 0;
            bool found = false;
            const bool wide = l.chunks * L::kChunkCols >= 8192;
            const int s_order[2] = {wide ? 2 : 1, wide ? 1 : 2};
            for (int si = 0; si < 2 && !found; ++si)
                for (int kw = 1; kw <= kGemvWarps && !found; kw *= 2) {
                    const int s = s_order[si];
                    if (l.chunks / s < kw) continue;
                    const int64_t units = (l.n_rg + kGemvWarps / kw - 1) / (kGemvWarps / kw) * s;
                    if (units * 10 >= slots * 8 && units <= slots) best = {kw, s}, found = true;
                    if (units <= slots && units > within_units) within = {kw, s}, within_units = units;
                }
            if (!found && within_units > 0) best = within;
            if (tiled_smem<L, TP>((l.chunks + best.splits - 1) / best.splits) <= size_t(kGemvSmemB)) return best;
        }
    }
    const int64_t rgc = kGemvWarps / p.kw, cta_rows = (l.n_rg + rgc - 1) / rgc;
    int64_t s = forced > 0 ? forced : (cta_rows >= sm_count ? 1 : 2);
    s = std::max<int64_t>(1, std::min<int64_t>({s, max_splits, std::max<int64_t>(1, l.chunks / p.kw)}));
    while (s < max_splits && s < l.chunks && tiled_smem<L, TP>((l.chunks + s - 1) / s) > size_t(kGemvSmemB)) ++s;
    p.splits = tiled_smem<L, TP>((l.chunks + s - 1) / s) <= size_t(kGemvSmemB) ? int(s) : -1;
    return p;
}

// Whether a one-token GEMV of layout L takes the dp4a form: Q4_K / Q6_K with a.dp4a, Q8_0 with a.q8_dp4a.
template <class L>
bool dp4a_form(const GemvArgs& a) {
    if constexpr (std::is_same_v<L, LayoutQ8_0>) return a.q8_dp4a;
    return kDp4aLayout<L> && a.dp4a;
}

template <class L, int TP>
bool launch_tiled_tp(const DeviceLayout& l, const GemvArgs& ga, int sm_count, int cc, cudaStream_t st) {
    TiledPlan plan = tiled_plan<L, TP>(l, sm_count, cc, ga.splits, ga.kw, ga.dp4a, ga.q8_dp4a);
    if (plan.splits < 0) return false;
    if (ga.swiglu && plan.kw > kGemvWarps / 2) plan.kw = kGemvWarps / 2;  // a CTA pairs >= 1 gate and 1 up row group
    TiledArgs a{static_cast<const uint8_t*>(ga.w),
                l.rg_bytes,
                int(l.chunks),
                int(l.rows),
                int(l.cols),
                ga.x,
                ga.xs,
                ga.y,
                ga.ys,
                ga.n_tokens,
                (reinterpret_cast<uintptr_t>(ga.x) % 16 == 0) && (ga.xs % 4 == 0),
                ga.accumulate ? 1 : 0,
                ga.norm,
                ga.norm_eps,
                ga.swiglu ? 1 : 0,
                ga.l2_prefetch};
    const int rgc = kGemvWarps / plan.kw;
    ::imp::cuda::LaunchConfig cfg;
    const int64_t cta_rows = ga.swiglu ? (l.n_rg / 2 + rgc / 2 - 1) / (rgc / 2) : (l.n_rg + rgc - 1) / rgc;
    cfg.grid = dim3(unsigned(cta_rows), unsigned(plan.splits), 1);
    cfg.block = dim3(kGemvWarps * 32, 1, 1);
    cfg.smem = tiled_smem<L, TP>((l.chunks + plan.splits - 1) / plan.splits);
    cfg.stream = st;
    cfg.pdl = ga.pdl;
    if (plan.splits > 1) cfg.cluster = dim3(1, unsigned(plan.splits), 1);
    constexpr int kMinb = tiled_minb<L, TP>();
    if constexpr (TP == 1) {
        if constexpr (kDp4aTile<L>) {
            if (dp4a_form<L>(ga)) {
                IMP_CUDA_CHECK(ga.prefetch ? ::imp::cuda::launch(cfg, gemv_tiled_kernel<L, 1, kMinb, true, true>, a,
                                                                 plan.kw)
                                           : ::imp::cuda::launch(cfg, gemv_tiled_kernel<L, 1, kMinb, true>, a, plan.kw));
                return true;
            }
        }
        if (ga.prefetch) {  // 2 CTAs per SM: at 80 registers (3) the Q8_0 / Q4_0 MMA form spills with PF
            IMP_CUDA_CHECK(::imp::cuda::launch(cfg, gemv_tiled_kernel<L, 1, 2, false, true>, a, plan.kw));
            return true;
        }
    }
    IMP_CUDA_CHECK(::imp::cuda::launch(cfg, gemv_tiled_kernel<L, TP, kMinb>, a, plan.kw));
    return true;
}

// Raises the dynamic shared memory limit of the kernels of layout L (once per process, at load time).
template <class L>
void prepare_tiled() {
    const int bytes = kGemvSmemB + int(b_pad_bytes<8>());
    const auto raise = [bytes](auto kernel) {
        IMP_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
    };
    raise(gemv_tiled_kernel<L, 1, tiled_minb<L, 1>()>);
    raise(gemv_tiled_kernel<L, 1, 2, false, true>);
    if constexpr (kDp4aTile<L>) {
        raise(gemv_tiled_kernel<L, 1, tiled_minb<L, 1>(), true>);
        raise(gemv_tiled_kernel<L, 1, tiled_minb<L, 1>(), true, true>);
    }
    raise(gemv_tiled_kernel<L, 2, tiled_minb<L, 2>()>);
    raise(gemv_tiled_kernel<L, 4, tiled_minb<L, 4>()>);
    raise(gemv_tiled_kernel<L, 8, tiled_minb<L, 8>()>);
}

// Tokens rounded up to TP in {1, 2, 4, 8}. When the staged activations of all tokens cannot fit even over 8 column
// splits, the tokens go in groups (each group reads the weights again).
template <class L>
void launch_gemv_tiled(const DeviceLayout& l, const GemvArgs& a, int sm_count, int cc, cudaStream_t st) {
    const int n = a.n_tokens;
    bool ok;
    if (n <= 1)
        ok = launch_tiled_tp<L, 1>(l, a, sm_count, cc, st);
    else if (n <= 2)
        ok = launch_tiled_tp<L, 2>(l, a, sm_count, cc, st);
    else if (n <= 4)
        ok = launch_tiled_tp<L, 4>(l, a, sm_count, cc, st);
    else
        ok = launch_tiled_tp<L, 8>(l, a, sm_count, cc, st);
    if (ok) return;
    if (n == 1) throw Error("quant_ggml: GEMV: a row of " + std::to_string(l.cols) + " columns is too wide");
    const int half = (n + 1) / 2;
    GemvArgs g = a;
    g.n_tokens = half;
    launch_gemv_tiled<L>(l, g, sm_count, cc, st);
    g.x = a.x + half * a.xs;
    g.y = a.y + half * a.ys;
    g.n_tokens = n - half;
    launch_gemv_tiled<L>(l, g, sm_count, cc, st);
}

}  // namespace imp::ggml::cuda
