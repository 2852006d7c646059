// Weight-only GEMV (1-8 tokens, and one token per (token, slot) pair of an expert matmul) for FP8 E4M3 and NVFP4
// weights on the CUDA cores. Each weight byte is read once, with 16-byte streaming loads (L1 not allocated).
//
// A CTA of 8 warps (the int8 one-token dense kernel: 8, 16 or 32, gemv_int8_warps) holds 8 / kw row groups of kw
// warps (or, with gemv_short_rows on rows of at most 16 chunks, 16 row groups of half a warp); a row group owns RW
// consecutive rows (4 for 1-2 tokens, 2 for 4-8) and its L = kw * 32 (or 16) lanes split the row's 16-byte chunks
// (chunk ch to lane ch % L), so each lane
// reads the same columns of its RW rows and loads the matching activations once for all of them. Three plans
// feed the chunks (GemvPlan): Regs: the next chunk's loads go to registers before the current one is computed (one
// chunk per row in flight per lane); Regs2: the next two chunks (1-4 tokens); Async: cp.async streams them into a
// shared-memory ring kStages chunks deep per lane (wo_pipe.cuh), so more bytes are in flight per SM than registers
// would allow.
// Dequantization in registers:
//   NVFP4: a 32-bit word holds 8 codes in the nibble order of wo_layout.h; (q & 0x80008000) | ((q >> 3) &
//          0x0E000E00) puts two codes' sign and magnitude bits into a half2 whose values are exactly e2m1 * 2^-14
//          (subnormal halves included), converted to fp32; per 16-element group the partial dot product is
//          multiplied by e4m3(scale) * 2^14, and the row's sum by the global scale at the end.
//   FP8:   cvt e4m3x2 -> f16x2 (exact), then fp32; the row's sum is multiplied by its weight scale at the end.
// Sums are fp32 (FMA), reduced over lanes with shuffles and over the row group's warps in shared memory; each
// output is written once, deterministically. PDL: the first chunk's weights are loaded before griddepcontrol.wait
// (dense); an expert matmul waits first (its expert id is an activation).
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <algorithm>
#include <climits>
#include <map>
#include <mutex>
#include <string>

#include "imp/cuda/check.h"
#include "imp/cuda/launch.cuh"
#include "imp/cuda/row_ops.cuh"
#include "imp/error.h"
#include "wo_gemv_chunk.cuh"
#include "wo_kernels.h"

