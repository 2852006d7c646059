// tests/plugins/test_format: "packed4", a test QuantFormat with a three-tensor packed weight laid out like ModelOpt
// NVFP4 but CPU-only and simple, so the load plan's multi-tensor paths can be tested without a GPU:
//   X.weight          U8 [rows, cols/2]       two 4-bit E2M1 codes per byte, low nibble = even column
//   X.weight_scale    F8_E4M3 or F32 [rows, cols/16]   one scale per 16 columns
//   X.weight_scale_2  F32 scalar (or [1])     one global scale
//   W[r, c] = e2m1(code[r, c]) * weight_scale[r, c / 16] * weight_scale_2
// Fused parts keep their own scales; experts come from a 3-D stack (U8 [E, rows, cols/2], scales [E, rows,
// cols/16], weight_scale_2 [E]) or from per-expert tensors. It refuses modules the model's quantization config
// excludes and group sizes other than 16. Name, priority and minimum compute capability are set per instance, so
// a test can register two of them.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "imp/quant_format.h"

namespace imp::testfmt {

class PackedFormat final : public QuantFormat {
public:
    explicit PackedFormat(std::string name = "packed4", int priority = 0, int min_cc = 0)
        : name_(std::move(name)), priority_(priority), min_cc_(min_cc) {}
    std::string name() const override { return name_; }
    std::vector<std::string> types() const override { return {"U8+F8_E4M3+F32", "U8+F32+F32"}; }
    int priority() const override { return priority_; }
    int min_compute_capability() const override { return min_cc_; }
    WeightPlan plan(const WeightRequest& req, const Executor& ex) const override;
    std::unique_ptr<Weight> load(const WeightRequest& req, Executor& ex) const override;
    std::unique_ptr<ExpertWeights> load_experts(const WeightRequest& req, Executor& ex) const override;
    void dequantize(const WeightSource& src, int64_t row0, int64_t nrows, float* out) const override;

    // The value of a 4-bit E2M1 code: magnitudes {0, 0.5, 1, 1.5, 2, 3, 4, 6}, bit 3 the sign.
    static float e2m1(uint8_t code);

private:
    std::string name_;
    int priority_, min_cc_;
};

}  // namespace imp::testfmt
