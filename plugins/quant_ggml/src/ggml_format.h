// quant_ggml: the "ggml" QuantFormat: F32, F16, BF16 and the ggml block quants as stored in GGUF files (and plain
// float safetensors), one file tensor per weight or part (no scale tensors): matrices (fused row concatenations
// included), embeddings, LM heads and stacked experts, on the CPU and (cuda/) CUDA executors.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "imp/quant_format.h"

namespace imp::ggml {

class GgmlFormat final : public QuantFormat {
public:
    std::string name() const override { return "ggml"; }
    std::vector<std::string> types() const override;
    // The CUDA kernels use bf16 tensor-core MMA (mma.m16n8k16.bf16): Ampere or newer.
    int min_compute_capability() const override { return 80; }
    // Accepts a request whose tensors are all of one ggml type, each [rows, cols] as stored (3-D
    // [n_expert, rows, cols] for a stacked Experts tensor), with no weight_* scale tensors beside them. Refuses
    // (with the reason) other types, scaled sources, types without CUDA kernels on a CUDA executor, and, on CUDA,
    // a row concatenation of block types whose parts before the last are not whole 16-row groups (the tiled layout).
    WeightPlan plan(const WeightRequest& req, const Executor& ex) const override;
    std::unique_ptr<Weight> load(const WeightRequest& req, Executor& ex) const override;
    std::unique_ptr<ExpertWeights> load_experts(const WeightRequest& req, Executor& ex) const override;
    void dequantize(const WeightSource& src, int64_t row0, int64_t nrows, float* out) const override;
    // One raw buffer: n elements of `type` (a whole number of blocks) from a block boundary.
    void dequantize(const std::string& type, const uint8_t* data, int64_t n, float* out) const;
};

}  // namespace imp::ggml