namespace imp::wo {
namespace {


// X, x staged in shared memory by each CTA (Regs only), once its first chunks of weights are requested:
//   kStageNorm: a dense call whose x rows are RMS-normalized first (GemvArgs::norm): the CTA copies its tokens'
//     rows, scales them as the executor's rms_norm (x * rsqrt(mean(x^2) + eps) * norm, the sum of squares in
//     another order), and the row sums read them there.
//   kStageSwiglu: an ungrouped expert call whose x rows are [gate | up] (GemvArgs::swiglu): the CTA writes
//     silu(gate) * up of its item's row (the executor's SwiGLU, bit for bit), so no SwiGLU kernel runs before it.
//   kStageCopy: x rows copied as they are (GemvArgs::stage_x): the row sums read x from shared memory with no
//     bounds or alignment branches, in fewer registers (ptxas, NVFP4, one token: 74 against 113, so 3 CTAs of 256
//     threads fit an SM instead of 2). Same sums in the same order as kStagePlain.
//   kStageQ8 (NVFP4): x quantized to int8 per 16-column group as it is staged (GemvArgs::x_int8; q8_group in
//     wo_gemv_chunk.cuh); the row sums take 4 codes a PRMT and a dp4a (compute_q8) instead of the fp32 decode.
constexpr int kStagePlain = 0, kStageNorm = 1, kStageSwiglu = 2, kStageCopy = 3, kStageQ8 = 4;

// The executor's SwiGLU of four elements (silu_mul, bit for bit).
__device__ __forceinline__ float4 silu_mul4(float4 g, float4 u) {
    return make_float4(::imp::cuda::silu_mul(g.x, u.x), ::imp::cuda::silu_mul(g.y, u.y),
                       ::imp::cuda::silu_mul(g.z, u.z), ::imp::cuda::silu_mul(g.w, u.w));
}

// W: warps per CTA (kWarps; the int8 one-token dense kernel also 16 or 32, GemvArgs::q8_warps). 16 warps: two CTAs
// an SM asked for (at most 64 registers: ptxas gives 63, as for 8 warps; 73 otherwise, one CTA an SM); 1024 threads
// hold 64 anyway; 0 leaves the others' allocation as it is.
template <Codec C, int T, int S, int X = kStagePlain, int W = kWarps>
__global__ void __launch_bounds__(W * 32, W == 16 ? 2 : 0) wo_gemv_kernel(KP p) {
    constexpr int RW = kRowsPerGroup<T>;
    static_assert(X == kStagePlain || S == 0, "the staged kernels run the Regs plan (their rows and the Async ring "
                                              "would share the dynamic shared memory)");
    static_assert(W == kWarps || (X == kStageQ8 && S == 0), "more warps per CTA: the int8 staged kernel only");
    __shared__ float red[2 * W][RW * T];  // one row per reduction slot (a warp, or a half-warp group)
    const int L = p.lanes, groups = W * 32 / L;  // lanes per row group: 16, 32, 64, 128 or 256 (one to 8 warps)
    const int gi = int(threadIdx.x) / L, li = int(threadIdx.x) % L;
    const int SL = L < 32 ? L : 32;  // lanes summed by shuffles: a slot
    const int r0 = (int(blockIdx.x) * groups + gi) * RW;
    const uint8_t* m = p.w;
    const float* x = p.x;
    float* y = p.y;
    ::imp::cuda::pdl_launch_dependents();
    int64_t xo[T], yo[T];  // row offsets of each token's activations and outputs
    int ntok = p.n_tokens;
    if (p.ids) {
        ::imp::cuda::pdl_wait();
        const int item = p.pair0 + int(blockIdx.y);
        int e = 0, start = item, cnt = 1;
        const bool extra = !p.groups && p.extra && item >= p.n_routed;  // the extra slot of token item - n_routed
        if (p.groups) {
            if (item >= *p.n_groups) return;  // the whole CTA leaves (one item per CTA)
            e = p.groups[3 * item];
            start = p.groups[3 * item + 1];
            cnt = p.groups[3 * item + 2];
        } else if (!extra) {
            e = p.ids[item];
        }
        ntok = cnt;
#pragma unroll
        for (int t = 0; t < T; ++t) {
            const int pair = t < cnt ? (p.groups ? p.order[start + t] : item) : 0;
            xo[t] = int64_t(p.x_per_slot ? pair : extra ? pair - p.n_routed : pair / p.top_k) * p.xs;
            yo[t] = int64_t(pair) * p.ys;
        }
        if (extra) {
            m = p.extra;
        } else if (e < 0 || e >= p.n_expert) {  // the whole CTA leaves
            const int i = int(threadIdx.x), row = int(blockIdx.x) * groups * RW + i;
            if (p.zero_invalid && i < groups * RW && row < p.rows)
#pragma unroll
                for (int t = 0; t < T; ++t)
                    if (t < cnt) y[yo[t] + row] = 0.f;
            return;
        } else {
            m += uint64_t(e) * p.mat_bytes;
        }
    } else {
#pragma unroll
        for (int t = 0; t < T; ++t) {
            xo[t] = int64_t(t) * p.xs;
            yo[t] = int64_t(t) * p.ys;
        }
    }
    float acc[RW][T];
#pragma unroll
    for (int r = 0; r < RW; ++r)
#pragma unroll
        for (int t = 0; t < T; ++t) acc[r][t] = 0.f;
    // Dense: the first chunks (weights) are requested before the wait; experts waited above (the id).
    if constexpr (X == kStageQ8) {
        static_assert(C == Codec::NVFP4, "int8 x: NVFP4 weights only");
        extern __shared__ __align__(16) uint8_t q8s[];  // [T][cp] int8, then [T][cp / 16] fp32 units
        const int cp = p.nch * 32, ng = cp / 16;
        int8_t* xq = reinterpret_cast<int8_t*>(q8s);
        float* xu = reinterpret_cast<float*>(q8s + T * cp);
        const bool dense = !p.ids;
        auto stage = [&] {
            if (dense) ::imp::cuda::pdl_wait();
#pragma unroll
            for (int t = 0; t < T; ++t) {
                if (t >= ntok) break;
                const float* xr = x + xo[t];
                for (int grp = int(threadIdx.x); grp < ng; grp += int(blockDim.x)) {
                    float v[16];
                    const int c0 = grp * 16;
                    if (p.x_vec && c0 + 16 <= p.cols) {
#pragma unroll
                        for (int k = 0; k < 4; ++k) {
                            const float4 a = reinterpret_cast<const float4*>(xr + c0)[k];
                            v[4 * k] = a.x, v[4 * k + 1] = a.y, v[4 * k + 2] = a.z, v[4 * k + 3] = a.w;
                        }
                    } else {
#pragma unroll
                        for (int e = 0; e < 16; ++e) v[e] = c0 + e < p.cols ? xr[c0 + e] : 0.f;
                    }
                    q8_group(v, xq + t * cp + c0, xu + t * ng + grp);
                }
            }
            __syncthreads();
        };
        row_sums_q8<T, RW>(p, m, r0, li, L, xq, xu, cp, ntok, stage, acc);
    } else if constexpr (X == kStageCopy) {
        extern __shared__ float4 xc4[];  // [T][cols / 4]
        const bool dense = !p.ids;
        const int c4 = p.cols / 4;
        auto stage = [&] {
            if (dense) ::imp::cuda::pdl_wait();
#pragma unroll
            for (int t = 0; t < T; ++t) {
                if (t >= ntok) break;
                const float4* s4 = reinterpret_cast<const float4*>(x + xo[t]);
                for (int i = int(threadIdx.x); i < c4; i += int(blockDim.x)) xc4[t * c4 + i] = s4[i];
            }
            __syncthreads();
        };
        int64_t so[T];
#pragma unroll
        for (int t = 0; t < T; ++t) so[t] = int64_t(t) * p.cols;
        row_sums<C, T, RW, S, true>(p, m, r0, li, L, reinterpret_cast<const float*>(xc4), so, ntok, stage, acc);
    } else if constexpr (X == kStageSwiglu) {
        extern __shared__ float4 xa4[];  // [T][cols / 4]: silu(gate) * up of the item's [gate | up] row
        const int c4 = p.cols / 4;
        auto stage = [&] {
#pragma unroll
            for (int t = 0; t < T; ++t) {
                if (t >= ntok) break;
                const float4* s4 = reinterpret_cast<const float4*>(x + xo[t]);
                for (int i = int(threadIdx.x); i < c4; i += int(blockDim.x)) xa4[t * c4 + i] = silu_mul4(s4[i], s4[c4 + i]);
            }
            __syncthreads();
        };
        int64_t so[T];
#pragma unroll
        for (int t = 0; t < T; ++t) so[t] = int64_t(t) * p.cols;
        row_sums<C, T, RW, S, true>(p, m, r0, li, L, reinterpret_cast<const float*>(xa4), so, ntok, stage, acc);
    } else if constexpr (X == kStageNorm) {
        extern __shared__ float4 xn4[];  // [T][cols / 4]
        __shared__ float nred[32];
        auto stage = [&] {
            ::imp::cuda::pdl_wait();
            ::imp::cuda::stage_rms_norm_rows(xn4, x, p.xs, ntok, p.cols, p.norm, p.norm_eps, nred);
        };
        int64_t so[T];
#pragma unroll
        for (int t = 0; t < T; ++t) so[t] = int64_t(t) * p.cols;
        row_sums<C, T, RW, S, true>(p, m, r0, li, L, reinterpret_cast<const float*>(xn4), so, ntok, stage, acc);
    } else {
        const bool dense = !p.ids;
        row_sums<C, T, RW, S>(p, m, r0, li, L, x, xo, ntok, [dense] { if (dense) ::imp::cuda::pdl_wait(); }, acc);
    }
#pragma unroll
    for (int r = 0; r < RW; ++r)
#pragma unroll
        for (int t = 0; t < T; ++t) {
            float v = acc[r][t];
            if (SL == 32) {  // a warp (unrolled: the RW x T chains interleave)
#pragma unroll
                for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xFFFFFFFFu, v, o);
                if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5][r * T + t] = v;
            } else {  // a half warp: offsets 8 .. 1 stay inside each half
#pragma unroll
                for (int o = 8; o > 0; o >>= 1) v += __shfl_xor_sync(0xFFFFFFFFu, v, o);
                if ((threadIdx.x & 15) == 0) red[threadIdx.x >> 4][r * T + t] = v;
            }
        }
    __syncthreads();
    const int tid = int(threadIdx.x), spg = L / SL;  // slots per row group
    if (tid < groups * RW * T) {
        const int g2 = tid / (RW * T), idx = tid % (RW * T), r = idx / T, t = idx % T;
        float v = 0.f;
        for (int w = 0; w < spg; ++w) v += red[g2 * spg + w][idx];
        const int row = (int(blockIdx.x) * groups + g2) * RW + r;
        if (row < p.rows && t < ntok) {
            const float* post = reinterpret_cast<const float*>(m + p.post_off);
            v *= C == Codec::NVFP4 ? post[0] : post[p.n_post == 1 ? 0 : row];
            float* yp = y + yo[t] + row;
            *yp = p.accumulate ? *yp + v : v;
        }
    }
}

