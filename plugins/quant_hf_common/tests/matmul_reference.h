// quant_fp8 / quant_nvfp4 tests: a loaded Weight / ExpertWeights against the format's dequantize() and a double
// dot product (matmul, accumulate, get_rows; grouped matmul with routing weights, per-slot activations and invalid
// ids), on random activations.
#pragma once
#include <catch2/catch.hpp>

#include <cmath>
#include <random>
#include <vector>

#include "imp/executor.h"
#include "imp/quant_format.h"

namespace imp::quant_test {

inline std::vector<float> random_floats(size_t n, uint32_t seed) {
    std::mt19937 g(seed);
    std::normal_distribution<float> d(0.f, 1.f);
    std::vector<float> v(n);
    for (auto& x : v) x = d(g);
    return v;
}

// |got - want| <= 1e-5 * (sum |w x| + tiny): fp32 accumulation of products that are exact in double.
inline void check_close(const std::vector<float>& got, const std::vector<double>& want,
                        const std::vector<double>& mag) {
    int bad = 0;
    for (size_t i = 0; i < got.size(); ++i)
        if (std::abs(double(got[i]) - want[i]) > 1e-5 * mag[i] + 1e-30 && bad++ < 5)
            UNSCOPED_INFO("output " << i << ": " << got[i] << " vs " << want[i]);
    CHECK(bad == 0);
}

inline void check_weight(const QuantFormat& f, const WeightRequest& req, Executor& ex) {
    const int64_t rows = req.rows(), cols = req.cols();
    std::vector<float> w(size_t(rows * cols));
    f.dequantize(req.source, 0, rows, w.data());
    auto weight = f.load(req, ex);
    REQUIRE(weight->rows() == rows);
    REQUIRE(weight->cols() == cols);
    CHECK(weight->bytes() == f.plan(req, ex).device_bytes);
    for (int64_t n : {1, 2, 5}) {
        const auto x = random_floats(size_t(n * cols), uint32_t(n));
        std::vector<float> y(size_t(n * rows), 1.f);
        std::vector<double> want(y.size()), mag(y.size());
        for (int64_t t = 0; t < n; ++t)
            for (int64_t r = 0; r < rows; ++r) {
                double s = 0, m = 0;
                for (int64_t c = 0; c < cols; ++c) {
                    s += double(w[size_t(r * cols + c)]) * x[size_t(t * cols + c)];
                    m += std::abs(double(w[size_t(r * cols + c)]) * x[size_t(t * cols + c)]);
                }
                want[size_t(t * rows + r)] = s + 1.0;  // accumulate onto 1
                mag[size_t(t * rows + r)] = m + 1.0;
            }
        weight->matmul(ex, x.data(), cols, y.data(), rows, n, true);
        check_close(y, want, mag);
    }
    const int32_t ids[3] = {int32_t(rows - 1), 0, int32_t(rows / 2)};
    std::vector<float> got(size_t(3 * cols));
    weight->get_rows(ex, ids, 3, got.data());
    for (int i = 0; i < 3; ++i)
        for (int64_t c = 0; c < cols; ++c) CHECK(got[size_t(i * cols + c)] == w[size_t(ids[i] * cols + c)]);
}

inline void check_experts(const QuantFormat& f, const WeightRequest& req, Executor& ex) {
    const int64_t ne = req.shape[0], rows = req.shape[1], cols = req.shape[2];
    std::vector<float> w(size_t(ne * rows * cols));
    f.dequantize(req.source, 0, ne * rows, w.data());
    auto experts = f.load_experts(req, ex);
    CHECK(experts->bytes() == f.plan(req, ex).device_bytes);
    const int64_t n = 3, k = 2;
    const std::vector<int32_t> ids = {int32_t(ne - 1), 0, 1, -1, int32_t(ne), int32_t(ne - 1)};  // invalid ids too
    const std::vector<float> rw = {0.25f, 0.75f, 0.5f, 0.5f, 1.f, -0.5f};
    for (int mode = 0; mode < 3; ++mode) {  // 0: per slot, 1: weighted sum, 2: per-slot x, weighted, accumulate
        INFO("mode " << mode);
        const bool weighted = mode > 0, per_slot_x = mode == 2, acc = mode == 2;
        const auto x = random_floats(size_t((per_slot_x ? n * k : n) * cols), uint32_t(10 + mode));
        const int64_t yr = weighted ? n : n * k;
        std::vector<float> y(size_t(yr * rows), acc ? 2.f : 7.f);
        std::vector<double> want(y.size(), acc ? 2.0 : 0.0), mag(y.size(), acc ? 2.0 : 0.0);
        for (int64_t t = 0; t < n; ++t)
            for (int64_t j = 0; j < k; ++j) {
                const int64_t p = t * k + j, e = ids[size_t(p)];
                if (e < 0 || e >= ne) continue;
                const float* xr = x.data() + (per_slot_x ? p : t) * cols;
                for (int64_t r = 0; r < rows; ++r) {
                    double s = 0, m = 0;
                    for (int64_t c = 0; c < cols; ++c) {
                        s += double(w[size_t((e * rows + r) * cols + c)]) * xr[c];
                        m += std::abs(double(w[size_t((e * rows + r) * cols + c)]) * xr[c]);
                    }
                    const size_t o = size_t((weighted ? t : p) * rows + r);
                    want[o] += weighted ? rw[size_t(p)] * s : s;
                    mag[o] += weighted ? std::abs(rw[size_t(p)]) * m : m;
                }
            }
        ExpertMatmul m;
        m.x = x.data();
        m.x_stride = cols;
        m.x_per_slot = per_slot_x;
        m.ids = ids.data();
        m.weights = weighted ? rw.data() : nullptr;
        m.n_tokens = n;
        m.top_k = k;
        m.y = y.data();
        m.y_stride = rows;
        m.accumulate = acc;
        experts->grouped_matmul(ex, m);
        check_close(y, want, mag);
    }
}

}  // namespace imp::quant_test
