// Common pieces of the chunked delta-rule kernels (rule_chunked.cu: fused; rule_chunked_split.cu: prep + state):
// sizes, WMMA fragment types and a tile product, the tile epilogue, the chunk's gates with their cumulative sum, and
// the UT inverse (the chunk's phases built from them: rule_chunked_phases.cuh). Row strides are padded by 16 bytes
// (bank spread for the WMMA tile loads; every tile start stays 32-byte aligned as WMMA requires).
#pragma once
#include <cuda_bf16.h>
#include <mma.h>

#include <cstdint>

#include "gdn_ops.h"

namespace imp::gdn::chunked {

using FragA = nvcuda::wmma::fragment<nvcuda::wmma::matrix_a, 16, 16, 16, __nv_bfloat16, nvcuda::wmma::row_major>;
using FragAc = nvcuda::wmma::fragment<nvcuda::wmma::matrix_a, 16, 16, 16, __nv_bfloat16, nvcuda::wmma::col_major>;
using FragB = nvcuda::wmma::fragment<nvcuda::wmma::matrix_b, 16, 16, 16, __nv_bfloat16, nvcuda::wmma::row_major>;
using FragBc = nvcuda::wmma::fragment<nvcuda::wmma::matrix_b, 16, 16, 16, __nv_bfloat16, nvcuda::wmma::col_major>;
using FragC = nvcuda::wmma::fragment<nvcuda::wmma::accumulator, 16, 16, 16, float>;

constexpr int kC = 64;   // chunk rows
constexpr int kD = 128;  // dk = dv
constexpr int kWarps = 8, kThreads = 32 * kWarps;
constexpr int kLdK = kD + 8;  // bf16 [kC][kD] rows
constexpr int kLdC = kC + 8;  // bf16 [kC][kC] rows
constexpr int kLdF = kC + 4;  // fp32 [kC][kC] rows

// acc += sum over k-steps kk < nk of tile A(kk) * tile B(kk); a_step / b_step: elements between k-steps.
template <class FA, class FB>
__device__ __forceinline__ void mma_k(FragC& acc, const __nv_bfloat16* a, int lda, int a_step, const __nv_bfloat16* b,
                                      int ldb, int b_step, int nk) {
    for (int kk = 0; kk < nk; ++kk) {
        FA fa;
        FB fb;
        nvcuda::wmma::load_matrix_sync(fa, a + kk * a_step, lda);
        nvcuda::wmma::load_matrix_sync(fb, b + kk * b_step, ldb);
        nvcuda::wmma::mma_sync(acc, fa, fb, acc);
    }
}

// Stores accumulator tile acc through the warp's staging tile and calls f(row, col, value) for its 256 elements.
template <class F>
__device__ __forceinline__ void epilogue(const FragC& acc, float* stage, int lane, F&& f) {
    nvcuda::wmma::store_matrix_sync(stage, acc, 16, nvcuda::wmma::mem_row_major);
    __syncwarp();
#pragma unroll
    for (int e = 0; e < 8; ++e) {
        const int idx = lane + 32 * e;
        f(idx >> 4, idx & 15, stage[idx]);
    }
    __syncwarp();
}

// H (bf16 [kD][kBV + 8]) = the warp's state tiles hacc (key rows 16w..16w+15, all kBV columns).
template <int kBV>
__device__ __forceinline__ void store_h(const FragC (&hacc)[kBV / 16], __nv_bfloat16* H, float* stage, int lane,
                                        int warp) {
#pragma unroll
    for (int c = 0; c < kBV / 16; ++c)
        epilogue(hacc[c], stage, lane, [&](int rr, int cc, float v) {
            H[(16 * warp + rr) * (kBV + 8) + 16 * c + cc] = __float2bfloat16(v);
        });
}

// h: warp w's tiles of the state of value columns [col0, col0 + kBV) of v-head h, from or to the slot's
// [dv, dk] state (which is h [dk, dv] column-major).
__device__ __forceinline__ float* state_cols(const RuleArgs& a, int s, int h, int col0) {
    return a.state + int64_t(a.seqs.state_slots[s]) * a.state_stride + (int64_t(h) * kD + col0) * kD;
}
template <int kBV>
__device__ __forceinline__ void load_h(FragC (&hacc)[kBV / 16], const float* S, int warp) {
#pragma unroll
    for (int c = 0; c < kBV / 16; ++c)
        nvcuda::wmma::load_matrix_sync(hacc[c], S + c * 16 * kD + 16 * warp, kD, nvcuda::wmma::mem_col_major);
}
template <int kBV>
__device__ __forceinline__ void save_h(const FragC (&hacc)[kBV / 16], float* S, int warp) {
#pragma unroll
    for (int c = 0; c < kBV / 16; ++c)
        nvcuda::wmma::store_matrix_sync(S + c * 16 * kD + 16 * warp, hacc[c], kD, nvcuda::wmma::mem_col_major);
}

// The chunk's gates: gc[i] = sum_{j<=i} g (rows [row0, row0 + n) of v-head h; rows past n count g = 0, beta = 0).
// Begins and ends with all threads in step.
__device__ __forceinline__ void chunk_gates(const RuleArgs& a, int64_t row0, int n, int h, float* gc, float* beta,
                                            int tid, int lane, int warp) {
    if (tid < kC) {
        const int64_t t = row0 + tid;
        gc[tid] = tid < n ? a.g[t * a.dims.n_v_heads + h] : 0.f;
        beta[tid] = tid < n ? a.beta[t * a.dims.n_v_heads + h] : 0.f;
    }
    __syncthreads();
    if (warp == 0) {  // inclusive scan: lane l holds rows 2l, 2l + 1
        const float g0 = gc[2 * lane], pair = g0 + gc[2 * lane + 1];
        float x = pair;
#pragma unroll
        for (int o = 1; o < 32; o <<= 1) {
            const float y = __shfl_up_sync(0xffffffffu, x, o);
            if (lane >= o) x += y;
        }
        gc[2 * lane] = x - pair + g0;
        gc[2 * lane + 1] = x;
    }
    __syncthreads();
}

// T = (I + A)^-1 for the strictly lower A [kC][kC] (fp32): the four 16x16 diagonal blocks by forward substitution
// (one lane per column), then the blocks below the diagonal by distance d = 1..3:
//   T_ij = -T_ii sum_{m=j}^{i-1} A_im T_mj.
// Writes the lower blocks of sm.T (fp32) and all of sm.Tb (bf16, zero above the diagonal blocks); begins and ends
// with all threads in step. S: any layout with A, T, Tb, X (3 x 256 floats).
template <class S>
__device__ __forceinline__ void solve_unit_lower(S& sm, int tid, int lane, int warp) {
    if (warp < 4 && lane < 16) {
        const int b = 16 * warp, j = lane;
        for (int i = 0; i < 16; ++i) {
            float t = i == j ? 1.f : 0.f;
            if (i > j)
                for (int m = j; m < i; ++m) t -= sm.A[(b + i) * kLdF + b + m] * sm.T[(b + m) * kLdF + b + j];
            sm.T[(b + i) * kLdF + b + j] = t;
        }
    }
    __syncthreads();
    for (int d = 1; d < 4; ++d) {
        const int nb = 4 - d;
        for (int idx = tid; idx < nb * 256; idx += kThreads) {
            const int bj = idx >> 8, r = (idx >> 4) & 15, c = idx & 15, bi = bj + d;
            float x = 0.f;
            for (int mb = bj; mb < bi; ++mb)
#pragma unroll
                for (int k = 0; k < 16; ++k)
                    x += sm.A[(16 * bi + r) * kLdF + 16 * mb + k] * sm.T[(16 * mb + k) * kLdF + 16 * bj + c];
            sm.X[idx] = x;
        }
        __syncthreads();
        for (int idx = tid; idx < nb * 256; idx += kThreads) {
            const int bj = idx >> 8, r = (idx >> 4) & 15, c = idx & 15, bi = bj + d;
            float t = 0.f;
#pragma unroll
            for (int k = 0; k < 16; ++k) t -= sm.T[(16 * bi + r) * kLdF + 16 * bi + k] * sm.X[(bj << 8) + k * 16 + c];
            sm.T[(16 * bi + r) * kLdF + 16 * bj + c] = t;
        }
        __syncthreads();
    }
    for (int idx = tid; idx < kC * kC; idx += kThreads) {
        const int i = idx / kC, j = idx % kC;
        sm.Tb[i * kLdC + j] = __float2bfloat16(j / 16 <= i / 16 ? sm.T[i * kLdF + j] : 0.f);
    }
    __syncthreads();
}

// rule_chunked_split.cu: the prep and state kernels on a.workspace. Each is the WMMA kernel of rule_chunked_split.cu
// or its mma.sync version (rule_chunked_prep_mma.cu, rule_chunked_state_mma.cu); bv (32 or 64) value columns per
// block of the state kernel.
struct SplitPlan {
    int bv = 32;
    bool mma_prep = false;
    bool mma_state = false;
    int phases = 3;  // 1: the prep kernel only, 2: the state kernel only (rule_chunked_cuda_phases), 3: both
};
void rule_chunked_split(const RuleArgs& a, const CudaHandles& h, const SplitPlan& plan);

}  // namespace imp::gdn::chunked