// Launches kernel k over n_items work items of T tokens: every row group's CTAs (grid x), up to 65535 items (grid y)
// a launch.
template <int T, typename Kernel>
void launch_items(Kernel k, const KP& p, int n_items, size_t smem, bool pdl, cudaStream_t st, int warps = kWarps) {
    const int rows_per_cta = warps * 32 / p.lanes * kRowsPerGroup<T>;
    for (int i0 = 0; i0 < n_items; i0 += 65535) {
        KP q = p;
        q.pair0 = i0;
        const unsigned gy = unsigned(n_items - i0 < 65535 ? n_items - i0 : 65535);
        IMP_CUDA_CHECK(::imp::cuda::launch(k, dim3(unsigned(::imp::cuda::div_up(p.rows, rows_per_cta)), gy),
                                           dim3(unsigned(warps) * 32), smem, st, pdl, q));
    }
}

template <Codec C, int T, int S>
void launch(const KP& p, int n_items, bool pdl, cudaStream_t st) {
    const int smem = S > 0 ? ring_bytes(S, kRowsPerGroup<T>, kWarps * 32) : 0;  // over 48 KB: gemv_init set the limit
    launch_items<T>(wo_gemv_kernel<C, T, S>, p, n_items, size_t(smem), pdl, st);
}

