// imp SDK: a QuantFormat stores the weights of one family of file formats (ggml block quants, NVFP4, FP8, ...) on an
// executor and computes with them. Two levels, as vLLM does: the format plans and loads each weight; the Weight (or
// ExpertWeights) it creates applies it.
//
// Loading, as the engine runs it (core/src/runtime/load_plan.cpp):
//   1. For every weight the model declares it builds a WeightRequest: the weight's name, role and LOGICAL shape, the
//      file tensors that make it up (main tensor + the tensors under its prefix, per fused part, per expert), and the
//      model-level quantization config.
//   2. Every loaded format whose min_compute_capability() the device meets answers plan(): accepted (the tensors it
//      consumes, the logical shape it reads, device and workspace bytes) or refused with a reason.
//   3. The engine picks one format per weight: the first accepting format of the profile's `[model] formats` list
//      when given, else the accepting format of highest priority(); two accepting formats of equal priority are an
//      error naming both; no accepting format is an error naming the tensor, its type and every format's reason.
//   4. It checks the plan's logical shape against the declaration, sums the memory plan, admits the model, and only
//      then calls load() (Linear, Embedding, LmHead) or load_experts() (Experts).
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "imp/error.h"
#include "imp/executor.h"
#include "imp/experts.h"
#include "imp/export.h"
#include "imp/metadata.h"
#include "imp/model.h"
#include "imp/settings.h"

namespace imp {

class Executor;

// What a weight is used for.
//   Linear:    y = x W^T (Weight::matmul), W [rows = out features, cols = in features].
//   Experts:   a stack of n_expert matrices [rows, cols] multiplied by routed ids (ExpertWeights::grouped_matmul).
//   Embedding: rows looked up by token id (Weight::get_rows); when the LM head is tied to the embedding, the same
//              weight is also used for matmul.
//   LmHead:    the final projection to vocabulary logits (Weight::matmul).
enum class WeightRole { Linear, Experts, Embedding, LmHead };

inline const char* role_name(WeightRole r) {
    switch (r) {
        case WeightRole::Linear: return "linear";
        case WeightRole::Experts: return "experts";
        case WeightRole::Embedding: return "embedding";
        case WeightRole::LmHead: return "lm_head";
    }
    return "?";
}

// The file tensors a weight is made of. Exactly one form:
//   - one tensor: `main` (2-D [rows, cols] as stored, possibly packed, e.g. U8 [out, in/2] for FP4; 3-D
//     [n_expert, rows, cols] for stacked experts), with `aux`;
//   - a row concatenation (fused q|k|v, gate|up): `parts`, each a full source with its own main and aux (so every
//     part keeps its own weight_scale / weight_scale_2 / input_scale); the weight is the rows of parts[0], then
//     those of parts[1], ...; `main` and `aux` are empty;
//   - experts gathered from per-expert tensors: `experts`, expert e is experts[e] (a one-tensor source of
//     [rows, cols]); `main` and `aux` are empty.
// aux holds the other tensors under the weight's prefix, keyed by what follows it: for "X.weight" every "X.<s>"
// (weight_scale, weight_scale_2, input_scale, bias, ...) under key "<s>"; for a name without the ".weight" suffix
// ("mlp.experts.gate_up_proj") every "<name>.<s>" and "<name>_<s>" under key "<s>". `main` may be null when the
// named tensor is not in the file but tensors under its prefix are (e.g. compressed-tensors stores "X.weight_packed"
// and no "X.weight"): a format may then take one of the aux tensors as its main tensor.
struct WeightSource {
    const TensorInfo* main = nullptr;
    std::map<std::string, const TensorInfo*> aux;
    std::vector<WeightSource> parts;
    std::vector<WeightSource> experts;

    const TensorInfo* find(const std::string& key) const {
        auto it = aux.find(key);
        return it == aux.end() ? nullptr : it->second;
    }
    // A name for messages: the main tensor, "a + b + c" for parts, "a .. z (n experts)" for experts.
    std::string describe() const {
        if (!parts.empty()) {
            std::string n;
            for (const auto& p : parts) n += (n.empty() ? "" : " + ") + p.describe();
            return n;
        }
        if (!experts.empty())
            return experts.front().describe() + " .. " + experts.back().describe() + " (" +
                   std::to_string(experts.size()) + " experts)";
        if (main) return main->name;
        return aux.empty() ? std::string("(no tensor)") : aux.begin()->second->name;
    }
};

// The model-level quantization config, from a safetensors folder's config.json `quantization_config` and
// ModelOpt's hf_quant_config.json `quantization` (the latter wins for a field both set; lists are merged). All
// fields are empty for GGUF files and unquantized checkpoints.
struct IMP_API QuantConfig {
    std::string method;         // quant_method ("modelopt", "compressed-tensors", "fp8", "gptq", ...); for a bare
                                // hf_quant_config.json its producer.name ("modelopt")
    std::string algo;           // quant_algo ("NVFP4", "W4A16_NVFP4", "FP8", "MIXED_PRECISION", ...); for
                                // quant_method "fp8", "FP8" or, with weight_block_size, "FP8_BLOCK"
    std::string format;         // compressed-tensors "format" ("nvfp4-pack-quantized", "float-quantized", ...)
    std::string kv_cache_algo;  // kv_cache_quant_algo ("FP8", ...)
    int64_t group_size = 0;     // group_size, or config_groups.*.weights.group_size (4-bit float group's, else first)
    // Modules left unquantized: exclude_modules (ModelOpt), ignore (compressed-tensors / config.json) and
    // ignored_layers (AutoFP8). An entry is
    // a shell wildcard ("*mlp.gate*", "lm_head") matched against the whole module name, or "re:<regex>" matched at
    // the start of the name (compressed-tensors' re.match).
    std::vector<std::string> exclude;
    // MIXED_PRECISION: per-module quant_algo and group_size (quantized_layers), keyed by module name.
    struct Layer {
        std::string algo;
        int64_t group_size = 0;
    };
    std::map<std::string, Layer> layers;
    // Where it came from ("<dir>/config.json", "<dir>/hf_quant_config.json"), for messages; empty when none.
    std::vector<std::string> files;

