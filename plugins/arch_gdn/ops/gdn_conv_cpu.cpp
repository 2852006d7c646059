// CPU references of gdn.conv (gdn_ops.h: causal depthwise conv over the q|k|v channels with the rolling conv state
// of each sequence's slot, SiLU, L2 norm of the q and k heads, and the gates g and beta) and gdn.gated_norm.
#include <algorithm>
#include <cmath>
#include <vector>

#include "gdn_kernels.h"

namespace imp::gdn {

namespace {

float silu(float x) { return x / (1.f + std::exp(-x)); }
float softplus(float x) { return x > 20.f ? x : std::log1p(std::exp(x)); }

}  // namespace

void conv_cpu(Executor& ex, const Conv::Args& a) {
    validate(a);
    const Seqs& s = a.seqs;
    if (s.n_tokens == 0) return;
    const int K = a.kernel;
    const int64_t cd = a.dims.conv_dim();
    // 1. conv + SiLU, sequence by sequence, channels in parallel; the state is read before it is rewritten.
    for (int32_t q = 0; q < s.n_seqs; ++q) {
        const int64_t r0 = s.query_start_loc[q], r1 = s.query_start_loc[q + 1];
        float* st = a.conv_state + int64_t(s.state_slots[q]) * a.state_stride;
        ex.parallel_for(cd, 256, [&](int64_t c0, int64_t c1) {
            float hist[8];
            for (int64_t c = c0; c < c1; ++c) {
                const float* w = a.w + c * K;
                for (int j = 0; j < K - 1; ++j) hist[j] = st[j * cd + c];  // oldest first
                for (int64_t r = r0; r < r1; ++r) {
                    hist[K - 1] = a.x[r * a.x_stride + c];
                    float acc = 0.f;
                    for (int j = 0; j < K; ++j) acc += w[j] * hist[j];
                    a.out[r * a.out_stride + c] = silu(acc);
                    for (int j = 0; j < K - 1; ++j) hist[j] = hist[j + 1];
                }
                for (int j = 0; j < K - 1; ++j) st[j * cd + c] = hist[j];
            }
        });
    }
    // 2. L2 norm of every q and k head, and the gates, row by row.
    const Dims& d = a.dims;
    ex.parallel_for(s.n_tokens, 4, [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t) {
            float* y = a.out + t * a.out_stride;
            for (int h = 0; h < 2 * d.n_k_heads; ++h) {
                float* v = y + int64_t(h) * d.head_k_dim;
                float ss = 0.f;
                for (int i = 0; i < d.head_k_dim; ++i) ss += v[i] * v[i];
                const float inv = 1.f / std::sqrt(ss + a.l2_eps);
                for (int i = 0; i < d.head_k_dim; ++i) v[i] *= inv;
            }
            for (int j = 0; j < d.n_v_heads; ++j) {
                const float sp = softplus(a.a[t * a.a_stride + j] + a.dt_bias[j]);
                a.g[t * d.n_v_heads + j] = (a.A_is_log ? -std::exp(a.A[j]) : a.A[j]) * sp;
                a.beta[t * d.n_v_heads + j] = 1.f / (1.f + std::exp(-a.b[t * a.b_stride + j]));
            }
        }
    });
}

void gated_norm_cpu(Executor& ex, const GatedNorm::Args& a) {
    validate(a);
    if (a.n_tokens == 0) return;
    const int hd = a.head_dim;
    ex.parallel_for(a.n_tokens, 4, [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t)
            for (int h = 0; h < a.n_heads; ++h) {
                const float* x = a.x + t * a.x_stride + int64_t(h) * hd;
                const float* z = a.z + t * a.z_stride + int64_t(h) * hd;
                float* y = a.y + t * a.y_stride + int64_t(h) * hd;
                float ss = 0.f;
                for (int i = 0; i < hd; ++i) ss += x[i] * x[i];
                const float inv = 1.f / std::sqrt(ss / float(hd) + a.eps);
                for (int i = 0; i < hd; ++i) y[i] = x[i] * inv * a.w[i] * silu(z[i]);
            }
    });
}

}  // namespace imp::gdn
