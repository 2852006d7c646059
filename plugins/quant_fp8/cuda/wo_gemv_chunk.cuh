// Weight-only GEMV (wo_gemv.cu): the kernel's parameters and its per-chunk work: activations, the loads of a
// row group's chunks (Regs: registers; Async: the cp.async ring of wo_pipe.cuh), the dequantized dot products.
#pragma once
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>
#include <cuda_fp8.h>

#include <cfloat>
#include <cstdint>

#include "imp/cuda/launch.cuh"
#include "wo_decode.cuh"
#include "wo_layout.h"
#include "wo_pipe.cuh"

namespace imp::wo {

constexpr int kWarps = 8;
constexpr int kStages = 4;  // Async: chunks in flight per lane and row
constexpr int kRegs2 = -1;  // the S of the Regs2 plan

struct KP {
    const uint8_t* w;
    uint64_t mat_bytes;
    int64_t ld, scale_ld;
    uint64_t scale_off, post_off;
    int n_post, rows, cols, nch;
    const float* x;
    int64_t xs;
    float* y;
    int64_t ys;
    int n_tokens, accumulate;
    const int32_t* ids;
    const int32_t* groups;    // grouped expert matmul: [item][3] = expert (-1: ids out of range), start, count
    const int32_t* n_groups;  // items at or past *n_groups do nothing
    const int32_t* order;     // pairs sorted by expert
    int n_expert, top_k, x_per_slot, zero_invalid, pair0, lanes, x_vec;  // lanes: per row group (16, 32 .. 256)
    const uint8_t* extra;  // ungrouped expert calls: items >= n_routed run on this matrix (GemvArgs::extra)
    int n_routed;
    const float* norm;  // dense calls: x is RMS-normalized with this weight first (GemvArgs::norm), or null
    float norm_eps;
};

struct GemvArgs;
// The kernel parameters of a GEMV call of T tokens per item (lanes and pair0 left for the launcher).
KP kernel_params(const Layout& l, const GemvArgs& a, int T);
// The tensor-core GEMV (GemvPlan::Mma, wo_gemv_mma.cu): its automatic warps per row group on a device of sm_count
// SMs, and a dense call of p.n_tokens (1-8) tokens with kw warps per row group.
int mma_gemv_kw(const Layout& l, int sm_count);
void gemv_mma(const Layout& l, const KP& p, int kw, bool pdl, cudaStream_t st);

// 8 activations at column col (col < cols); zero past cols. SX: xt is in shared memory (the normalized rows of a
// GemvArgs::norm call: 16-byte aligned rows of cols, a multiple of 4).
template <bool SX = false>
__device__ __forceinline__ void load_x(const KP& p, const float* xt, int col, float (&v)[8]) {
    if (SX || (p.x_vec && col + 8 <= p.cols)) {
        if (SX && col + 8 > p.cols) {  // the last 4 columns of a row of 4 mod 8
            const float4 a = *reinterpret_cast<const float4*>(xt + col);
            v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = v[5] = v[6] = v[7] = 0.f;
            return;
        }
        const float4 a = SX ? *reinterpret_cast<const float4*>(xt + col) : __ldg(reinterpret_cast<const float4*>(xt + col));
        const float4 b =
            SX ? *(reinterpret_cast<const float4*>(xt + col) + 1) : __ldg(reinterpret_cast<const float4*>(xt + col) + 1);
        v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
    } else {
#pragma unroll
        for (int e = 0; e < 8; ++e) v[e] = col + e < p.cols ? __ldg(xt + col + e) : 0.f;
    }
}

template <Codec C>
struct Chunk {
    uint4 q;
    uint32_t s;  // NVFP4: the chunk's two scale bytes
};

template <Codec C, int RW>
__device__ __forceinline__ void load_chunk(const KP& p, const uint8_t* m, int r0, int ch, Chunk<C> (&c)[RW]) {
#pragma unroll
    for (int r = 0; r < RW; ++r) {
        if (ch < p.nch && r0 + r < p.rows) {
            c[r].q = ld_stream(m + int64_t(r0 + r) * p.ld + int64_t(ch) * 16);
            if constexpr (C == Codec::NVFP4)
                c[r].s = __ldg(reinterpret_cast<const unsigned short*>(m + p.scale_off + int64_t(r0 + r) * p.scale_ld +
                                                                       int64_t(ch) * 2));
        } else {
            c[r].q = make_uint4(0, 0, 0, 0);
            c[r].s = 0;
        }
    }
}

template <Codec C, int T, int RW, bool SX = false>
__device__ __forceinline__ void compute(const KP& p, const float* x, const int64_t (&xo)[T], int ntok,
                                        const Chunk<C> (&c)[RW], int ch, float (&acc)[RW][T]) {
    if (ch >= p.nch) return;
    if constexpr (C == Codec::NVFP4) {
#pragma unroll
        for (int g = 0; g < 2; ++g) {
            float part[RW][T];
#pragma unroll
            for (int r = 0; r < RW; ++r)
#pragma unroll
                for (int t = 0; t < T; ++t) part[r][t] = 0.f;
#pragma unroll
            for (int j = 0; j < 2; ++j) {
                const int col = ch * 32 + 16 * g + 8 * j;
                if (col >= p.cols) continue;
                float wv[RW][8];
#pragma unroll
                for (int r = 0; r < RW; ++r) dec_nvfp4(word(c[r].q, 2 * g + j), wv[r]);
#pragma unroll
                for (int t = 0; t < T; ++t) {
                    if (t >= ntok) continue;
                    float xv[8];
                    load_x<SX>(p, x + xo[t], col, xv);
#pragma unroll
                    for (int r = 0; r < RW; ++r)
#pragma unroll
                        for (int e = 0; e < 8; ++e) part[r][t] = fmaf(wv[r][e], xv[e], part[r][t]);
                }
            }
#pragma unroll
            for (int r = 0; r < RW; ++r) {
                const float sc = e4m3(c[r].s >> (8 * g)) * 16384.f;
#pragma unroll
                for (int t = 0; t < T; ++t) acc[r][t] = fmaf(part[r][t], sc, acc[r][t]);
            }
        }
    } else {
#pragma unroll
        for (int j = 0; j < 2; ++j) {
            const int col = ch * 16 + 8 * j;
            if (col >= p.cols) continue;
            float wv[RW][8];
#pragma unroll
            for (int r = 0; r < RW; ++r) {
                dec_fp8(word(c[r].q, 2 * j), wv[r]);
                dec_fp8(word(c[r].q, 2 * j + 1), wv[r] + 4);
            }
#pragma unroll
            for (int t = 0; t < T; ++t) {
                if (t >= ntok) continue;
                float xv[8];
                load_x<SX>(p, x + xo[t], col, xv);
#pragma unroll
                for (int r = 0; r < RW; ++r)
#pragma unroll
                    for (int e = 0; e < 8; ++e) acc[r][t] = fmaf(wv[r][e], xv[e], acc[r][t]);
            }
        }
    }
}

// kStageQ8 (NVFP4 only): x staged as int8 per 16-column group (GemvArgs::x_int8): [T][cp] codes, 8 columns c..c+7
// of a word stored in the order of the layout's nibbles as PRMT reads them (bytes x6 x4 x2 x0, then x7 x5 x3 x1),
// then [T][cp / 16] fp32 group units (x ~ code * unit). q8_group quantizes one group as the CPU reference does:
// unit = amax / 127, code = rint(x * (127 / amax)) (0 and unit 0 where amax < 1e-30). No clamp: |x| <= amax, so
// |x * rn(127 / amax)| <= 127 (1 + 2^-24), which rounds to at most 127. A NaN or infinite x makes the unit NaN (so
// the sum, as the exact GEMV's); its codes are then 0 (inv 0; cvt of a NaN product gives 0).
__device__ __forceinline__ float max_nan(float a, float b) {  // max.NaN: NaN if either is NaN (fmaxf drops it)
    float d;
    asm("max.NaN.f32 %0, %1, %2;" : "=f"(d) : "f"(a), "f"(b));
    return d;
}
__device__ __forceinline__ void q8_group(const float (&v)[16], int8_t* dst, float* unit) {
    float amax = 0.f;
#pragma unroll
    for (int e = 0; e < 16; ++e) amax = max_nan(amax, fabsf(v[e]));
    const bool live = amax >= 1e-30f;  // below: 127 / amax could overflow; the group counts as zeros (NaN: false)
    const float inv = live ? __fdiv_rn(127.f, amax) : 0.f;  // an infinite amax: 0
    *unit = amax <= FLT_MAX ? (live ? __fdiv_rn(amax, 127.f) : 0.f) : __int_as_float(0x7fffffff);
    int q[16];
#pragma unroll
    for (int e = 0; e < 16; ++e) q[e] = __float2int_rn(__fmul_rn(v[e], inv));
#pragma unroll
    for (int w = 0; w < 2; ++w) {
        const int* o = q + 8 * w;
        const uint32_t lo = uint32_t(o[6] & 0xFF) | uint32_t(o[4] & 0xFF) << 8 | uint32_t(o[2] & 0xFF) << 16 |
                            uint32_t(o[0] & 0xFF) << 24;
        const uint32_t hi = uint32_t(o[7] & 0xFF) | uint32_t(o[5] & 0xFF) << 8 | uint32_t(o[3] & 0xFF) << 16 |
                            uint32_t(o[1] & 0xFF) << 24;
        reinterpret_cast<uint2*>(dst)[w] = make_uint2(lo, hi);
    }
}

// 4 NVFP4 codes (the selector's low 16 bits; a code's bit 3 is its sign) as int8 2 x e2m1 magnitudes, 0 for the
// codes whose sign bit is set: PRMT's sign-replicate mode on a table of positive bytes.
__device__ __forceinline__ int e2m1x2_pos(uint32_t sel) {
    int d;
    asm("prmt.b32 %0, %1, %2, %3;" : "=r"(d) : "r"(0x03020100u), "r"(0x0C080604u), "r"(sel));
    return d;
}

// NVFP4 chunk ch of RW rows against T tokens of int8 x (xq: [T][cp] bytes, xu: [T][cp / 16] units in shared
// memory): per 16-column group, sum over the codes of the positive ones (dp4a) minus the negative ones, times the
// group's x unit and the weight's block scale / 2 (the table holds 2 x e2m1).
template <int T, int RW>
__device__ __forceinline__ void compute_q8(const KP& p, const int8_t* xq, const float* xu, int cp, int ntok,
                                           const Chunk<Codec::NVFP4> (&c)[RW], int ch, float (&acc)[RW][T]) {
    if (ch >= p.nch) return;
#pragma unroll
    for (int g = 0; g < 2; ++g) {
        const int col = ch * 32 + 16 * g;
        int ip[RW][T], in[RW][T];
#pragma unroll
        for (int r = 0; r < RW; ++r)
#pragma unroll
            for (int t = 0; t < T; ++t) ip[r][t] = in[r][t] = 0;
#pragma unroll
        for (int j = 0; j < 2; ++j) {
            int pl[RW], ph[RW], nl[RW], nh[RW];
#pragma unroll
            for (int r = 0; r < RW; ++r) {
                const uint32_t q = word(c[r].q, 2 * g + j), f = q ^ 0x88888888u;
                pl[r] = e2m1x2_pos(q);
                ph[r] = e2m1x2_pos(q >> 16);
                nl[r] = e2m1x2_pos(f);
                nh[r] = e2m1x2_pos(f >> 16);
            }
#pragma unroll
            for (int t = 0; t < T; ++t) {
                if (t >= ntok) continue;
                const int2 xv = *reinterpret_cast<const int2*>(xq + t * cp + col + 8 * j);
#pragma unroll
                for (int r = 0; r < RW; ++r) {
                    ip[r][t] = __dp4a(pl[r], xv.x, ip[r][t]);
                    ip[r][t] = __dp4a(ph[r], xv.y, ip[r][t]);
                    in[r][t] = __dp4a(nl[r], xv.x, in[r][t]);
                    in[r][t] = __dp4a(nh[r], xv.y, in[r][t]);
                }
            }
        }
#pragma unroll
        for (int r = 0; r < RW; ++r) {
            const float sw = e4m3(c[r].s >> (8 * g)) * 0.5f;
#pragma unroll
            for (int t = 0; t < T; ++t)
                if (t < ntok) acc[r][t] = fmaf(float(ip[r][t] - in[r][t]), sw * xu[t * (cp / 16) + col / 16], acc[r][t]);
        }
    }
}

// Regs-plan row sums of NVFP4 against the int8 x of kStageQ8 (row_sums' S == 0 loop with compute_q8).
template <int T, int RW, typename Wait>
__device__ __forceinline__ void row_sums_q8(const KP& p, const uint8_t* m, int r0, int li, int L, const int8_t* xq,
                                            const float* xu, int cp, int ntok, const Wait& wait, float (&acc)[RW][T]) {
    Chunk<Codec::NVFP4> cur[RW], nxt[RW];
    load_chunk<Codec::NVFP4, RW>(p, m, r0, li, cur);
    wait();
    for (int ch = li; ch < p.nch; ch += L) {
        load_chunk<Codec::NVFP4, RW>(p, m, r0, ch + L, nxt);
        compute_q8<T, RW>(p, xq, xu, cp, ntok, cur, ch, acc);
#pragma unroll
        for (int r = 0; r < RW; ++r) cur[r] = nxt[r];
    }
}

// Rows per row group for T tokens.
template <int T>
inline constexpr int kRowsPerGroup = T <= 2 ? 4 : 2;

// Async: the chunks of iteration `it` (chunk li + it * L) of rows r0.. into ring stage `stage` and, for NVFP4,
// their scale bytes into sc; one commit group.
template <Codec C, int RW>
__device__ __forceinline__ void issue_stage(const KP& p, const uint8_t* m, int r0, int ch, uint4* ring, int stage,
                                            uint32_t (&sc)[RW]) {
#pragma unroll
    for (int r = 0; r < RW; ++r) {
        const bool ok = ch < p.nch && r0 + r < p.rows;
        cp_async16(ring + (stage * RW + r) * (kWarps * 32) + threadIdx.x,
                   ok ? m + int64_t(r0 + r) * p.ld + int64_t(ch) * 16 : m, ok);
        if constexpr (C == Codec::NVFP4)
            sc[r] = ok ? __ldg(reinterpret_cast<const unsigned short*>(m + p.scale_off + int64_t(r0 + r) * p.scale_ld +
                                                                      int64_t(ch) * 2))
                       : 0u;
    }
    cp_async_commit();
}

// The row group's sums over its lanes' chunks: Regs (S == 0), Regs2 (S == kRegs2) or Async (S stages).
// wait(): called by every thread once the first chunks' loads are issued (the PDL wait of a dense call; a staged
// call stages its x rows there and synchronizes the block). SX: x is in shared memory (load_x).
template <Codec C, int T, int RW, int S, bool SX = false, typename Wait>
__device__ __forceinline__ void row_sums(const KP& p, const uint8_t* m, int r0, int li, int L, const float* x,
                                         const int64_t (&xo)[T], int ntok, const Wait& wait, float (&acc)[RW][T]) {
    if constexpr (S == kRegs2) {  // the chunks two and one steps ahead in registers while one is computed
        Chunk<C> c0[RW], c1[RW], c2[RW];
        load_chunk<C, RW>(p, m, r0, li, c0);
        load_chunk<C, RW>(p, m, r0, li + L, c1);
        wait();
        for (int ch = li; ch < p.nch; ch += L) {
            load_chunk<C, RW>(p, m, r0, ch + 2 * L, c2);
            compute<C, T, RW, SX>(p, x, xo, ntok, c0, ch, acc);
#pragma unroll
            for (int r = 0; r < RW; ++r) {
                c0[r] = c1[r];
                c1[r] = c2[r];
            }
        }
    } else if constexpr (S == 0) {
        Chunk<C> cur[RW], nxt[RW];
        load_chunk<C, RW>(p, m, r0, li, cur);
        wait();
        for (int ch = li; ch < p.nch; ch += L) {
            load_chunk<C, RW>(p, m, r0, ch + L, nxt);
            compute<C, T, RW, SX>(p, x, xo, ntok, cur, ch, acc);
#pragma unroll
            for (int r = 0; r < RW; ++r) cur[r] = nxt[r];
        }
    } else {
        extern __shared__ uint4 ring[];
        uint32_t sc[S][RW];
#pragma unroll
        for (int s = 0; s + 1 < S; ++s) issue_stage<C, RW>(p, m, r0, li + s * L, ring, s, sc[s]);
        wait();
        const int n_it = li < p.nch ? (p.nch - li + L - 1) / L : 0;
        for (int it0 = 0; it0 < n_it; it0 += S) {
#pragma unroll
            for (int s = 0; s < S; ++s) {
                const int it = it0 + s;
                if (it >= n_it) break;
                // Stage (s + S - 1) % S was read in the previous iteration (its values are in registers by now).
                issue_stage<C, RW>(p, m, r0, li + (it + S - 1) * L, ring, (s + S - 1) % S, sc[(s + S - 1) % S]);
                cp_async_wait<S - 1>();
                Chunk<C> c[RW];
#pragma unroll
                for (int r = 0; r < RW; ++r) {
                    c[r].q = ring[(s * RW + r) * (kWarps * 32) + threadIdx.x];
                    c[r].s = sc[s][r];
                }
                compute<C, T, RW, SX>(p, x, xo, ntok, c, li + it * L, acc);
            }
        }
        cp_async_wait_all();
    }
}

}  // namespace imp::wo