// A call of a staged kernel (Regs; X as wo_gemv_kernel's, W warps a CTA): its staged rows in dynamic shared
// memory, T x cols floats (kStageQ8: gemv_q8_smem bytes).
template <Codec C, int T, int X, int W = kWarps>
void launch_staged(const KP& p, int n_items, bool pdl, cudaStream_t st) {
    const size_t smem = X == kStageQ8 ? size_t(gemv_q8_smem(p.nch * 32, T)) : size_t(T) * size_t(p.cols) * 4;
    launch_items<T>(wo_gemv_kernel<C, T, 0, X, W>, p, n_items, smem, pdl, st, W);
}

// The token bucket of a staged call (kStageSwiglu: one token per item, ungrouped experts).
template <Codec C, int X>
void launch_staged_tokens(const KP& p, int T, int n_items, bool pdl, cudaStream_t st) {
    if constexpr (X == kStageSwiglu)
        launch_staged<C, 1, X>(p, n_items, pdl, st);
    else if (T <= 1)
        launch_staged<C, 1, X>(p, n_items, pdl, st);
    else if (T <= 2)
        launch_staged<C, 2, X>(p, n_items, pdl, st);
    else if (T <= 4)
        launch_staged<C, 4, X>(p, n_items, pdl, st);
    else
        launch_staged<C, 8, X>(p, n_items, pdl, st);
}

