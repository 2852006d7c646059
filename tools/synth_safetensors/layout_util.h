// synth-safetensors: building blocks of the checkpoint layouts: one weight in each storage (BF16, ModelOpt NVFP4,
// compressed-tensors NVFP4, ModelOpt FP8) with values scaled to a sane magnitude (rows of ~unit norm products).
#pragma once
#include <cmath>
#include <string>
#include <vector>

#include "layout.h"

namespace synth_st {

inline std::string num(double v) {
    char b[64];
    std::snprintf(b, sizeof b, "%.9g", v);
    return b;
}

inline void bf16_weight(std::vector<Tensor>& ts, const std::string& name, std::vector<int64_t> shape) {
    const double cols = double(shape.back());
    ts.push_back({name, "BF16", std::move(shape), Fill::Bf16Uniform, float(std::sqrt(3.0 / cols))});
}
inline void bf16_norm(std::vector<Tensor>& ts, const std::string& name, int64_t n, float v = 1.f) {
    ts.push_back({name, "BF16", {n}, Fill::Bf16Near, v});
}
// w = e2m1 * e4m3 * global with E2M1 RMS ~2.9 and scales ~0.75: global ~ 1 / (2.2 sqrt(cols)).
inline float nvfp4_global(int64_t cols) { return float(1.0 / (2.2 * std::sqrt(double(cols)))); }

// ModelOpt: X.weight U8 [out, in/2], X.weight_scale F8_E4M3 [out, in/16], X.weight_scale_2 F32 [], X.input_scale.
inline void modelopt_nvfp4(std::vector<Tensor>& ts, const std::string& m, int64_t rows, int64_t cols) {
    ts.push_back({m + ".weight", "U8", {rows, cols / 2}, Fill::Fp4Codes, 0.f});
    ts.push_back({m + ".weight_scale", "F8_E4M3", {rows, cols / 16}, Fill::E4m3Scales, 0.f});
    ts.push_back({m + ".weight_scale_2", "F32", {}, Fill::F32Const, nvfp4_global(cols)});
    ts.push_back({m + ".input_scale", "F32", {}, Fill::F32Const, 1.f / 448.f});
}
// compressed-tensors: X.weight_packed, X.weight_scale, X.weight_global_scale [1] (reciprocal), input_global_scale.
inline void ct_nvfp4(std::vector<Tensor>& ts, const std::string& m, int64_t rows, int64_t cols) {
    ts.push_back({m + ".weight_packed", "U8", {rows, cols / 2}, Fill::Fp4Codes, 0.f});
    ts.push_back({m + ".weight_scale", "F8_E4M3", {rows, cols / 16}, Fill::E4m3Scales, 0.f});
    ts.push_back({m + ".weight_global_scale", "F32", {1}, Fill::F32Const, 1.f / nvfp4_global(cols)});
    ts.push_back({m + ".input_global_scale", "F32", {1}, Fill::F32Const, 448.f});
}
// ModelOpt FP8 per tensor: X.weight F8_E4M3 [out, in], X.weight_scale F32 [], X.input_scale F32 [].
inline void modelopt_fp8(std::vector<Tensor>& ts, const std::string& m, int64_t rows, int64_t cols) {
    ts.push_back({m + ".weight", "F8_E4M3", {rows, cols}, Fill::Fp8Codes, 0.f});
    ts.push_back({m + ".weight_scale", "F32", {}, Fill::F32Const, float(1.0 / (0.9 * std::sqrt(double(cols))))});
    ts.push_back({m + ".input_scale", "F32", {}, Fill::F32Const, 1.f / 448.f});
}

}  // namespace synth_st
