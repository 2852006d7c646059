// quant_fp8: the "fp8" QuantFormat: FP8 E4M3 weights of ModelOpt (FP8, FP8_PER_CHANNEL_PER_TOKEN, the FP8 layers of
// MIXED_PRECISION) and compressed-tensors (float-quantized) checkpoints, per-tensor or per-channel scales, as
// linear, LM head, embedding and expert weights. On the CPU executor the weights keep E4M3 bytes and per-row (or
// per-tensor) fp32 scales and dequantize exactly (fp8_ref.h); on CUDA they go to the plugin's kernels (cuda/).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "imp/quant_format.h"

namespace imp::fp8 {

class Fp8Format final : public QuantFormat {
public:
    std::string name() const override { return "fp8"; }
    std::vector<std::string> types() const override { return {"FP8_E4M3"}; }
    int priority() const override { return 10; }
    // The CUDA kernels use Hopper's FP8 tensor cores (sm_90a).
    int min_compute_capability() const override { return 90; }
    WeightPlan plan(const WeightRequest& req, const Executor& ex) const override;
    std::unique_ptr<Weight> load(const WeightRequest& req, Executor& ex) const override;
    std::unique_ptr<ExpertWeights> load_experts(const WeightRequest& req, Executor& ex) const override;
    void dequantize(const WeightSource& src, int64_t row0, int64_t nrows, float* out) const override;
};

}  // namespace imp::fp8