template <Codec C, int S>
void launch_plan(const KP& p, int T, int n_items, bool pdl, cudaStream_t st) {
    if (T <= 1)
        launch<C, 1, S>(p, n_items, pdl, st);
    else if (T <= 2)
        launch<C, 2, S>(p, n_items, pdl, st);
    else if (T <= 4)
        launch<C, 4, S>(p, n_items, pdl, st);
    else if constexpr (S == 0)
        launch<C, 8, S>(p, n_items, pdl, st);
}

template <Codec C>
void launch_codec(const KP& p, GemvPlan plan, int T, int n_items, bool pdl, cudaStream_t st) {
    if (plan == GemvPlan::Async)
        launch_plan<C, kStages>(p, T, n_items, pdl, st);
    else if (plan == GemvPlan::Regs2)
        launch_plan<C, kRegs2>(p, T, n_items, pdl, st);
    else
        launch_plan<C, 0>(p, T, n_items, pdl, st);
}

// Thread blocks of the int8 one-token kernel an SM holds on the current device (its registers; shared memory at the
// most a call stages, kMaxNormSmem), queried at its first automatic plan on each device (a host-side calculation,
// no stream work: safe inside a capture); 2 (the fp32 kernels') where the query fails.
// warps: the CTA size (8, 16 or 32 warps: GemvArgs::q8_warps).
int q8_ctas_per_sm(int warps = kWarps) {
    static std::mutex mu;
    static std::map<std::pair<int, int>, int> known;
    int dev = 0;
    if (cudaGetDevice(&dev) != cudaSuccess) {
        (void)cudaGetLastError();
        return warps == 32 ? 1 : 2;
    }
    std::lock_guard<std::mutex> lock(mu);
    if (auto it = known.find({dev, warps}); it != known.end()) return it->second;
    int n = 0;
    const auto occupancy = [&n](auto kernel, int threads) {
        return cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, kernel, threads, size_t(kMaxNormSmem));
    };
    const cudaError_t e = warps == 32   ? occupancy(wo_gemv_kernel<Codec::NVFP4, 1, 0, kStageQ8, 32>, 32 * 32)
                          : warps == 16 ? occupancy(wo_gemv_kernel<Codec::NVFP4, 1, 0, kStageQ8, 16>, 16 * 32)
                                        : occupancy(wo_gemv_kernel<Codec::NVFP4, 1, 0, kStageQ8>, kWarps * 32);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        n = warps == 32 ? 1 : 2;  // what the launch bounds ask for
    }
    return known[{dev, warps}] = std::max(n, 1);
}

