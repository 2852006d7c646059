// Weight-only GEMV on the tensor cores (GemvPlan::Mma, setting gemv = "mma"): 1-8 tokens, dense or one item of an
// expert matmul per CTA column, for NVFP4 and FP8 E4M3 weights.
//
// Why: the CUDA-core GEMV (wo_gemv.cu) spends ~3.5 instructions per NVFP4 code and token (bit extraction, a
// conversion, one FMA per token), so at one token it is issue-bound at ~37 % of the copy bandwidth and at 8 tokens
// falls to 0.34x the BF16 GEMV. Here each code is dequantized once for all tokens into an MMA A fragment (m16n8k16,
// fp16 inputs, fp32 sums; the 8 token columns of B are the tokens, padding zero): NVFP4 ~2 instructions per code
// (the half2 extraction of wo_decode.cuh, then x e4m3 scale and x 2^14, both exact in fp16), FP8 ~0.5 (one
// cvt e4m3x2 -> f16x2 per pair), independent of the token count.
//
// Work: a CTA of 8 warps holds 8 / kw row groups of 16 rows; the kw warps of a row group split its 128-column
// (NVFP4) / 64-column (FP8) chunks (chunk i to warp i % kw) and stream them with 16-byte loads, the next chunk's in
// flight in registers while the current one is computed. Lane (g, c) holds code bytes [16c, 16c + 16) of rows g and g + 8 of a chunk and in k-step s uses their
// columns 4s..4s+3 (the A operand of wo_mma_a.cuh); its B registers are token g's activations at those columns,
// read as one float4 from x (L1/L2) and rounded to fp16 (activations beyond +-65504 saturate). The kw partial
// 16 x 8 tiles are summed in shared memory in warp order (deterministic) and the epilogue applies the per-tensor /
// per-row factor.
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <algorithm>
#include <string>

#include "imp/cuda/check.h"
#include "imp/cuda/launch.cuh"
#include "imp/error.h"
#include "wo_decode.cuh"
#include "wo_gemv_chunk.cuh"
#include "wo_kernels.h"
#include "wo_mma_a.cuh"

