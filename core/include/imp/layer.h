// imp SDK: a Layer is one block of a model (attention, dense FFN, MoE FFN, gated-delta-net mixer, ...).
// It declares the weights it needs and the per-sequence state it keeps; the core checks the file against the
// declaration, uploads the weights through the QuantFormats, owns the state, and calls forward().
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "imp/dtype.h"
#include "imp/executor.h"
#include "imp/export.h"
#include "imp/metadata.h"

namespace imp {

class Weight;
class ExpertWeights;
class Registry;

struct WeightSpec {
    // Matrix: a Weight through a QuantFormat (role Linear); Vector: plain fp32 on the device; Experts: an
    // ExpertWeights through a QuantFormat (role Experts).
    enum class Use { Matrix, Vector, Experts };
    std::string name;                   // tensor name in the file (Experts from per-expert tensors: the weight's name)
    // Expected LOGICAL shape, outermost first: [rows, cols] for Matrix ([out, in]), [n_expert, rows, cols] for
    // Experts. For Matrix and Experts the quant format that takes the weight says which shape it reads from the file
    // (a packed FP4 tensor U8 [out, in/2] reads as [out, in]); the core rejects a file whose shape differs.
    std::vector<int64_t> shape;
    Use use = Use::Matrix;
    bool optional = false;
    // Vector weights the arch computes instead of reading them from the file (e.g. Llama-3 rope frequency factors
    // derived from a config.json rope_scaling): when non-empty, the core uploads these values under `name`
    // (numel must equal the shape) and does not look the name up in the file.
    std::vector<float> values;
    // Matrix weights: the row concatenation of these tensors (each also declared as its own spec by the layer), e.g.
    // q, k and v as one [q + k + v rows, cols] weight so one matmul computes all three. `name` is then not a file
    // tensor. The core builds it when every part is in the file, one format takes every part and that format's plan
    // accepts the concatenation (each part keeps its own scales); it then does not load the parts. Otherwise it
    // loads the parts and WeightSet::matrix(name) returns null. [plugin.core] fuse_weights = false turns fusion
    // off. Experts weights fuse the same way per expert: parts [n_expert, rows_i, cols] give [n_expert, sum rows_i,
    // cols] (expert e's rows of each part in order, e.g. gate|up of every expert in one grouped matmul); absent:
    // WeightSet::experts(name) returns null.
    std::vector<std::string> concat;
    // Experts weights: the file holds either one tensor `name` of the logical shape (a GGUF 3-D
    // "blk.N.ffn_gate_exps.weight", or an HF fused 3-D "model.layers.N.mlp.experts.gate_up_proj" [n_expert, 2 * ff,
    // n_embd] / "...down_proj" [n_expert, n_embd, ff]: both [n_expert, out, in]), or, when that tensor is not in the
    // file and expert_pattern is set, one [rows, cols] tensor per expert named by expert_pattern with "{e}" replaced
    // by 0 .. n_expert - 1 ("model.layers.N.mlp.experts.{e}.gate_proj.weight"), gathered into one weight.
    std::string expert_pattern;
    // Experts weights: experts per token the layer routes to (ExpertMatmul::top_k), for the workspace plan.
    int64_t top_k = 1;
};

// Given to Layer::bind: the uploaded weights, by name. Absent optional weights come back as nullptr.
class WeightSet {
public:
    virtual ~WeightSet() = default;
    virtual const Weight* matrix(const std::string& name) const = 0;
    virtual const float* vector(const std::string& name) const = 0;
    // WeightSpec::Use::Experts weights (null when absent; a set without expert weights need not override it).
    virtual const ExpertWeights* experts(const std::string& name) const {
        (void)name;
        return nullptr;
    }
};

// One component of a layer's per-sequence recurrent state (e.g. a conv window and a state matrix), row-major.
struct StateComponent {
    std::string name;
    std::vector<int64_t> shape;
    DType dtype = DType::F32;
};

// Per-sequence state a layer keeps between forward calls: KV rows in the engine's paged pool, or fixed recurrent
// state. The engine allocates a pool of recurrent slots per layer (one per sequence it can hold, plus one for
// padding rows), zeroes a slot when a sequence is added and can copy one slot to another.
struct IMP_API StateSpec {
    enum class Kind { None, KV, Recurrent };
    Kind kind = Kind::None;
    int n_kv_heads = 0, head_dim = 0;          // KV: one K and one V row of n_kv_heads*head_dim per position
    std::vector<StateComponent> components;    // Recurrent
    static constexpr uint64_t kAlign = 256;    // each component starts on this byte boundary inside a slot
    // Bytes of component i and its byte offset inside a slot; bytes of a whole slot.
    uint64_t component_bytes(size_t i) const;
    uint64_t component_offset(size_t i) const;
    uint64_t slot_bytes() const;
};

// A layer's recurrent-state pool: component c of slot s is at base + s * slot_bytes + spec.component_offset(c).
// The slot of sequence j of a step is StepBatch::state_slots[j] (device).
struct StateView {
    void* base = nullptr;
    uint64_t slot_bytes = 0;
    int32_t n_slots = 0;
};

struct LayerContext {
    Executor& ex;
    const StepBatch& batch;         // the step's rows and sequences (hidden has batch.n_tokens rows)
    KVCacheView kv;                 // this layer's KV pool, valid when state().kind == KV
    StateView state;                // this layer's recurrent-state pool, valid when state().kind == Recurrent
    float* scratch = nullptr;       // device, at least scratch_floats(batch.n_tokens) floats, shared by all layers
};

class Layer {
public:
    virtual ~Layer() = default;
    virtual std::string kind() const = 0;
    virtual std::vector<WeightSpec> weight_specs() const = 0;
    virtual void bind(const WeightSet& w) = 0;
    virtual StateSpec state() const { return {}; }
    // Registered ops (Registry::add_op names) forward() calls besides the Executor's own; the engine checks before
    // any weight is uploaded that the executor's device has each of them.
    virtual std::vector<std::string> required_ops() const { return {}; }
    virtual int64_t scratch_floats(int64_t n_tokens) const = 0;
    // hidden: [batch.n_tokens, n_embd], updated in place (the layer adds its residual itself).
    virtual void forward(LayerContext& ctx, float* hidden) = 0;
    // Decode steps with [plugin.core] l2_prefetch: called (by the engine) just before the layer before this one runs,
    // to queue Executor::prefetch_l2 of the weights this layer's next forward reads whole (not experts picked at
    // run time), in one call. Changes no result; the default queues nothing.
    virtual void prefetch_weights(Executor& ex) const { (void)ex; }
};

// Parameters a layer kind is built from: the model's hyper-parameters under documented keys (each layer kind
// documents the keys it reads), the tensor-name prefix of this layer ("blk.3."), and its index.
struct LayerParams {
    const Metadata* hparams = nullptr;
    std::string prefix;
    int index = 0;
    const Registry* registry = nullptr;  // set by Registry::make_layer: resolve ops here (registry->op<Op>())
};

}  // namespace imp
