// CPU kernels of the gated delta rule (gdn_ops.h) and of gdn.decode_step (conv, then the decode rule). Both rule
// kernels (gdn.rule_decode, gdn.rule_chunked) run the plain recurrence token by token, so the CPU engine's results do
// not depend on how a prompt is split into steps. rule_chunked_wy_cpu computes the chunked WY/UT form the CUDA kernel
// uses (chunks of 64, fp32): the CPU test checks it against the recurrence, which validates the algorithm of the CUDA
// kernel. Work is split over (sequence, v-head).
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "gdn_kernels.h"
#include "imp/error.h"

namespace imp::gdn {

namespace {

constexpr int kChunk = 64;

// The rows of sequence q and the state of v-head h of its slot ([dv, dk]: value column j's keys contiguous).
struct Head {
    int64_t r0, r1;
    const float *q, *k, *v;  // row r0's q, k (key head of h) and v (head h); rows qkv_stride apart
    float* S;
    float* o;
    int h;
};

Head head_of(const RuleArgs& a, int64_t pair) {
    const Dims& d = a.dims;
    const int32_t q = int32_t(pair / d.n_v_heads);
    const int h = int(pair % d.n_v_heads), kh = d.k_head_of(h);
    Head x;
    x.r0 = a.seqs.query_start_loc[q];
    x.r1 = a.seqs.query_start_loc[q + 1];
    const float* row = a.qkv + x.r0 * a.qkv_stride;
    x.q = row + int64_t(kh) * d.head_k_dim;
    x.k = row + d.key_dim() + int64_t(kh) * d.head_k_dim;
    x.v = row + 2 * d.key_dim() + int64_t(h) * d.head_v_dim;
    x.S = a.state + int64_t(a.seqs.state_slots[q]) * a.state_stride + int64_t(h) * d.head_v_dim * d.head_k_dim;
    x.o = a.o + x.r0 * a.o_stride + int64_t(h) * d.head_v_dim;
    x.h = h;
    return x;
}

void recurrent_head(const RuleArgs& a, const Head& x) {
    const int dk = a.dims.head_k_dim, dv = a.dims.head_v_dim, hv = a.dims.n_v_heads;
    for (int64_t r = 0; r < x.r1 - x.r0; ++r) {
        const float* q = x.q + r * a.qkv_stride;
        const float* k = x.k + r * a.qkv_stride;
        const float* v = x.v + r * a.qkv_stride;
        const float decay = std::exp(a.g[(x.r0 + r) * hv + x.h]), beta = a.beta[(x.r0 + r) * hv + x.h];
        for (int j = 0; j < dv; ++j) {
            float* col = x.S + int64_t(j) * dk;
            float kv = 0.f;
            for (int i = 0; i < dk; ++i) kv += (col[i] *= decay) * k[i];
            const float delta = beta * (v[j] - kv);
            float out = 0.f;
            for (int i = 0; i < dk; ++i) out += (col[i] += k[i] * delta) * q[i];
            x.o[r * a.o_stride + j] = out * a.scale;
        }
    }
}

// One chunk of rows [c0, c0 + n) of head x: the WY/UT form (gdn_ops.h; HF torch_chunk_gated_delta_rule).
struct ChunkScratch {
    std::vector<float> gc, T, w, u, vn, Sk;
};

void chunk_head(const RuleArgs& a, const Head& x, int64_t c0, int n, ChunkScratch& s) {
    const int dk = a.dims.head_k_dim, dv = a.dims.head_v_dim, hv = a.dims.n_v_heads;
    const int64_t ld = a.qkv_stride;
    auto K = [&](int i) { return x.k + (c0 + i) * ld; };
    auto Q = [&](int i) { return x.q + (c0 + i) * ld; };
    auto V = [&](int i) { return x.v + (c0 + i) * ld; };
    auto beta = [&](int i) { return a.beta[(x.r0 + c0 + i) * hv + x.h]; };
    auto dot = [&](const float* p, const float* q) {
        float acc = 0.f;
        for (int i = 0; i < dk; ++i) acc += p[i] * q[i];
        return acc;
    };
    s.gc.assign(size_t(n), 0.f);
    float acc = 0.f;
    for (int i = 0; i < n; ++i) s.gc[size_t(i)] = acc += a.g[(x.r0 + c0 + i) * hv + x.h];
    // T = (I + A)^-1, A[i][j] = beta_i (k_i . k_j) exp(gc_i - gc_j) for j < i (forward substitution).
    s.T.assign(size_t(n) * n, 0.f);
    std::vector<float> A(size_t(n) * n, 0.f);
    for (int i = 0; i < n; ++i)
        for (int j = 0; j < i; ++j) A[size_t(i) * n + j] = beta(i) * dot(K(i), K(j)) * std::exp(s.gc[i] - s.gc[j]);
    for (int i = 0; i < n; ++i) {
        s.T[size_t(i) * n + i] = 1.f;
        for (int j = 0; j < i; ++j) {
            float t = 0.f;
            for (int m = j; m < i; ++m) t -= A[size_t(i) * n + m] * s.T[size_t(m) * n + j];
            s.T[size_t(i) * n + j] = t;
        }
    }
    // w = T (beta k exp(gc)) [n, dk]; u = T (beta v) [n, dv].
    s.w.assign(size_t(n) * dk, 0.f);
    s.u.assign(size_t(n) * dv, 0.f);
    for (int i = 0; i < n; ++i)
        for (int j = 0; j <= i; ++j) {
            const float t = s.T[size_t(i) * n + j] * beta(j), tw = t * std::exp(s.gc[j]);
            for (int e = 0; e < dk; ++e) s.w[size_t(i) * dk + e] += tw * K(j)[e];
            for (int e = 0; e < dv; ++e) s.u[size_t(i) * dv + e] += t * V(j)[e];
        }
    // v_new = u - w S; o = scale (exp(gc) q S + sum_{j<=i} (q_i . k_j) exp(gc_i - gc_j) v_new_j).
    s.vn.assign(size_t(n) * dv, 0.f);
    for (int i = 0; i < n; ++i)
        for (int e = 0; e < dv; ++e) {
            const float* col = x.S + int64_t(e) * dk;
            s.vn[size_t(i) * dv + e] = s.u[size_t(i) * dv + e] - dot(&s.w[size_t(i) * dk], col);
        }
    for (int i = 0; i < n; ++i) {
        float* o = x.o + (c0 + i) * a.o_stride;
        const float eg = std::exp(s.gc[i]);
        for (int e = 0; e < dv; ++e) o[e] = eg * dot(Q(i), x.S + int64_t(e) * dk);
        for (int j = 0; j <= i; ++j) {
            const float c = dot(Q(i), K(j)) * std::exp(s.gc[i] - s.gc[j]);
            for (int e = 0; e < dv; ++e) o[e] += c * s.vn[size_t(j) * dv + e];
        }
        for (int e = 0; e < dv; ++e) o[e] *= a.scale;
    }
    // S = exp(gc_last) S + sum_i exp(gc_last - gc_i) k_i v_new_i^T.
    const float last = s.gc[size_t(n - 1)];
    const float el = std::exp(last);
    for (int e = 0; e < dv; ++e) {
        float* col = x.S + int64_t(e) * dk;
        for (int i = 0; i < dk; ++i) col[i] *= el;
        for (int r = 0; r < n; ++r) {
            const float f = std::exp(last - s.gc[r]) * s.vn[size_t(r) * dv + e];
            for (int i = 0; i < dk; ++i) col[i] += f * K(r)[i];
        }
    }
}

}  // namespace

void rule_decode_cpu(Executor& ex, const RuleArgs& a) {
    validate(RuleDecode::name, a);
    if (a.seqs.n_tokens != a.seqs.n_seqs)
        throw Error(std::string(RuleDecode::name) + ": " + std::to_string(a.seqs.n_tokens) + " rows for " +
                    std::to_string(a.seqs.n_seqs) + " sequences (one row per sequence)");
    if (a.seqs.n_tokens == 0) return;
    ex.parallel_for(int64_t(a.seqs.n_seqs) * a.dims.n_v_heads, 1, [&](int64_t p0, int64_t p1) {
        for (int64_t p = p0; p < p1; ++p) recurrent_head(a, head_of(a, p));
    });
    if (a.norm_w) {  // the gated norm of the outputs, in place
        const Dims& d = a.dims;
        gated_norm_cpu(ex, {a.o, a.o_stride, a.z, a.z_stride, a.norm_w, a.o, a.o_stride, a.seqs.n_tokens, d.n_v_heads,
                            d.head_v_dim, a.norm_eps});
    }
}

void rule_chunked_cpu(Executor& ex, const RuleArgs& a) {
    validate(RuleChunked::name, a);
    if (a.seqs.n_tokens == 0) return;
    ex.parallel_for(int64_t(a.seqs.n_seqs) * a.dims.n_v_heads, 1, [&](int64_t p0, int64_t p1) {
        for (int64_t p = p0; p < p1; ++p) recurrent_head(a, head_of(a, p));
    });
}

void rule_chunked_wy_cpu(Executor& ex, const RuleArgs& a) {
    validate(RuleChunked::name, a);
    if (a.seqs.n_tokens == 0) return;
    ex.parallel_for(int64_t(a.seqs.n_seqs) * a.dims.n_v_heads, 1, [&](int64_t p0, int64_t p1) {
        ChunkScratch s;
        for (int64_t p = p0; p < p1; ++p) {
            const Head x = head_of(a, p);
            for (int64_t c0 = 0; c0 < x.r1 - x.r0; c0 += kChunk)
                chunk_head(a, x, c0, int(std::min<int64_t>(kChunk, x.r1 - x.r0 - c0)), s);
        }
    });
}

// gdn.decode_step: the conv into its scratch (conv.out, g, beta), then the decode rule with the norm reading it.
void decode_step_cpu(Executor& ex, const DecodeStep::Args& a) {
    const RuleArgs r = validate(a);
    if (r.seqs.n_tokens == 0) return;
    conv_cpu(ex, a.conv);
    rule_decode_cpu(ex, r);
}

}  // namespace imp::gdn
