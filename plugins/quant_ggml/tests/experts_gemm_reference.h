// quant_ggml tests: the reference of the grouped expert GEMM (cuda/experts_gemm.cuh). The GEMM multiplies bf16
// operands with fp32 accumulation: weights dequantized to bf16 (round to nearest even of the reference value) and
// activations (or silu(gate) * up of [gate | up] rows) rounded to bf16. Its reference is therefore the
// double-precision grouped matmul (experts_reference.h) of those rounded operands; only the order and precision of
// the fp32 accumulation differ.
#pragma once
#include <cmath>
#include <vector>

#include "experts_reference.h"
#include "imp/dtype.h"

namespace imp::ggml::test {

inline float bf16_round(float v) {
    return imp::bf16_to_f32(imp::f32_to_bf16(v));
}

// w with its reference dequantization rounded to bf16 (what the GEMM's MMAs multiply).
inline RandomExperts bf16_weights(const RandomExperts& w) {
    RandomExperts r;
    r.t = w.t;
    r.n_expert = w.n_expert;
    r.rows = w.rows;
    r.cols = w.cols;
    r.row_bytes = w.row_bytes;
    r.wdq.resize(w.wdq.size());
    for (size_t i = 0; i < w.wdq.size(); ++i) r.wdq[i] = bf16_round(w.wdq[i]);
    return r;
}

// The GEMM's input rows: n_rows rows of `cols` floats (stride cols) from x (stride xs), each element bf16(x), or
// with glu bf16(silu(gate) * up) of the row's [gate | up] halves (silu(g) = g / (1 + exp(-g)), in float).
inline std::vector<float> bf16_inputs(const std::vector<float>& x, int64_t xs, int64_t n_rows, int64_t cols,
                                      bool glu) {
    std::vector<float> r(size_t(n_rows * cols));
    for (int64_t t = 0; t < n_rows; ++t)
        for (int64_t c = 0; c < cols; ++c) {
            float v = x[size_t(t * xs + c)];
            if (glu) {
                const float u = x[size_t(t * xs + cols + c)];
                v = v / (1.f + std::exp(-v)) * u;
            }
            r[size_t(t * cols + c)] = bf16_round(v);
        }
    return r;
}

}  // namespace imp::ggml::test
