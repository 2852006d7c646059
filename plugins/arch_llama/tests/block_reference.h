// Double-precision references of the shared blocks' math, written from the model definitions (transformers'
// LlamaAttention / Qwen3NextAttention / Qwen3NextRMSNorm, FORMATS.md §3), independent of the blocks' code: one
// sequence at a time, every position recomputed from the layer inputs of the positions before it.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace imp::blocks_test {

using Vec = std::vector<double>;

inline Vec to_double(const std::vector<float>& v) { return Vec(v.begin(), v.end()); }

// x / sqrt(mean(x^2) + eps) * (offset + w)  (offset 1: zero-centred weights)
inline Vec rms_norm(const double* x, int64_t n, const Vec& w, double offset, double eps) {
    double ss = 0;
    for (int64_t i = 0; i < n; ++i) ss += x[i] * x[i];
    const double r = 1.0 / std::sqrt(ss / double(n) + eps);
    Vec y(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) y[size_t(i)] = x[i] * r * (offset + w[size_t(i)]);
    return y;
}

// y = W x for W [rows, cols] row-major.
inline Vec matvec(const Vec& w, const Vec& x, int64_t rows) {
    const int64_t cols = int64_t(x.size());
    Vec y(size_t(rows), 0.0);
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c) y[size_t(r)] += w[size_t(r * cols + c)] * x[size_t(c)];
    return y;
}

inline double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

struct AttentionRef {
    int64_t n_embd = 0;
    int n_head = 0, n_kv = 0, hd = 0, n_rot = 0;
    double base = 10000, freq_scale = 1;
    bool neox = true, qk_norm = false, gate = false;
    bool gate_halves = false;  // the layout the block must NOT use: all queries, then all gates (for can-fail checks)
    double offset = 0, eps = 1e-6, scale = 0;
    Vec freq_factors;                       // empty: all 1
    Vec norm, wq, wk, wv, wo, q_norm, k_norm;  // wq: [n_head * hd * (gate ? 2 : 1), n_embd]

    // Rotates the first n_rot dims of one head at position pos; the other dims pass through.
    void rope(double* x, int pos) const {
        const int half = n_rot / 2;
        for (int i = 0; i < half; ++i) {
            double inv = freq_scale * std::pow(base, -2.0 * i / n_rot);
            if (!freq_factors.empty()) inv /= freq_factors[size_t(i)];
            const double c = std::cos(pos * inv), s = std::sin(pos * inv);
            const int i0 = neox ? i : 2 * i, i1 = neox ? i + half : 2 * i + 1;
            const double a = x[i0], b = x[i1];
            x[i0] = a * c - b * s;
            x[i1] = b * c + a * s;
        }
    }

    // xs: the layer inputs of positions 0..P-1 of one sequence, [P, n_embd]. Returns what the block adds to each
    // row (o_proj of the attention output), [P, n_embd].
    Vec run(const Vec& xs, int P) const {
        const int64_t qd = int64_t(n_head) * hd, kd = int64_t(n_kv) * hd;
        const double sc = scale > 0 ? scale : 1.0 / std::sqrt(double(hd));
        const size_t np = static_cast<size_t>(P);
        std::vector<Vec> Q(np), G(np), K(np), V(np);
        for (int p = 0; p < P; ++p) {
            const Vec xn = rms_norm(xs.data() + int64_t(p) * n_embd, n_embd, norm, offset, eps);
            const Vec qg = matvec(wq, xn, gate ? 2 * qd : qd);
            Q[size_t(p)].assign(size_t(qd), 0.0);
            G[size_t(p)].assign(size_t(qd), 0.0);
            for (int h = 0; h < n_head; ++h)
                for (int d = 0; d < hd; ++d) {
                    // Qwen3NextAttention: q_proj(x).view(..., n_head, 2 * hd) chunked into [query | gate] per head.
                    const int64_t qi = gate && !gate_halves ? h * 2 * hd + d : h * hd + d;
                    const int64_t gi = gate_halves ? qd + h * hd + d : h * 2 * hd + hd + d;
                    Q[size_t(p)][size_t(h * hd + d)] = qg[size_t(qi)];
                    if (gate) G[size_t(p)][size_t(h * hd + d)] = qg[size_t(gi)];
                }
            K[size_t(p)] = matvec(wk, xn, kd);
            V[size_t(p)] = matvec(wv, xn, kd);
            for (int h = 0; h < n_head; ++h) {
                double* qh = Q[size_t(p)].data() + h * hd;
                if (qk_norm) {
                    const Vec n = rms_norm(qh, hd, q_norm, offset, eps);
                    std::copy(n.begin(), n.end(), qh);
                }
                rope(qh, p);
            }
            for (int g = 0; g < n_kv; ++g) {
                double* kh = K[size_t(p)].data() + g * hd;
                if (qk_norm) {
                    const Vec n = rms_norm(kh, hd, k_norm, offset, eps);
                    std::copy(n.begin(), n.end(), kh);
                }
                rope(kh, p);
            }
        }
        Vec out(size_t(P) * size_t(n_embd));
        for (int p = 0; p < P; ++p) {
            Vec att(size_t(qd), 0.0);
            for (int h = 0; h < n_head; ++h) {
                const int g = h / (n_head / n_kv);
                Vec s(size_t(p + 1));
                double mx = -1e300, sum = 0;
                for (int j = 0; j <= p; ++j) {
                    double dot = 0;
                    for (int d = 0; d < hd; ++d) dot += Q[size_t(p)][size_t(h * hd + d)] * K[size_t(j)][size_t(g * hd + d)];
                    s[size_t(j)] = dot * sc;
                    mx = std::max(mx, s[size_t(j)]);
                }
                for (auto& e : s) sum += (e = std::exp(e - mx));
                for (int j = 0; j <= p; ++j)
                    for (int d = 0; d < hd; ++d)
                        att[size_t(h * hd + d)] += s[size_t(j)] / sum * V[size_t(j)][size_t(g * hd + d)];
            }
            if (gate)
                for (int64_t i = 0; i < qd; ++i) att[size_t(i)] *= sigmoid(G[size_t(p)][size_t(i)]);
            const Vec o = matvec(wo, att, n_embd);
            std::copy(o.begin(), o.end(), out.begin() + int64_t(p) * n_embd);
        }
        return out;
    }
};

struct FfnRef {
    int64_t n_embd = 0, n_ff = 0;
    double offset = 0, eps = 1e-6;
    Vec norm, gate, up, down;

    // What the block adds to row x: down(silu(gate xn) * up xn).
    Vec run(const double* x) const {
        const Vec xn = rms_norm(x, n_embd, norm, offset, eps);
        const Vec g = matvec(gate, xn, n_ff), u = matvec(up, xn, n_ff);
        Vec a(static_cast<size_t>(n_ff));
        for (int64_t i = 0; i < n_ff; ++i) a[size_t(i)] = g[size_t(i)] * sigmoid(g[size_t(i)]) * u[size_t(i)];
        return matvec(down, a, n_embd);
    }
};

}  // namespace imp::blocks_test
