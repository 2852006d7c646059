// Helpers of the GDN op CPU tests: host data for the rule ops (unit q/k heads, realistic gates, random states and
// shuffled slots) and naive double-precision references written from HF's formulas (torch_recurrent_gated_delta_rule
// with S as [dk, dv], causal_conv1d with the state prepended, Qwen3_5MoeRMSNormGated).
#pragma once
#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "gdn_ops.h"

namespace imp::gdn::test {

struct RuleData {
    Dims d;
    std::vector<int> lens;
    std::vector<int32_t> qsl{0}, token_seq, slots;
    int64_t T = 0, qs = 0, os = 0, ss = 0;
    int n_slots = 0;
    std::vector<float> qkv, g, beta, state, o;

    RuleData(const Dims& dims, std::vector<int> l, uint64_t seed) : d(dims), lens(std::move(l)) {
        std::mt19937_64 rng(seed);
        std::normal_distribution<float> n1(0.f, 1.f);
        std::uniform_real_distribution<float> u(-2.f, 2.f);
        for (size_t s = 0; s < lens.size(); ++s) {
            for (int i = 0; i < lens[s]; ++i) token_seq.push_back(int32_t(s));
            qsl.push_back(qsl.back() + lens[s]);
        }
        T = qsl.back();
        qs = d.conv_dim() + 3;
        os = d.value_dim() + 2;
        ss = d.value_dim() * d.head_k_dim + 5;
        n_slots = int(lens.size()) + 2;
        std::vector<int32_t> all(static_cast<size_t>(n_slots));
        std::iota(all.begin(), all.end(), 0);
        std::shuffle(all.begin(), all.end(), rng);
        slots.assign(all.begin(), all.begin() + std::ptrdiff_t(lens.size()));
        qkv.resize(size_t(T * qs));
        for (auto& x : qkv) x = u(rng);
        for (int64_t t = 0; t < T; ++t)
            for (int h = 0; h < 2 * d.n_k_heads; ++h) {
                float* v = &qkv[size_t(t * qs + int64_t(h) * d.head_k_dim)];
                float n2 = 0.f;
                for (int i = 0; i < d.head_k_dim; ++i) {
                    v[i] = n1(rng);
                    n2 += v[i] * v[i];
                }
                for (int i = 0; i < d.head_k_dim; ++i) v[i] /= std::sqrt(n2);
            }
        std::vector<float> A(size_t(d.n_v_heads)), dt(A.size());
        for (size_t j = 0; j < A.size(); ++j)
            A[j] = std::uniform_real_distribution<float>(0.02f, 16.f)(rng),
            dt[j] = std::uniform_real_distribution<float>(-7.f, -2.f)(rng);
        g.resize(size_t(T * d.n_v_heads));
        beta.resize(g.size());
        for (size_t i = 0; i < g.size(); ++i) {
            const size_t j = i % A.size();
            g[i] = -A[j] * std::log1p(std::exp(1.5f * n1(rng) + dt[j]));
            beta[i] = 1.f / (1.f + std::exp(-2.f * n1(rng)));
        }
        state.resize(size_t(n_slots * ss));
        for (auto& x : state) x = 0.5f * n1(rng);
        o.assign(size_t(T * os), 0.f);
    }
    // Arguments over rows [qsl[s0] ...] of sequences s0..s1-1 (host pointers: the CPU executor's memory).
    RuleArgs args() {
        RuleArgs a;
        a.dims = d;
        a.seqs = {T, int32_t(lens.size()), qsl.data(), token_seq.data(), slots.data(),
                  *std::max_element(lens.begin(), lens.end())};
        a.qkv = qkv.data(), a.qkv_stride = qs, a.g = g.data(), a.beta = beta.data();
        a.state = state.data(), a.state_stride = ss, a.o = o.data(), a.o_stride = os;
        a.scale = 1.f / std::sqrt(float(d.head_k_dim));
        return a;
    }
};

// HF's recurrence in double, S as [dk][dv]; updates `state` (our [dv, dk] layout per head) and writes o.
inline void naive_rule(RuleData& r, std::vector<double>& o) {
    const Dims& d = r.d;
    const int dk = d.head_k_dim, dv = d.head_v_dim;
    o.assign(r.o.size(), 0.0);
    for (size_t s = 0; s < r.lens.size(); ++s)
        for (int h = 0; h < d.n_v_heads; ++h) {
            const int kh = d.k_head_of(h);
            float* st = &r.state[size_t(r.slots[s] * r.ss + int64_t(h) * dv * dk)];
            std::vector<double> S(size_t(dk) * dv);
            for (int i = 0; i < dk; ++i)
                for (int j = 0; j < dv; ++j) S[size_t(i) * dv + j] = st[j * dk + i];
            for (int64_t t = r.qsl[s]; t < r.qsl[s + 1]; ++t) {
                const float* q = &r.qkv[size_t(t * r.qs + int64_t(kh) * dk)];
                const float* k = q + d.key_dim();
                const float* v = &r.qkv[size_t(t * r.qs + 2 * d.key_dim() + int64_t(h) * dv)];
                const double decay = std::exp(double(r.g[size_t(t * d.n_v_heads + h)]));
                const double beta = r.beta[size_t(t * d.n_v_heads + h)];
                for (auto& x : S) x *= decay;
                for (int j = 0; j < dv; ++j) {
                    double kv = 0;
                    for (int i = 0; i < dk; ++i) kv += S[size_t(i) * dv + j] * k[i];
                    const double delta = (v[j] - kv) * beta;
                    for (int i = 0; i < dk; ++i) S[size_t(i) * dv + j] += k[i] * delta;
                }
                for (int j = 0; j < dv; ++j) {
                    double acc = 0;
                    for (int i = 0; i < dk; ++i) acc += S[size_t(i) * dv + j] * q[i] / std::sqrt(double(dk));
                    o[size_t(t * r.os + int64_t(h) * dv + j)] = acc;
                }
            }
            for (int i = 0; i < dk; ++i)
                for (int j = 0; j < dv; ++j) st[j * dk + i] = float(S[size_t(i) * dv + j]);
        }
}

// max |a - b| / max |b|.
template <class A, class B>
double rel_err(const std::vector<A>& a, const std::vector<B>& b) {
    double md = 0, mb = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        md = std::max(md, std::fabs(double(a[i]) - double(b[i])));
        mb = std::max(mb, std::fabs(double(b[i])));
    }
    return md / std::max(mb, 1e-30);
}

}  // namespace imp::gdn::test