// The staged kernels' plan (X as wo_gemv_kernel's; Regs whatever the setting's plan): warps per row group, lanes,
// the codec (kStageQ8: NVFP4 only, gemv_q8_applies checked).
template <int X>
void run_staged(const Layout& l, const GemvArgs& a, int T, int n_items, cudaStream_t st) {
    // The int8 kernel's dense one-token calls fill the wave its occupancy allows (measured there only), on CTAs of
    // q8_warps warps.
    const bool q8_dense1 = X == kStageQ8 && T == 1 && !a.ids;
    const int warps = !q8_dense1 ? kWarps : a.q8_warps == 0 ? q8_auto_warps(l.cp) : a.q8_warps;
    if (warps != 8 && warps != 16 && warps != 32)
        throw Error("weight-only GEMV: int8 warps per CTA (gemv_int8_warps) " + std::to_string(warps) +
                    " is not 8, 16 or 32");
    const int kw = a.kw > 0 ? a.kw
                            : auto_kw(l, GemvPlan::Regs, T, n_items, a.sm_count, q8_dense1 ? q8_ctas_per_sm(warps) : 2,
                                      warps);
    KP p = kernel_params(l, a, T);
    p.lanes = gemv_row_lanes(l, a, kw);
    if constexpr (X == kStageQ8) {
        if (warps == 32 && l.codec == Codec::NVFP4) {
            launch_staged<Codec::NVFP4, 1, X, 32>(p, n_items, a.pdl, st);
            return;
        }
        if (warps == 16 && l.codec == Codec::NVFP4) {
            launch_staged<Codec::NVFP4, 1, X, 16>(p, n_items, a.pdl, st);
            return;
        }
    }
    if (l.codec == Codec::NVFP4)
        launch_staged_tokens<Codec::NVFP4, X>(p, T, n_items, a.pdl, st);
    else if constexpr (X != kStageQ8)
        launch_staged_tokens<Codec::FP8, X>(p, T, n_items, a.pdl, st);
}

