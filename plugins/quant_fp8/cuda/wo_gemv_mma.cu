// Weight-only GEMV on the tensor cores (GemvPlan::Mma, setting gemv = "mma"): dense calls of 1-8 tokens, NVFP4 and
// FP8 E4M3 weights; expert calls run Regs.
//
// Why: the CUDA-core GEMV (wo_gemv.cu, Regs) issues ~6.7 instructions per NVFP4 code at one token (its SASS at
// 931b334: 858 instructions per loop trip of 128 codes: 1 LOP3, 1 HADD2.F32 conversion and 1 FFMA per code, 0.75
// shifts, the rest addresses, predicates and scales), and one FFMA more per code and token. Here each code is
// dequantized once into an m16n8k16 A fragment (the exact fp16 values of wo_mma_a.cuh) for every token at once; the
// tokens are B's 8 columns. A k-step (16 rows x 16 columns, 256 codes a warp) costs ~20 instructions of A, 7 of B
// and one MMA: ~3.5 per code per lane at any token count.
// The gemv = "mma" plan of 2026-12-04 (removed at 978adc0, 48 us against Regs' 21 us on 4096x14336) kept one
// 16-byte chunk per row in flight per lane: 32 bytes a lane, a quarter of Regs' 4 rows x 16 bytes. Here a warp keeps
// kDepth chunks (kDepth x 32 bytes a lane, 4 KB a warp at kDepth 4) in registers while it computes the kDepth
// before them.
//
// Work: a CTA of 8 warps holds 8 / kw row groups of 16 rows; the kw warps of a row group take its chunks (NVFP4 128
// columns, FP8 64) in turn, kDepth at a time. Lane (g, c) holds rows g and g + 8 of the chunk's columns of quarter c
// (wo_mma_a.cuh); its B registers are token g's activations at the same 4 columns of each k-step: one float4 from x
// (L1/L2), times 2^-4 and rounded to fp16: 11 significant bits for |x| from 2^-10 up (from ~1.048e6 it overflows),
// an absolute step of 2^-20 below (the scale was 2^-8 until session 19: a step of 2^-16, about 4e-3 of the output at
// activations of rms 1e-3), the 2^4 given back in the epilogue with the matrix factor. Sums in fp32 (the MMA's); the kw
// partial tiles are added in shared memory in warp order (deterministic). PDL: the first kDepth chunks of weights are
// requested before griddepcontrol.wait.
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <algorithm>
#include <string>

#include "imp/cuda/check.h"
#include "imp/cuda/launch.cuh"
#include "imp/error.h"
#include "wo_gemv_chunk.cuh"
#include "wo_kernels.h"
#include "wo_mma_a.cuh"

namespace imp::wo {
namespace {

constexpr int kMmaWarps = 8;
constexpr int kDepth = 4;           // chunks per warp in flight (and computed) per pipeline step
constexpr float kXScale = 1.f / 16.f;  // x is rounded to fp16 as x * 2^-4

__device__ __forceinline__ uint32_t h2_bits(__half2 h) { return *reinterpret_cast<const uint32_t*>(&h); }

// The fp16 A registers of k-step s: the values of MmaA<C>::pairs / pair times 2^14 for NVFP4 (normal, exact), FP8 as
// converted. NVFP4: e2m1 * e4m3 (at most 2688); FP8: the E4M3 value.
template <Codec C>
__device__ __forceinline__ void a_regs(const typename MmaA<C>::Frag& f, int s, uint32_t (&a)[4]) {
    if constexpr (C == Codec::NVFP4) {
        const __half2 k14 = __float2half2_rn(16384.f);
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            __half2 p0, p1;
            MmaA<C>::pairs(f, s, h, p0, p1);
            a[h] = h2_bits(__hmul2(p0, k14));
            a[h + 2] = h2_bits(__hmul2(p1, k14));
        }
    } else {
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            const uint32_t w = word(f.q[h], s);
            a[h] = h2_bits(MmaA<C>::pair(w));
            a[h + 2] = h2_bits(MmaA<C>::pair(w >> 16));
        }
    }
}