    bool empty() const { return method.empty() && algo.empty() && format.empty() && layers.empty(); }
    // Whether `module` (a weight name without ".weight", e.g. "model.layers.0.mlp.gate") matches an exclude entry.
    bool excluded(const std::string& module) const;
    // The algorithm for `module`: its quantized_layers entry, else "" when excluded, else algo.
    std::string algo_for(const std::string& module) const;
};

// The module a tensor belongs to: its name without a trailing ".weight" ("blk.0.attn_q.weight" -> "blk.0.attn_q").
inline std::string module_of(const std::string& tensor_name) {
    const std::string suffix = ".weight";
    if (tensor_name.size() > suffix.size() &&
        tensor_name.compare(tensor_name.size() - suffix.size(), suffix.size(), suffix) == 0)
        return tensor_name.substr(0, tensor_name.size() - suffix.size());
    return tensor_name;
}

// One weight as the engine asks a format to plan and load it.
struct WeightRequest {
    std::string name;  // the declared name: a file tensor, a fused weight's name, or an experts weight's name
    WeightRole role = WeightRole::Linear;
    // The logical shape the layer declared: [rows, cols], or [n_expert, rows, cols] for Experts. A packed file
    // tensor differs from it (U8 [out, in/2] for FP4 codes); the format maps one to the other.
    std::vector<int64_t> shape;
    WeightSource source;
    const QuantConfig* config = nullptr;  // model-level quantization config; never null from the engine
    int64_t max_tokens = 1;  // the most tokens (rows of x) one matmul will see: sizes WeightPlan::workspace_bytes
    int64_t top_k = 1;       // Experts: slots per token (ExpertMatmul::top_k) the layer will route to
    // The settings of the plugin that registered the format being asked ([plugin.<name>] in the profile, checked
    // against its declarations); never null from the engine. A Weight keeps what it needs of them at load.
    const Settings* settings = nullptr;

    int64_t rows() const { return shape.size() >= 2 ? shape[shape.size() - 2] : 0; }
    int64_t cols() const { return shape.empty() ? 0 : shape.back(); }
    int64_t n_expert() const { return shape.size() == 3 ? shape[0] : 0; }
    std::string module() const { return module_of(name); }
};

// A format's answer to plan(). Refused: accepted == false and reason says why in a few words ("type U8 is not a
// ggml type"; the engine adds the tensor and format names). Accepted: the rest is filled.
struct WeightPlan {
    bool accepted = false;
    std::string reason;
    std::string type;             // storage type for messages and `imp plan` ("Q4_K", "NVFP4")
    std::vector<int64_t> shape;   // the logical shape the format reads from the source; the engine compares it
                                  // with the request's and refuses the file when they differ
    std::vector<const TensorInfo*> consumed;  // every file tensor load() reads: main, scales, all parts, all experts
    uint64_t device_bytes = 0;    // executor memory load() will allocate
    uint64_t workspace_bytes = 0; // executor workspace (Executor::workspace) a matmul over request.max_tokens rows
                                  // (Experts: max_tokens tokens, top_k slots) needs, as far as the format can tell
                                  // before loading; the engine reserves the larger of this and what the loaded
                                  // Weight / ExpertWeights report (workspace_bytes)

