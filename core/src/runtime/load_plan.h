// The load plan: every weight the model's layers declare, resolved against the file before anything is uploaded —
// presence and shape checks, auxiliary tensors, fused (row-concatenated) weights, the quant format of each matrix and
// its device bytes — then the upload itself. The engine sums the plan into its memory plan and admits or refuses
// the model before load_weights() runs.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "imp/arch.h"
#include "imp/executor.h"
#include "imp/layer.h"
#include "imp/model.h"
#include "imp/quant_format.h"
#include "imp/registry.h"

namespace imp {

// One declared weight, as planned.
struct WeightRequest_ {
    WeightSpec spec;
    std::string user;  // who asked first, for messages ("llama.attention (layer 3)")
    const TensorInfo* tensor = nullptr;
    WeightSource source;
    const QuantFormat* format = nullptr;
    uint64_t device_bytes = 0;
    bool absorbed = false;  // a part of a fused (concat) weight that was built: not loaded on its own
};

// The uploaded weights, by name (what Layer::bind sees).
class Weights final : public WeightSet {
public:
    std::map<std::string, std::unique_ptr<Weight>> matrices;
    std::map<std::string, float*> vectors;
    const Weight* matrix(const std::string& name) const override;
    const float* vector(const std::string& name) const override;
};

struct LoadPlan {
    std::vector<WeightRequest_> requests;
    uint64_t weight_bytes = 0;  // device bytes of every planned weight
    int fused = 0;              // fused matrices built from several file tensors
};

// Collects the weights of desc (embedding, layers, output norm, LM head), checks them against src and plans each.
// fuse: build WeightSpec::concat weights when possible. Throws imp::Error naming the tensor, the layer and the file.
LoadPlan plan_weights(const ModelSource& src, const Registry& reg, const Executor& ex, const ModelDesc& desc, bool fuse);
// Uploads every planned weight into out (load progress on stderr for big files).
void load_weights(const ModelSource& src, LoadPlan& plan, Executor& ex, Weights& out);

std::string shape_str(const std::vector<int64_t>& s);
std::string human_bytes(uint64_t b);
inline uint64_t round64(uint64_t b) { return (b + 63) / 64 * 64; }

}  // namespace imp