// The matrix factor of output row `row` in the units of a_regs (NVFP4: the global scale; FP8: the tensor or row
// scale), with x's 2^4 given back.
template <Codec C>
__device__ __forceinline__ float out_factor(const MatrixRef& r, int64_t row) {
    return MmaA<C>::factor(r, row) * 16.f;
}

template <Codec C>
__global__ void __launch_bounds__(kMmaWarps * 32, 2) wo_gemv_mma_kernel(KP p) {
    using Op = MmaA<C>;
    constexpr int K = Op::kChunkCols;
    __shared__ float red[kMmaWarps][32][4];
    const int warp = int(threadIdx.x) >> 5, lane = int(threadIdx.x) & 31;
    const int kw = p.lanes / 32, groups = kMmaWarps / kw, gi = warp / kw, wi = warp % kw;
    const int row0 = (int(blockIdx.x) * groups + gi) * 16;
    const int nch = int((int64_t(C == Codec::NVFP4 ? 2 * p.ld : p.ld) + K - 1) / K);  // chunks of the padded row
    const MatrixRef mr{p.w, p.ld, p.scale_ld, p.rows, C == Codec::NVFP4 ? 2 * p.ld : p.ld, p.scale_off, p.post_off,
                       p.n_post};
    ::imp::cuda::pdl_launch_dependents();
    const int g = lane >> 2, c = lane & 3;
    const bool has_rows = row0 < p.rows;
    typename Op::Frag cur[kDepth], nxt[kDepth];
    // Step j covers the warp's chunks wi + kw * (kDepth * j + i), i < kDepth.
    const auto load_step = [&](int j, typename Op::Frag (&f)[kDepth]) {
#pragma unroll
        for (int i = 0; i < kDepth; ++i) {
            const int ch = wi + kw * (kDepth * j + i);
            if (has_rows && ch < nch) Op::load(mr, row0, ch, lane, f[i]);
        }
    };
    load_step(0, cur);  // weights before the wait: no kernel writes them
    ::imp::cuda::pdl_wait();
    const int ntok = p.n_tokens;
    // B column g is token g; lanes past the tokens read token 0's activations into columns no output reads.
    const float* xt = p.x + int64_t(g < ntok ? g : 0) * p.xs;
    float acc[4] = {0.f, 0.f, 0.f, 0.f};
    // A chunk inside the columns with 16-byte aligned rows of x (the common case, a warp-uniform test): one float4
    // per k-step at a constant offset, no per-step checks; else each column checked.
    const auto compute = [&](const typename Op::Frag& f, int ch) {
        const int col0 = ch * K + (K / 4) * c;
        if (p.x_vec && (ch + 1) * K <= p.cols) {
            const float4* x4 = reinterpret_cast<const float4*>(xt + col0);
#pragma unroll
            for (int s = 0; s < Op::kSteps; ++s) {
                const float4 v = __ldg(x4 + s);
                uint32_t a[4];
                a_regs<C>(f, s, a);
                ::imp::cuda::mma_f16(acc, a[0], a[1], a[2], a[3],
                                     h2_bits(__floats2half2_rn(v.x * kXScale, v.y * kXScale)),
                                     h2_bits(__floats2half2_rn(v.z * kXScale, v.w * kXScale)));
            }
            return;
        }
#pragma unroll
        for (int s = 0; s < Op::kSteps; ++s) {
            const int col = col0 + 4 * s;
            float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
            if (col < p.cols) v.x = __ldg(xt + col);
            if (col + 1 < p.cols) v.y = __ldg(xt + col + 1);
            if (col + 2 < p.cols) v.z = __ldg(xt + col + 2);
            if (col + 3 < p.cols) v.w = __ldg(xt + col + 3);
            uint32_t a[4];
            a_regs<C>(f, s, a);
            ::imp::cuda::mma_f16(acc, a[0], a[1], a[2], a[3], h2_bits(__floats2half2_rn(v.x * kXScale, v.y * kXScale)),
                                 h2_bits(__floats2half2_rn(v.z * kXScale, v.w * kXScale)));
        }
    };
    if (has_rows) {
        const int steps = (nch - wi + kw * kDepth - 1) / (kw * kDepth);  // wi < kw <= nch or none
        for (int j = 0; j < steps; ++j) {
            if (j + 1 < steps) load_step(j + 1, nxt);
#pragma unroll
            for (int i = 0; i < kDepth; ++i) {
                const int ch = wi + kw * (kDepth * j + i);
                if (ch < nch) compute(cur[i], ch);
            }
#pragma unroll
            for (int i = 0; i < kDepth; ++i) cur[i] = nxt[i];
        }
    }
#pragma unroll
    for (int e = 0; e < 4; ++e) red[warp][lane][e] = acc[e];
    __syncthreads();
    if (wi != 0 || !has_rows) return;
    float v[4] = {0.f, 0.f, 0.f, 0.f};
    for (int w = 0; w < kw; ++w)
#pragma unroll
        for (int e = 0; e < 4; ++e) v[e] += red[gi * kw + w][lane][e];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        const int row = row0 + g + 8 * h;
        if (row >= p.rows) continue;
        const float f = out_factor<C>(mr, row);
#pragma unroll
        for (int u = 0; u < 2; ++u) {
            const int t = 2 * c + u;
            if (t >= ntok) continue;
            float* yp = p.y + int64_t(t) * p.ys + row;
            const float val = v[2 * h + u] * f;
            *yp = p.accumulate ? *yp + val : val;
        }
    }
}

}  // namespace

