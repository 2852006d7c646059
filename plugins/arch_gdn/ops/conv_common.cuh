// Device pieces shared by gdn.conv's CUDA kernels (conv.cu: one block per (row, head); conv_rows.cu: one warp per
// (head, rows)): SiLU, softplus and the gates of one row.
#pragma once
#include "gdn_ops.h"

namespace imp::gdn::conv {

__device__ __forceinline__ float silu(float x) { return x / (1.f + expf(-x)); }
__device__ __forceinline__ float softplus(float x) { return x > 20.f ? x : log1pf(expf(x)); }

// (g, beta) of row t and v-head j (gdn_ops.h, gdn.conv), with the head's A and dt_bias already read.
__device__ __forceinline__ float2 gate_values(const Conv::Args& a, int64_t t, int j, float A, float dt_bias) {
    const float Av = a.A_is_log ? -expf(A) : A;
    return make_float2(Av * softplus(a.a[t * a.a_stride + j] + dt_bias), 1.f / (1.f + expf(-a.b[t * a.b_stride + j])));
}
__device__ __forceinline__ float2 gate_values(const Conv::Args& a, int64_t t, int j) {
    return gate_values(a, t, j, a.A[j], a.dt_bias[j]);
}

// g and beta of row t for v-heads j = first, first + step, ... < Hv, into a.g and a.beta.
__device__ __forceinline__ void row_gates(const Conv::Args& a, int64_t t, int first, int step) {
    const int hv = a.dims.n_v_heads;
    for (int j = first; j < hv; j += step) {
        const float2 gb = gate_values(a, t, j);
        a.g[t * hv + j] = gb.x;
        a.beta[t * hv + j] = gb.y;
    }
}

// conv_rows.cu: whether its kernel takes a (alignment, head dims <= 128 and multiples of 4), and its launch (the
// output rows and the gates; the conv states are left to conv.cu's state kernel).
bool conv_rows_applies(const Conv::Args& a);
void conv_rows(const Conv::Args& a, const CudaHandles& h);

// conv_decode.cu: whether its kernel takes a decode step (one row per sequence, K = 4, variant 0, heads up to 512
// wide, Hv <= 128, the weights 16-byte aligned), and its launch (outputs, gates and the conv states in one kernel).
bool conv_decode_applies(const Conv::Args& a);
void conv_decode(const Conv::Args& a, const CudaHandles& h);

}  // namespace imp::gdn::conv
