// The load plan: every weight the model's layers declare, resolved against the file before anything is uploaded.
// Vectors are checked here (presence, shape, F32/F16/BF16); matrices and expert stacks become WeightRequests (the
// file tensors under each name's prefix, per fused part, per expert, plus the model's quantization config) that the
// quant formats plan: one format is chosen per weight (profile list, else priority; ties and refusals are errors
// naming every format), its plan's logical shape is checked against the declaration, and its device bytes are
// summed. The engine adds the plan to its memory plan and admits or refuses the model before load_weights() runs.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "imp/arch.h"
#include "imp/executor.h"
#include "imp/experts.h"
#include "imp/layer.h"
#include "imp/model.h"
#include "imp/quant_format.h"
#include "imp/registry.h"
#include "model/host_budget.h"  // human_bytes
#include "runtime/load_phase.h"

namespace imp {

struct PlanOptions {
    bool fuse = true;                  // build WeightSpec::concat weights when the format takes them
    std::vector<std::string> formats;  // the profile's [model] formats: allowed formats in order of preference;
                                       // empty: every registered format, highest priority first
    std::string formats_where;         // where the formats were set, named in their errors ("<file>:<line>")
    int64_t max_tokens = 1;            // the most rows one matmul will see (WeightRequest::max_tokens)
    int compute_capability = 0;        // the device's (major*10+minor); 0: not a CUDA device, nothing to check
};

// One declared weight, as planned.
struct PlannedWeight {
    WeightSpec spec;
    std::string user;                   // who asked first, for messages ("llama.attention (layer 3)")
    WeightRole role = WeightRole::Linear;
    const TensorInfo* tensor = nullptr; // Vector: the file tensor (null for computed values or an absent optional)
    WeightRequest request;              // Matrix / Experts: what the formats were asked
    const QuantFormat* format = nullptr;
    WeightPlan plan;                    // the chosen format's plan
    uint64_t device_bytes = 0;
    bool present = false;               // false: an absent optional weight, or a fused weight that was not built
    bool absorbed = false;              // a part of a fused (concat) weight that was built: not loaded on its own
};

// The uploaded weights, by name (what Layer::bind sees).
class Weights final : public WeightSet {
public:
    std::map<std::string, std::unique_ptr<Weight>> matrices;
    std::map<std::string, std::unique_ptr<ExpertWeights>> expert_stacks;
    std::map<std::string, float*> vectors;
    std::vector<LoadPhase> load_phases;  // what load_weights() spent, per kind of weight
    const Weight* matrix(const std::string& name) const override;
    const float* vector(const std::string& name) const override;
    const ExpertWeights* experts(const std::string& name) const override;
};

struct LoadPlan {
    std::shared_ptr<const QuantConfig> quant;  // the model's quantization config (requests point into it)
    std::vector<PlannedWeight> weights;
    uint64_t weight_bytes = 0;     // device bytes of every planned weight
    // The largest WeightPlan::workspace_bytes; load_weights() raises it to what the loaded weights ask for a matmul
    // over max_tokens rows (Weight::workspace_bytes, ExpertWeights::workspace_bytes with the spec's top_k).
    uint64_t workspace_bytes = 0;
    int fused = 0;                 // fused matrices built from several file tensors
};

// Collects the weights of desc (embedding, layers, output norm, LM head), checks them against src and plans each.
// Throws imp::Error naming the tensor, the layer and the file (and, for a weight no format takes, every format's
// reason) before anything is allocated.
LoadPlan plan_weights(const ModelSource& src, const Registry& reg, const Executor& ex, const ModelDesc& desc,
                      const PlanOptions& opt);
// Uploads every planned weight into out (load progress on stderr for big files); each weight is checked to have
// the planned shape. out.load_phases gets the time and bytes per kind of weight.
void load_weights(const ModelSource& src, LoadPlan& plan, Executor& ex, Weights& out);

// The compute capability PlanOptions wants for ex: its CudaHandles::cc, or 0 for a device without them.
int device_compute_capability(const Executor& ex);
// Why format f cannot run on a device of compute capability cc ("needs compute capability 10.0 or newer, the
// device has 9.0"), or "" when it can (always for cc 0, i.e. not a CUDA device).
std::string capability_problem(const QuantFormat& f, int cc);

std::string shape_str(const std::vector<int64_t>& s);
inline uint64_t round64(uint64_t b) { return (b + 63) / 64 * 64; }

}  // namespace imp
