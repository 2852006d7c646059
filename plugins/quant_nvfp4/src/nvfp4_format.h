// quant_nvfp4: the "nvfp4" QuantFormat: NVFP4 weights of ModelOpt (NVFP4, W4A16_NVFP4, MIXED_PRECISION) and
// compressed-tensors (nvfp4-pack-quantized) checkpoints as linear, LM head, embedding and expert weights, run
// weight-only (activation scales are read and ignored). On the CPU executor the weights keep the canonical layout
// (nvfp4_ref.h) and dequantize exactly; on CUDA they go to the plugin's kernels (cuda/, when built).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "imp/quant_format.h"

namespace imp::nvfp4 {

class Nvfp4Format final : public QuantFormat {
public:
    std::string name() const override { return "nvfp4"; }
    std::vector<std::string> types() const override { return {"NVFP4"}; }
    // Above the generic formats: a U8 tensor with NVFP4 scales is this format's.
    int priority() const override { return 10; }
    // The CUDA kernels need Hopper (sm_90a).
    int min_compute_capability() const override { return 90; }
    WeightPlan plan(const WeightRequest& req, const Executor& ex) const override;
    std::unique_ptr<Weight> load(const WeightRequest& req, Executor& ex) const override;
    std::unique_ptr<ExpertWeights> load_experts(const WeightRequest& req, Executor& ex) const override;
    void dequantize(const WeightSource& src, int64_t row0, int64_t nrows, float* out) const override;
};

}  // namespace imp::nvfp4
