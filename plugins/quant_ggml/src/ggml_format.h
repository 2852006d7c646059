// quant_ggml: the "ggml" QuantFormat: F32, F16, BF16 and the ggml block quants, CPU reference kernels.
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
    bool handles(const WeightSource& src) const override;
    // The CUDA kernels use bf16 tensor-core MMA (mma.m16n8k16.bf16): Ampere or newer.
    int min_compute_capability() const override { return 80; }
    uint64_t device_bytes(const WeightSource& src, const Executor& ex) const override;
    std::unique_ptr<Weight> load(const WeightSource& src, Executor& ex) const override;
    void dequantize(const std::string& type, const uint8_t* data, int64_t n, float* out) const override;
    // Row concatenation: parts of one type and cols; on CUDA, block types need every part but the last to be a
    // whole number of 16-row groups (the tiled layout).
    bool concat_rows(const WeightSource& src, const Executor& ex) const override;
};

}  // namespace imp::ggml