    static WeightPlan refuse(std::string why) {
        WeightPlan p;
        p.reason = std::move(why);
        return p;
    }
};

// Weight::matmul_fused's arguments: y = W x as in Weight::matmul, with
//   norm (optional): x replaced by rms_norm(x) * norm per token row (norm: cols floats on the device; eps as the
//     executor's rms_norm: x / sqrt(mean(x^2) + eps) * norm);
//   swiglu: W is a gate|up row concatenation (rows = 2 f); y[t, r] = silu((W x)[t, r]) * (W x)[t, f + r] for r < f,
//     so y has f columns (row stride y_stride >= f). Not with accumulate.
//   up (optional, not with norm): x holds a SwiGLU's gate values and up its up values, both [n_tokens, cols] with
//     row stride x_stride; the matmul's input row is silu(x[t, c]) * up[t, c] (the down projection of an FFN).
// A format refuses (returns false) any combination it does not compute exactly, fields it does not know included:
// fields may be added in later ABI versions, and an implementation that ignored one would compute something else.
struct FusedMatmul {
    const float* x = nullptr;
    int64_t x_stride = 0;
    float* y = nullptr;
    int64_t y_stride = 0;
    int64_t n_tokens = 0;
    bool accumulate = false;
    const float* norm = nullptr;
    float norm_eps = 0.f;
    bool swiglu = false;
    const float* up = nullptr;
};

// A 2-D weight W of shape [rows, cols] (rows = output features / vocabulary, cols = input features)
// living on an executor.
class Weight {
public:
    virtual ~Weight() = default;
    int64_t rows() const { return rows_; }
    int64_t cols() const { return cols_; }
    virtual std::string type() const = 0;   // storage type name, e.g. "Q4_1"
    virtual uint64_t bytes() const = 0;     // device bytes held
    // y[t, r] = sum_c x[t, c] * W[r, c] for t < n_tokens (accumulate: y[t, r] += that sum, e.g. a residual add
    // fused into the projection). x: [n_tokens, cols] (row stride x_stride), y: [n_tokens, rows] (row stride
    // y_stride). Accumulates in fp32; each output is read (when accumulating) and written once, deterministically.
    virtual void matmul(Executor& ex, const float* x, int64_t x_stride, float* y, int64_t y_stride, int64_t n_tokens,
                        bool accumulate) const = 0;
    // A matmul with its neighbouring ops fused in (FusedMatmul), for formats whose kernels can do it. Returns
    // false, having run nothing, when this weight cannot for these arguments (or its settings turn the fusion off);
    // the caller then runs the separate ops. The result equals those ops up to the summation order.
    virtual bool matmul_fused(Executor& ex, const FusedMatmul& m) const {
        (void)ex;
        (void)m;
        return false;
    }
    // out[i, :] = W[ids[i], :] as fp32 (embedding lookup); ids live on the executor's device.
    virtual void get_rows(Executor& ex, const int32_t* ids, int64_t n, float* out) const = 0;
    // Appends the device memory a decode matmul of this weight reads (Executor::prefetch_l2 of a layer's weights);
    // formats that cannot say append nothing.
    virtual void device_ranges(std::vector<DeviceRange>& out) const { (void)out; }
    // Bytes of the executor's shared workspace (Executor::workspace) a matmul over n_tokens rows needs.
    virtual uint64_t workspace_bytes(int64_t n_tokens) const {
        (void)n_tokens;
        return 0;
    }

protected:
    int64_t rows_ = 0, cols_ = 0;
};

class QuantFormat {
public:
    virtual ~QuantFormat() = default;
    // Unique among loaded formats (the registry refuses a second one); the profile's `[model] formats` names it.
    virtual std::string name() const = 0;
    // Storage type names this format can take (for `imp plugins` and error messages).
    virtual std::vector<std::string> types() const = 0;
    // Among the formats that accept a weight, the highest priority takes it (a specialised kernel library above a
    // generic one); two accepting formats of equal priority are an error.
    virtual int priority() const { return 0; }
    // Minimum CUDA compute capability (major*10+minor) its kernels need; 0 = any. On a CUDA device below it the
    // engine does not ask this format (its refusal reason names both numbers), so a variant for older devices can
    // be registered beside it. Not checked on the CPU.
    virtual int min_compute_capability() const { return 0; }

    // Whether and how this format would load req on ex, without touching device memory. May throw imp::Error for a
    // tensor it recognizes as its own but finds malformed (wrong byte size, inconsistent scales), naming it.
    virtual WeightPlan plan(const WeightRequest& req, const Executor& ex) const = 0;
    // Uploads (and possibly repacks) an accepted Linear / Embedding / LmHead weight: a Weight of [req.rows(),
    // req.cols()] holding exactly plan(req, ex).device_bytes. Throws imp::Error naming the tensor when it cannot.
    virtual std::unique_ptr<Weight> load(const WeightRequest& req, Executor& ex) const = 0;
    // Uploads an accepted Experts weight ([n_expert, rows, cols]) into one allocation.
    virtual std::unique_ptr<ExpertWeights> load_experts(const WeightRequest& req, Executor& ex) const {
        (void)ex;
        throw Error("quant format " + name() + " cannot load expert weights ('" + req.name + "')");
    }
    // Reference dequantization (the CPU truth the kernels are tested against): rows [row0, row0 + nrows) of the
    // source, read as one fp32 matrix of its logical cols, into out (nrows * cols floats). A row concatenation counts
    // its parts' rows in order; experts count expert e's row r as e * rows + r. Throws imp::Error naming the tensor
    // for a source it cannot read or rows outside it.
    virtual void dequantize(const WeightSource& src, int64_t row0, int64_t nrows, float* out) const = 0;
};

}  // namespace imp
