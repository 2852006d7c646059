// quant_ggml CUDA: the decode GEMV of the tiled block types, on the tensor cores.
//
// A CTA of 8 warps owns R row groups (16 rows each) and splits the columns among its warps (chunk ch goes to warp
// ch % 8); a warp loads kUnroll chunks of each row group (16-byte loads, all issued before use), decodes the codes
// into exact bf16 pairs in registers and runs one m16n8k16 MMA per 16 columns per group of 4 tokens. The B operand
// packs, for each token, x's bf16 hi part in column 2t and its lo part in column 2t + 1, so one MMA covers 4 tokens
// in ~16-bit precision. Each scale block (32 columns; 16 for Q6_K) gets a fresh accumulator that is scaled into the
// fp32 result; types with a min add (add * sum of x over the block), the sum coming from an MMA with A = 1.
// The 8 warps' partial sums meet in shared memory; each output is written once, no atomics.
#pragma once
#include "cuda_check.h"
#include "device_common.cuh"
#include "kernels.h"

namespace imp::ggml::cuda {

constexpr int kGemvWarps = 8;

template <class L, int R, int J>
__global__ void __launch_bounds__(kGemvWarps * 32, 2)
    gemv_tiled_kernel(const uint8_t* __restrict__ w, int64_t rg_bytes, int chunks, int n_rg, int rows, int cols,
                      const float* __restrict__ x, int64_t xs, float* __restrict__ y, int64_t ys, int n_tokens,
                      int x_vec) {
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, c = lane & 3;
    const int rg0 = blockIdx.x * R;
    const float negpart = (g & 1) ? -1.f : 0.f;
    const float* xr[J];
    bool xon[J];
#pragma unroll
    for (int j = 0; j < J; ++j) {
        const int t = 4 * j + (g >> 1);
        xon[j] = t < n_tokens;
        xr[j] = x + int64_t(xon[j] ? t : 0) * xs;
    }
    const uint8_t* wr[R];
    bool ron[R];
#pragma unroll
    for (int r = 0; r < R; ++r) {
        ron[r] = rg0 + r < n_rg;
        wr[r] = w + int64_t(ron[r] ? rg0 + r : rg0) * rg_bytes;
    }
    float acc[R][J][4];
#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
        for (int j = 0; j < J; ++j)
#pragma unroll
            for (int e = 0; e < 4; ++e) acc[r][j][e] = 0.f;

    for (int ch0 = warp; ch0 < chunks; ch0 += kGemvWarps * L::kUnroll) {
        typename L::Frag f[L::kUnroll][R];
#pragma unroll
        for (int u = 0; u < L::kUnroll; ++u) {
            const int ch = ch0 + u * kGemvWarps;
#pragma unroll
            for (int r = 0; r < R; ++r) {
                if (ch < chunks && ron[r])
                    L::load(wr[r] + int64_t(ch) * L::kTileBytes, lane, f[u][r]);
                else
                    f[u][r] = {};
            }
        }
#pragma unroll
        for (int u = 0; u < L::kUnroll; ++u) {
            const int ch = ch0 + u * kGemvWarps;
            if (ch < chunks) {
                const int colbase = ch * L::kChunkCols + 4 * c;
#pragma unroll
                for (int sb = 0; sb < L::kSteps / L::kSubSteps; ++sb) {
                    float blk[R][J][4], xsum[J][4];
#pragma unroll
                    for (int j = 0; j < J; ++j)
#pragma unroll
                        for (int e = 0; e < 4; ++e) {
                            xsum[j][e] = 0.f;
#pragma unroll
                            for (int r = 0; r < R; ++r) blk[r][j][e] = 0.f;
                        }
#pragma unroll
                    for (int ss = 0; ss < L::kSubSteps; ++ss) {
                        const int s = sb * L::kSubSteps + ss;
                        const int col = colbase + 16 * s;
                        uint32_t b[J][2];
#pragma unroll
                        for (int j = 0; j < J; ++j) {
                            float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
                            if (xon[j] && col < cols) {
                                if (x_vec)
                                    v = __ldg(reinterpret_cast<const float4*>(xr[j] + col));
                                else
                                    v = make_float4(__ldg(xr[j] + col), __ldg(xr[j] + col + 1), __ldg(xr[j] + col + 2),
                                                    __ldg(xr[j] + col + 3));
                            }
                            b[j][0] = split_pair(v.x, v.y, negpart);
                            b[j][1] = split_pair(v.z, v.w, negpart);
                        }
#pragma unroll
                        for (int r = 0; r < R; ++r) {
                            const uint32_t a0 = a_reg<L>(f[u][r], s, 0), a1 = a_reg<L>(f[u][r], s, 1);
                            const uint32_t a2 = a_reg<L>(f[u][r], s, 2), a3 = a_reg<L>(f[u][r], s, 3);
#pragma unroll
                            for (int j = 0; j < J; ++j) mma_bf16(blk[r][j], a0, a1, a2, a3, b[j][0], b[j][1]);
                        }
                        if constexpr (L::kHasMin) {
#pragma unroll
                            for (int j = 0; j < J; ++j)
                                mma_bf16(xsum[j], kBf16One2, kBf16One2, kBf16One2, kBf16One2, b[j][0], b[j][1]);
                        }
                    }
#pragma unroll
                    for (int r = 0; r < R; ++r) {
                        const RowScale s0 = L::scale(f[u][r], sb, 0), s1 = L::scale(f[u][r], sb, 1);
#pragma unroll
                        for (int j = 0; j < J; ++j) {
                            acc[r][j][0] = fmaf(s0.mul, blk[r][j][0], acc[r][j][0]);
                            acc[r][j][1] = fmaf(s0.mul, blk[r][j][1], acc[r][j][1]);
                            acc[r][j][2] = fmaf(s1.mul, blk[r][j][2], acc[r][j][2]);
                            acc[r][j][3] = fmaf(s1.mul, blk[r][j][3], acc[r][j][3]);
                            if constexpr (L::kHasMin) {
                                acc[r][j][0] = fmaf(s0.add, xsum[j][0], acc[r][j][0]);
                                acc[r][j][1] = fmaf(s0.add, xsum[j][1], acc[r][j][1]);
                                acc[r][j][2] = fmaf(s1.add, xsum[j][2], acc[r][j][2]);
                                acc[r][j][3] = fmaf(s1.add, xsum[j][3], acc[r][j][3]);
                            }
                        }
                    }
                }
            }
        }
    }

    // C fragment: acc[..][0/1] = row g, token 4j + c, hi/lo part; acc[..][2/3] = row g + 8.
    __shared__ float red[kGemvWarps][R * J * 2][32];
#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
        for (int j = 0; j < J; ++j) {
            red[warp][(r * J + j) * 2][lane] = acc[r][j][0] + acc[r][j][1];
            red[warp][(r * J + j) * 2 + 1][lane] = acc[r][j][2] + acc[r][j][3];
        }
    __syncthreads();
    for (int i = threadIdx.x; i < R * J * 2 * 32; i += blockDim.x) {
        const int ln = i & 31, q = i >> 5;
        const int p = q & 1, j = (q >> 1) % J, r = (q >> 1) / J;
        float v = 0.f;
#pragma unroll
        for (int wv = 0; wv < kGemvWarps; ++wv) v += red[wv][q][ln];
        const int row = (rg0 + r) * kTileRows + (ln >> 2) + 8 * p;
        const int t = 4 * j + (ln & 3);
        if (row < rows && t < n_tokens) y[int64_t(t) * ys + row] = v;
    }
}

template <class L, int R, int J>
void launch_tiled_rj(const DeviceLayout& l, const GemvArgs& a, cudaStream_t st) {
    const int x_vec = (reinterpret_cast<uintptr_t>(a.x) % 16 == 0) && (a.xs % 4 == 0);
    const unsigned grid = unsigned((l.n_rg + R - 1) / R);
    gemv_tiled_kernel<L, R, J><<<grid, kGemvWarps * 32, 0, st>>>(
        static_cast<const uint8_t*>(a.w), l.rg_bytes, int(l.chunks), int(l.n_rg), int(l.rows), int(l.cols), a.x, a.xs,
        a.y, a.ys, a.n_tokens, x_vec);
    QG_LAUNCHED();
}

// R (row groups per CTA) in {1, 2}; the token count picks J = ceil(n / 4) in {1, 2}.
template <class L>
void launch_gemv_tiled(const DeviceLayout& l, const GemvArgs& a, int R, cudaStream_t st) {
    const bool two = a.n_tokens > 4;
    if (R >= 2)
        two ? launch_tiled_rj<L, 2, 2>(l, a, st) : launch_tiled_rj<L, 2, 1>(l, a, st);
    else
        two ? launch_tiled_rj<L, 1, 2>(l, a, st) : launch_tiled_rj<L, 1, 1>(l, a, st);
}

}  // namespace imp::ggml::cuda