template <Codec C, int T>
void allow_ring() {
    const int smem = ring_bytes(kStages, kRowsPerGroup<T>, kWarps * 32);
    if (smem > 48 * 1024)
        IMP_CUDA_CHECK(cudaFuncSetAttribute(wo_gemv_kernel<C, T, kStages>,
                                            cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
}

}  // namespace

void gemv_init(GemvPlan plan) {
    if (plan != GemvPlan::Async) return;
    allow_ring<Codec::FP8, 1>();
    allow_ring<Codec::FP8, 2>();
    allow_ring<Codec::FP8, 4>();
    allow_ring<Codec::NVFP4, 1>();
    allow_ring<Codec::NVFP4, 2>();
    allow_ring<Codec::NVFP4, 4>();
}

// gemv_short_rows: rows of at most 16 chunks (NVFP4 <= 512 columns, FP8 <= 256) in half-warp row groups, so no lane
// idles (with a whole warp per row, lanes 16-31 have no chunk) and half as many CTAs run; only where the automatic
// plan chose one warp per row group (a larger kw was chosen to fill the wave, which half warps would empty).
int gemv_row_lanes(const Layout& l, const GemvArgs& a, int kw) {
    return a.short_rows && a.kw <= 0 && kw == 1 && l.ld / 16 <= 16 ? 16 : kw * 32;
}

int auto_kw(const Layout& l, GemvPlan plan, int n_tokens, int n_items, int sm_count, int ctas_per_sm, int warps) {
    if (sm_count > 0) {
        // The fewest CTAs (of `warps` warps) that still fill 80 % of a wave of ctas_per_sm CTAs per SM (2 for the
        // fp32 kernels; for the int8 one-token kernel what the occupancy calculator gives, 4 at 63 registers and 8
        // warps, and never more lanes to a row group than its row has chunks). One token: on the H200 bench (commit 253b691) the best forced kw was 2 on
        // 4096x14336 (256 CTAs) and 1 on 14336x4096 (448), for NVFP4 and FP8 alike: 1.17-1.27x faster than the
        // chunk rule below; the int8 kernel on the H100 (session 19): kw 4 on 4096x14336 (16.4 us against 20.1 at
        // kw 2), kw 1 on 14336x4096 (13.2 against 13.7 at kw 2). 2-8 tokens (not measured then): a small kw also
        // lets the CTA's 8 / kw row groups sweep the same activation columns together, so they meet in L1 instead
        // of each reading all of x from L2 (at 8 tokens x is 32 bytes per column).
        const int64_t slots = int64_t(sm_count) * ctas_per_sm * 8 / 10, rw = n_tokens <= 2 ? 4 : 2;
        const int64_t nch = l.ld / 16;
        for (int kw = 1; kw < 8; kw <<= 1) {
            const int64_t rows_per_cta = warps / kw * rw;
            if ((l.rows + rows_per_cta - 1) / rows_per_cta * std::max(n_items, 1) >= slots ||
                ((ctas_per_sm > 2 || warps > kWarps) && 2 * kw * 32 > nch))
                return kw;
        }
        return 8;
    }
    // Unknown device: at least this many chunks per lane: Async kStages (the ring fills), Regs 2.
    const int64_t nch = l.ld / 16, per_lane = plan == GemvPlan::Async ? kStages : 2;
    int kw = 8;
    while (kw > 1 && nch < int64_t(kw) * 32 * per_lane) kw >>= 1;
    return kw;
}

void gemv(const Layout& l, const GemvArgs& a, cudaStream_t st) {
    const bool experts = a.ids != nullptr, grouped = experts && a.groups != nullptr;
    const int n_items = grouped ? a.n_items : (experts ? a.n_pairs : 1);
    if (n_items <= 0 || (!experts && a.n_tokens <= 0)) return;
    if (!experts && a.n_tokens > kMaxGemvTokens)
        throw Error("weight-only GEMV called with " + std::to_string(a.n_tokens) + " tokens, at most " +
                    std::to_string(kMaxGemvTokens));
    const int T = grouped ? kExpertGroup : (experts ? 1 : a.n_tokens);
    if (a.kw != 0 && a.kw != 1 && a.kw != 2 && a.kw != 4 && a.kw != 8)
        throw Error("weight-only GEMV: warps per row group " + std::to_string(a.kw) + " is not 1, 2, 4 or 8");
    if (a.norm) {  // gemv_norm_applies checked the rest
        if (experts || !gemv_norm_applies(l, a.n_tokens, a.x, a.xs, a.norm))
            throw Error("weight-only GEMV: an RMSNorm-fused call its kernel does not take");
        run_staged<kStageNorm>(l, a, T, n_items, st);
        return;
    }
    if (a.swiglu) {
        if (!experts || grouped || !gemv_swiglu_applies(l, a.x, a.xs))
            throw Error("weight-only GEMV: a SwiGLU-input call its kernel does not take");
        // fp32 staging whatever x_int8 says: an int8 variant (silu(gate) * up rounded as staged) measured no faster
        // (H100, session 19: 35B tg128 430.0 against 430.5) and took the hybrids' logits past their CPU tolerance.
        run_staged<kStageSwiglu>(l, a, T, n_items, st);
        return;
    }
    // The tensor-core GEMV: the Mma plan's dense calls, and with mma_tokens every plan's from that many tokens on.
    if (!experts && (a.plan == GemvPlan::Mma || (a.mma_tokens > 0 && a.n_tokens >= a.mma_tokens))) {
        gemv_mma(l, kernel_params(l, a, T), a.kw > 0 ? a.kw : mma_gemv_kw(l, a.sm_count), a.pdl, st);
        return;
    }
    if (a.x_int8 && a.plan == GemvPlan::Regs && !grouped && gemv_q8_applies(l, T)) {
        run_staged<kStageQ8>(l, a, T, n_items, st);
        return;
    }
    if (a.stage_x && a.plan == GemvPlan::Regs && !grouped && gemv_stage_applies(l, T, a.x, a.xs, experts)) {
        run_staged<kStageCopy>(l, a, T, n_items, st);
        return;
    }
    if (a.plan == GemvPlan::Stream && !experts) {
        const int grid = stream_grid(l, a.n_tokens, a.sm_count);
        if (grid > 0) {
            gemv_stream(l, a, grid, st);
            return;
        }
    }
    // Async or Regs2 at 5-8 tokens would need 192 registers a thread (NVFP4) or spill (FP8): Regs there.
    const GemvPlan plan = (a.plan == GemvPlan::Async || a.plan == GemvPlan::Regs2) && T <= 4 ? a.plan : GemvPlan::Regs;
    const int kw = a.kw > 0 ? a.kw : auto_kw(l, plan, T, n_items, a.sm_count);
    if (kw != 1 && kw != 2 && kw != 4 && kw != 8)
        throw Error("weight-only GEMV: warps per row group " + std::to_string(kw) + " is not 1, 2, 4 or 8");
    KP p = kernel_params(l, a, T);
    p.lanes = gemv_row_lanes(l, a, kw);
    if (l.codec == Codec::NVFP4)
        launch_codec<Codec::NVFP4>(p, plan, p.n_tokens, n_items, a.pdl, st);
    else
        launch_codec<Codec::FP8>(p, plan, p.n_tokens, n_items, a.pdl, st);
}

KP kernel_params(const Layout& l, const GemvArgs& a, int T) {
    KP p{};
    p.w = a.w;
    p.mat_bytes = l.bytes;
    p.ld = l.ld;
    p.scale_ld = l.scale_ld;
    p.scale_off = l.scale_off;
    p.post_off = l.post_off;
    p.n_post = int(l.n_post);
    p.rows = int(l.rows);
    p.cols = int(l.cols);
    p.nch = int(l.ld / 16);
    p.x = a.x;
    p.xs = a.xs;
    p.y = a.y;
    p.ys = a.ys;
    p.n_tokens = T;
    p.accumulate = a.accumulate ? 1 : 0;
    p.ids = a.ids;
    p.groups = a.groups;
    p.n_groups = a.n_groups;
    p.order = a.order;
    p.n_expert = a.n_expert;
    p.top_k = a.top_k > 0 ? a.top_k : 1;
    p.x_per_slot = a.x_per_slot ? 1 : 0;
    p.zero_invalid = a.zero_invalid ? 1 : 0;
    p.x_vec = ::imp::cuda::aligned16(a.x) && a.xs % 4 == 0;
    p.extra = a.groups ? nullptr : a.extra;
    p.n_routed = p.extra ? a.n_routed : INT_MAX;
    p.norm = a.norm;
    p.norm_eps = a.norm_eps;
    return p;
}

namespace {
// The token count a kernel is instantiated for: 1, 2, 4 or 8.
int64_t token_bucket(int64_t n_tokens) { return n_tokens <= 1 ? 1 : n_tokens <= 2 ? 2 : n_tokens <= 4 ? 4 : 8; }
}  // namespace

int64_t gemv_q8_smem(int64_t cp, int n_tokens) {
    const int64_t T = token_bucket(n_tokens);
    return T * cp + T * (cp / 16) * 4;
}

bool gemv_q8_applies(const Layout& l, int n_tokens) {
    return l.codec == Codec::NVFP4 && n_tokens >= 1 && n_tokens <= kMaxGemvTokens &&
           gemv_q8_smem(l.cp, n_tokens) <= kMaxNormSmem;
}

bool gemv_stage_applies(const Layout& l, int64_t n_tokens, const float* x, int64_t xs, bool experts) {
    return n_tokens >= 1 && n_tokens <= kMaxGemvTokens && l.cols % 4 == 0 &&
           token_bucket(n_tokens) * l.cols * 4 <= kMaxNormSmem && ::imp::cuda::aligned16(x) &&
           ((n_tokens == 1 && !experts) || xs % 4 == 0);
}

bool gemv_norm_applies(const Layout& l, int64_t n_tokens, const float* x, int64_t xs, const float* norm) {
    return gemv_stage_applies(l, n_tokens, x, xs, false) && ::imp::cuda::aligned16(norm);
}

}  // namespace imp::wo