int mma_gemv_kw(const Layout& l, int sm_count) {
    const int64_t k = l.codec == Codec::NVFP4 ? MmaA<Codec::NVFP4>::kChunkCols : MmaA<Codec::FP8>::kChunkCols;
    const int64_t cp = l.codec == Codec::NVFP4 ? 2 * l.ld : l.ld;
    const int64_t nch = (cp + k - 1) / k, rgs = (l.rows + 15) / 16;
    const int64_t slots = sm_count > 0 ? int64_t(sm_count) * 2 * 9 / 10 : 240;
    // The fewest warps per row group whose CTAs fill about one wave of 2 CTAs per SM, each warp keeping at least
    // one full pipeline step (kDepth chunks).
    int kw = 1;
    while (kw < kMmaWarps && int64_t(2 * kw) * kDepth <= nch &&
           (rgs + kMmaWarps / kw - 1) / (kMmaWarps / kw) < slots)
        kw <<= 1;
    return kw;
}

void gemv_mma(const Layout& l, const KP& p, int kw, bool pdl, cudaStream_t st) {
    if (kw != 1 && kw != 2 && kw != 4 && kw != 8)
        throw Error("weight-only tensor-core GEMV: warps per row group " + std::to_string(kw) +
                    " is not 1, 2, 4 or 8");
    if (p.n_tokens < 1 || p.n_tokens > 8)
        throw Error("weight-only tensor-core GEMV: " + std::to_string(p.n_tokens) + " tokens, not 1..8");
    KP q = p;
    q.lanes = kw * 32;
    const int rows_per_cta = kMmaWarps / kw * 16;
    const dim3 grid(unsigned(::imp::cuda::div_up(l.rows, rows_per_cta)));
    if (l.codec == Codec::NVFP4)
        IMP_CUDA_CHECK(
            ::imp::cuda::launch(wo_gemv_mma_kernel<Codec::NVFP4>, grid, dim3(kMmaWarps * 32), 0, st, pdl, q));
    else
        IMP_CUDA_CHECK(
            ::imp::cuda::launch(wo_gemv_mma_kernel<Codec::FP8>, grid, dim3(kMmaWarps * 32), 0, st, pdl, q));
}

}  // namespace imp::wo
