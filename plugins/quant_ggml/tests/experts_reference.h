// quant_ggml tests: random stacked experts (one contiguous [n_expert, rows, cols] buffer plus separate per-expert
// copies of the same bytes), random routing, and the double-precision reference of a grouped matmul with the
// semantics of imp/experts.h (ExpertMatmul), from the plugin's reference dequantization of each expert.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include "ggml_format.h"
#include "ggml_types.h"
#include "random_weights.h"

namespace imp::ggml::test {

struct RandomExperts {
    const TypeInfo* t = nullptr;
    int64_t n_expert = 0, rows = 0, cols = 0;
    uint64_t row_bytes = 0;
    std::vector<uint8_t> raw;                  // [n_expert, rows] ggml rows, contiguous
    std::vector<std::vector<uint8_t>> copies;  // the same bytes, one buffer per expert
    std::vector<float> wdq;                    // reference dequantization, [n_expert, rows, cols]

    std::vector<const uint8_t*> per_expert() const {
        std::vector<const uint8_t*> p;
        for (const auto& c : copies) p.push_back(c.data());
        return p;
    }
};

inline RandomExperts random_experts(const std::string& type, int64_t n_expert, int64_t rows, int64_t cols,
                                    std::mt19937& rng) {
    RandomExperts r;
    r.t = find_type(type);
    r.n_expert = n_expert;
    r.rows = rows;
    r.cols = cols;
    r.row_bytes = uint64_t(cols / r.t->block) * uint64_t(r.t->bytes);
    r.raw = random_blocks(*r.t, n_expert * rows * cols / r.t->block, rng);
    const uint64_t eb = uint64_t(rows) * r.row_bytes;
    for (int64_t e = 0; e < n_expert; ++e)
        r.copies.emplace_back(r.raw.begin() + int64_t(uint64_t(e) * eb), r.raw.begin() + int64_t(uint64_t(e + 1) * eb));
    r.wdq.resize(size_t(n_expert * rows * cols));
    GgmlFormat().dequantize(type, r.raw.data(), n_expert * rows * cols, r.wdq.data());
    return r;
}

// ids: per token top_k distinct experts when top_k <= n_expert (else with repeats); when `bad` and there are at
// least 2 pairs, one pair (not the first) gets an id out of range (-1 or n_expert, alternating by call).
// weights: uniform in [0.05, 1).
struct Routing {
    std::vector<int32_t> ids;
    std::vector<float> weights;
};

inline Routing random_routing(int64_t n_tokens, int64_t top_k, int64_t n_expert, bool bad, std::mt19937& rng) {
    Routing r;
    std::vector<int32_t> perm(static_cast<size_t>(n_expert));
    for (int64_t t = 0; t < n_tokens; ++t) {
        std::iota(perm.begin(), perm.end(), 0);
        std::shuffle(perm.begin(), perm.end(), rng);
        for (int64_t j = 0; j < top_k; ++j)
            r.ids.push_back(top_k <= n_expert ? perm[size_t(j)]
                                              : std::uniform_int_distribution<int32_t>(0, int32_t(n_expert - 1))(rng));
    }
    static int flip = 0;
    const int64_t n_pairs = n_tokens * top_k;
    if (bad && n_pairs >= 2)
        r.ids[size_t(std::uniform_int_distribution<int64_t>(1, n_pairs - 1)(rng))] =
            (flip++ & 1) ? int32_t(n_expert) : -1;
    std::uniform_real_distribution<float> w(0.05f, 1.f);
    for (int64_t p = 0; p < n_pairs; ++p) r.weights.push_back(w(rng));
    return r;
}

// Per (token, slot) pair p: dot[p * rows + r] = sum_c W[ids[p]][r, c] x_row(p)[c] in double and mag (the same
// sum of |products|); zero for a pair whose id is out of range. x: host activations, row stride xs (n_tokens * top_k
// rows when x_per_slot).
struct PairDots {
    int64_t rows = 0;
    std::vector<double> dot, mag;
};

inline PairDots pair_dots(const RandomExperts& w, const std::vector<float>& x, int64_t xs, bool x_per_slot,
                          const Routing& rt, int64_t n_tokens, int64_t top_k) {
    PairDots d;
    d.rows = w.rows;
    d.dot.assign(size_t(n_tokens * top_k * w.rows), 0.0);
    d.mag.assign(d.dot.size(), 0.0);
    for (int64_t p = 0; p < n_tokens * top_k; ++p) {
        const int32_t id = rt.ids[size_t(p)];
        if (id < 0 || id >= w.n_expert) continue;
        const float* xr = x.data() + (x_per_slot ? p : p / top_k) * xs;
        for (int64_t r = 0; r < w.rows; ++r) {
            const float* wr = w.wdq.data() + (id * w.rows + r) * w.cols;
            double s = 0, m = 0;
            for (int64_t c = 0; c < w.cols; ++c) {
                const double v = double(wr[c]) * double(xr[c]);
                s += v;
                m += std::fabs(v);
            }
            d.dot[size_t(p * w.rows + r)] = s;
            d.mag[size_t(p * w.rows + r)] = m;
        }
    }
    return d;
}

// The expected outputs of a grouped matmul, [n_out, rows] with n_out = weighted ? n_tokens : n_tokens * top_k:
// value (double), magnitude (|y0| + sum |weight| sum_c |x_c w_c|: what fp32 rounding error scales with) and whether
// the row is exactly y0 (or 0): an unweighted pair whose id is out of range.
struct Expected {
    int64_t n_out = 0, rows = 0;
    std::vector<double> value, mag;
    std::vector<uint8_t> exact;  // per output row
};

// y0: the initial y (row stride ys) when accumulating, else null.
inline Expected combine(const PairDots& d, int64_t n_expert, const Routing& rt, bool weighted, int64_t n_tokens,
                        int64_t top_k, const std::vector<float>* y0, int64_t ys) {
    Expected e;
    e.rows = d.rows;
    e.n_out = weighted ? n_tokens : n_tokens * top_k;
    e.value.assign(size_t(e.n_out * d.rows), 0.0);
    e.mag.assign(size_t(e.n_out * d.rows), 0.0);
    e.exact.assign(size_t(e.n_out), 0);
    if (y0)
        for (int64_t o = 0; o < e.n_out; ++o)
            for (int64_t r = 0; r < d.rows; ++r) {
                e.value[size_t(o * d.rows + r)] = (*y0)[size_t(o * ys + r)];
                e.mag[size_t(o * d.rows + r)] = std::fabs((*y0)[size_t(o * ys + r)]);
            }
    for (int64_t p = 0; p < n_tokens * top_k; ++p) {
        const int32_t id = rt.ids[size_t(p)];
        const int64_t o = weighted ? p / top_k : p;
        if (id < 0 || id >= n_expert) {
            if (!weighted) e.exact[size_t(o)] = 1;
            continue;
        }
        const double wt = weighted ? double(rt.weights[size_t(p)]) : 1.0;
        for (int64_t r = 0; r < d.rows; ++r) {
            e.value[size_t(o * d.rows + r)] += wt * d.dot[size_t(p * d.rows + r)];
            e.mag[size_t(o * d.rows + r)] += std::fabs(wt) * d.mag[size_t(p * d.rows + r)];
        }
    }
    return e;
}

inline Expected expected(const RandomExperts& w, const std::vector<float>& x, int64_t xs, bool x_per_slot,
                         const Routing& rt, bool weighted, int64_t n_tokens, int64_t top_k,
                         const std::vector<float>* y0, int64_t ys) {
    return combine(pair_dots(w, x, xs, x_per_slot, rt, n_tokens, top_k), w.n_expert, rt, weighted, n_tokens, top_k,
                   y0, ys);
}

inline std::vector<float> random_floats(size_t n, std::mt19937& rng) {
    std::normal_distribution<float> nd(0.f, 1.f);
    std::vector<float> v(n);
    for (auto& f : v) {
        f = nd(rng);
        if (f == 0.f) f = 0.375f;  // non-zero inputs
    }
    return v;
}

}  // namespace imp::ggml::test