namespace imp::wo {
namespace {

constexpr int kMmaWarps = 8;
using ::imp::cuda::mma_f16;

// fp16 pair {lo, hi} of two fp32 values, saturated to +-65504; NaN stays NaN (as the CUDA-core GEMV lets it through).
__device__ __forceinline__ float sat_f16(float v) { return v != v ? v : fminf(fmaxf(v, -65504.f), 65504.f); }
__device__ __forceinline__ uint32_t f16x2_sat(float lo, float hi) {
    return half2_bits(__floats2half2_rn(sat_f16(lo), sat_f16(hi)));
}

template <Codec C>
__global__ void __launch_bounds__(kMmaWarps * 32) wo_gemv_mma_kernel(KP p) {
    using Op = MmaA<C>;
    constexpr int K = Op::kChunkCols;
    __shared__ float red[kMmaWarps][32][4];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int kw = p.kw, groups = kMmaWarps / kw, gi = warp / kw, wi = warp % kw;
    const int row0 = (int(blockIdx.x) * groups + gi) * 16;
    const int nch = int((int64_t(C == Codec::NVFP4 ? 2 * p.ld : p.ld) + K - 1) / K);  // chunks of the padded row
    MatrixRef mr{p.w, p.ld, p.scale_ld, p.rows, C == Codec::NVFP4 ? 2 * p.ld : p.ld, p.scale_off, p.post_off, p.n_post};
    ::imp::cuda::pdl_launch_dependents();
    const int g = lane >> 2, c = lane & 3;
    // Token g of this lane's B registers, tokens 2c, 2c + 1 of its outputs.
    int ntok = p.n_tokens;
    int64_t xo = int64_t(g) * p.xs, yo0 = int64_t(2 * c) * p.ys, yo1 = int64_t(2 * c + 1) * p.ys;
    typename Op::Frag fa, fb;
    const bool has_rows = row0 < p.rows;
    if (p.ids) {
        ::imp::cuda::pdl_wait();
        const int item = p.pair0 + int(blockIdx.y);
        int e = 0, start = item, cnt = 1;
        if (p.groups) {
            if (item >= *p.n_groups) return;  // the whole CTA leaves (one item per CTA)
            e = p.groups[3 * item];
            start = p.groups[3 * item + 1];
            cnt = min(p.groups[3 * item + 2], 8);
        } else {
            e = p.ids[item];
        }
        ntok = cnt;
        const auto pair_of = [&](int t) { return t < cnt ? (p.groups ? p.order[start + t] : item) : 0; };
        const int pg = pair_of(g), p0 = pair_of(2 * c), p1 = pair_of(2 * c + 1);
        xo = int64_t(p.x_per_slot ? pg : pg / p.top_k) * p.xs;
        yo0 = int64_t(p0) * p.ys;
        yo1 = int64_t(p1) * p.ys;
        if (e < 0 || e >= p.n_expert) {  // the whole CTA leaves
            if (p.zero_invalid && wi == 0 && has_rows)
#pragma unroll
                for (int h = 0; h < 2; ++h) {
                    const int row = row0 + g + 8 * h;
                    if (row >= p.rows) continue;
                    if (2 * c < cnt) p.y[yo0 + row] = 0.f;
                    if (2 * c + 1 < cnt) p.y[yo1 + row] = 0.f;
                }
            return;
        }
        mr.m += uint64_t(e) * p.mat_bytes;
        if (has_rows && wi < nch) Op::load(mr, row0, wi, lane, fa);
    } else {
        if (has_rows && wi < nch) Op::load(mr, row0, wi, lane, fa);  // weights before the wait
        ::imp::cuda::pdl_wait();
    }
    const float* xt = p.x + xo;
    const bool x_lane = g < ntok;
    float acc[4] = {0.f, 0.f, 0.f, 0.f};
    const auto compute = [&](const typename Op::Frag& f, int ch) {
#pragma unroll
        for (int s = 0; s < Op::kSteps; ++s) {
            const int col = ch * K + (K / 4) * c + 4 * s;
            uint32_t b0 = 0u, b1 = 0u;
            if (x_lane && col < p.cols) {
                float4 v;
                if (p.x_vec && col + 4 <= p.cols) {
                    v = __ldg(reinterpret_cast<const float4*>(xt + col));
                } else {
                    v.x = __ldg(xt + col);
                    v.y = col + 1 < p.cols ? __ldg(xt + col + 1) : 0.f;
                    v.z = col + 2 < p.cols ? __ldg(xt + col + 2) : 0.f;
                    v.w = col + 3 < p.cols ? __ldg(xt + col + 3) : 0.f;
                }
                b0 = f16x2_sat(v.x, v.y);
                b1 = f16x2_sat(v.z, v.w);
            }
            uint32_t a[4];
            Op::regs_f16(f, s, a);
            mma_f16(acc, a[0], a[1], a[2], a[3], b0, b1);
        }
    };
    if (has_rows) {
        for (int ch = wi; ch < nch; ch += 2 * kw) {
            if (ch + kw < nch) Op::load(mr, row0, ch + kw, lane, fb);
            compute(fa, ch);
            if (ch + 2 * kw < nch) Op::load(mr, row0, ch + 2 * kw, lane, fa);
            if (ch + kw < nch) compute(fb, ch + kw);
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
        const float f = Op::factor(mr, row);
        if (2 * c < ntok) {
            float* yp = p.y + yo0 + row;
            *yp = p.accumulate ? *yp + v[2 * h] * f : v[2 * h] * f;
        }
        if (2 * c + 1 < ntok) {
            float* yp = p.y + yo1 + row;
            *yp = p.accumulate ? *yp + v[2 * h + 1] * f : v[2 * h + 1] * f;
        }
    }
}

}  // namespace

int mma_auto_kw(const Layout& l, int n_items, int sm_count) {
    const int64_t k = l.codec == Codec::NVFP4 ? MmaA<Codec::NVFP4>::kChunkCols : MmaA<Codec::FP8>::kChunkCols;
    const int64_t nch = (l.cp + k - 1) / k, rgs = (l.rows + 15) / 16;
    const int64_t slots = sm_count > 0 ? int64_t(sm_count) * 2 * 9 / 10 : 240;
    int kw = 1;
    // The fewest warps per row group that fill about one wave of 2 CTAs per SM, each warp keeping >= 2 chunks.
    while (kw < kMmaWarps && 2 * int64_t(kw) * 2 <= nch &&
           (rgs + kMmaWarps / kw - 1) / (kMmaWarps / kw) * std::max(n_items, 1) < slots)
        kw <<= 1;
    return kw;
}

void gemv_mma(const Layout& l, const KP& base, int n_items, bool pdl, cudaStream_t st) {
    const int rows_per_cta = kMmaWarps / base.kw * 16;
    for (int i0 = 0; i0 < n_items; i0 += 65535) {
        KP q = base;
        q.pair0 = i0;
        const unsigned gy = unsigned(n_items - i0 < 65535 ? n_items - i0 : 65535);
        const dim3 grid(unsigned(::imp::cuda::div_up(l.rows, rows_per_cta)), gy);
        if (l.codec == Codec::NVFP4)
            IMP_CUDA_CHECK(::imp::cuda::launch(wo_gemv_mma_kernel<Codec::NVFP4>, grid, dim3(kMmaWarps * 32), 0, st,
                                               pdl, q));
        else
            IMP_CUDA_CHECK(::imp::cuda::launch(wo_gemv_mma_kernel<Codec::FP8>, grid, dim3(kMmaWarps * 32), 0, st,
                                               pdl, q));
    }
}

}  // namespace imp::wo
