// The decode rule's per-warp work on a group of value columns, shared by gdn.rule_decode (rule_decode.cu) and
// gdn.decode_step (decode_step.cu). The state is stored [Hv, dv, dk], so a value column's dk keys are contiguous:
// the warp reads them coalesced (dk/32 per lane), decays them, and one pass of warp sums gives S^T k and S^T q; then
// delta = beta (v - e S^T k), the column is rewritten as e S + k delta and o = scale (e S^T q + delta (k . q)),
// e = exp(g).
#pragma once
#include "imp/cuda/reduce.cuh"

namespace imp::gdn::decode {

constexpr int kCols = 4;  // value columns per warp

// This lane's share of value columns [j0, j0 + kCols) (those < dv) of the state at column j0 (S: [kCols][dk]).
template <int kPer>
__device__ __forceinline__ void load_cols(const float* S, int j0, int dv, float (&col)[kCols][kPer]) {
    const int lane = threadIdx.x & 31;
    constexpr int dk = kPer * 32;
#pragma unroll
    for (int c = 0; c < kCols; ++c)
        if (j0 + c < dv)
#pragma unroll
            for (int e = 0; e < kPer; ++e) col[c][e] = S[c * dk + lane + 32 * e];
}

// One warp: value columns [j0, j0 + kCols) (those < dv) of one v-head, their state already in col (load_cols).
// q, k: the head's unit key vectors (dk = 32 kPer floats, global or shared memory); v: the values of columns j0..;
// S: the state at column j0 ([kCols][dk]), rewritten. f(column, o value) for each column, in every lane.
template <int kPer, class F>
__device__ __forceinline__ void delta_cols_loaded(const float* q, const float* k, const float* v, float decay,
                                                  float beta, float scale, float* S, int j0, int dv,
                                                  const float (&col)[kCols][kPer], F&& f) {
    const int lane = threadIdx.x & 31;
    constexpr int dk = kPer * 32;
    float qr[kPer], kr[kPer], kq = 0.f;
#pragma unroll
    for (int e = 0; e < kPer; ++e) {
        qr[e] = q[lane + 32 * e];
        kr[e] = k[lane + 32 * e];
        kq += kr[e] * qr[e];
    }
    kq = imp::cuda::warp_sum(kq);
#pragma unroll
    for (int c = 0; c < kCols; ++c) {
        if (j0 + c >= dv) break;
        float sk = 0.f, sq = 0.f;
#pragma unroll
        for (int e = 0; e < kPer; ++e) sk += col[c][e] * kr[e], sq += col[c][e] * qr[e];
        sk = imp::cuda::warp_sum(sk);
        sq = imp::cuda::warp_sum(sq);
        const float delta = beta * (v[c] - decay * sk);
#pragma unroll
        for (int e = 0; e < kPer; ++e) S[c * dk + lane + 32 * e] = decay * col[c][e] + kr[e] * delta;
        f(j0 + c, scale * (decay * sq + delta * kq));
    }
}

// delta_cols_loaded with the state read here.
template <int kPer, class F>
__device__ __forceinline__ void delta_cols(const float* q, const float* k, const float* v, float decay, float beta,
                                           float scale, float* S, int j0, int dv, F&& f) {
    float col[kCols][kPer];
    load_cols<kPer>(S, j0, dv, col);
    delta_cols_loaded<kPer>(q, k, v, decay, beta, scale, S, j0, dv, col, f);
}

// y = o * inv_rms * w * silu(z): the gated norm's output of one element.
__device__ __forceinline__ float gated(float o, float inv, float w, float z) { return o * inv * w * (z / (1.f + expf(-z))); }

// The gated norm's outputs of a v-head's columns this warp computed (groups of kCols at first, first + step, ...
// below dv; their rule outputs in os), given the head's sum of squares tot: y into o, z the gate row, w the weights.
__device__ __forceinline__ void write_gated(const float* os, float tot, float eps, const float* w, const float* z,
                                            float* o, int first, int step, int dv) {
    const int lane = threadIdx.x & 31;
    const float inv = rsqrtf(tot / float(dv) + eps);
    for (int j0 = first; j0 < dv; j0 += step)
        if (lane < kCols && j0 + lane < dv) {
            const int j = j0 + lane;
            o[j] = gated(os[j], inv, w[j], z[j]);
        }
}

}  // namespace imp::gdn::decode
