// imp SDK blocks: RMSNorm weights with an offset (zero-centred norms). The Hugging Face Qwen3-Next / Qwen3.5 family
// stores w and computes y = x_norm * (1 + w) (Qwen3NextRMSNorm, weight initialised to zeros); its GGUF converter
// stores 1 + w instead. The executor's rms_norm (and rope_kv_store's q/k norms) multiply by the weight, so a block
// folds the offset into the weight when the model is built: norm_weight() reads w from the file, adds the offset in
// fp32 on the host and returns a computed Vector weight (WeightSpec::values) under the tensor's own name, which the
// engine uploads in place of the file's tensor. No extra op, nothing extra per step.
#pragma once
#include <cstdint>
#include <string>

#include "imp/blocks/export.h"
#include "imp/layer.h"
#include "imp/model.h"

namespace imp::blocks {

// The Vector weight spec of norm weight `name` of n elements, for `user` (in messages: "attention (layer 3)").
// offset == 0: a plain spec, read from the file by the engine (src may be null). Otherwise src must be given: the
// tensor is read now (F32, F16 or BF16, shape [n]) and values = w + offset. Throws imp::Error naming the file, the
// tensor and the user when the tensor is missing, has another shape or type, or src is null.
IMP_API WeightSpec norm_weight(const ModelSource* src, const std::string& name, int64_t n, float offset,
                               const std::string& user);

}  // namespace imp::blocks
