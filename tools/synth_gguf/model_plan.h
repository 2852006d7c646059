// synth-gguf: what a synthetic model file holds — the shape table (real hyper-parameters of public models), the
// tensor list with each tensor's storage type for a quantization recipe, and the GGUF metadata (hyper-parameters and
// a small valid byte-level BPE vocabulary of the model's size).
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace synth {

// ggml type ids (ggml.h) and block geometry of the types this tool writes.
enum GgmlType : uint32_t { kF32 = 0, kQ8_0 = 8, kQ4_K = 12, kQ6_K = 14, kBF16 = 30 };
struct TypeInfo {
    const char* name;
    int64_t block;  // elements per block
    int64_t bytes;  // bytes per block
};
const TypeInfo& type_info(uint32_t t);

struct Shape {
    std::string name;  // "llama3.1-8b"
    std::string arch;  // GGUF general.architecture: "llama" or "qwen3"
    int64_t n_embd, n_layer, n_head, n_kv, head_dim, n_ff, n_vocab, n_ctx;
    double rope_base, eps;
    double llama3_rope_factor;  // > 0: Llama-3 rope scaling (rope_freqs.weight); 0: none
    bool tied;                  // LM head shares token_embd (no output.weight)
    bool qk_norm;               // Qwen3 per-head q/k RMSNorm
    std::string pre;            // tokenizer.ggml.pre
    int n_special;              // control tokens at the end of the vocabulary
};
const std::vector<Shape>& shapes();
const Shape* find_shape(const std::string& name);

// The mixture-of-experts part of a shape (moe_shapes.cpp): every layer's FFN is n_expert experts of n_ff_exp, the
// router ffn_gate_inp in F32 (llama.cpp never quantizes it), the experts as 3-D tensors ffn_{gate,up,down}_exps.
// Null for a dense shape.
struct MoeShape {
    std::string name;  // the Shape's name
    int64_t n_expert, n_expert_used, n_ff_exp;
};
const MoeShape* find_moe(const std::string& shape_name);

// The Gated-DeltaNet hybrid part of a shape (hybrid_shapes.cpp: Qwen3.5 / 3.6 / Qwen3-Next): every full_every-th layer
// is gated full attention with n_rot rotary dims, the others Gated DeltaNet; every layer's FFN is n_expert experts
// of n_ff_exp plus a shared expert of n_ff_shared. rope_sections: the interleaved-MRoPE sections qwen35 / qwen35moe
// files carry ({arch}.rope.dimension_sections, 4 entries summing to n_rot / 2; unused by qwen3next). Null for other
// shapes.
struct HybridShape {
    std::string name;  // the Shape's name
    int64_t n_k_heads, n_v_heads, head_k_dim, head_v_dim, conv_kernel, full_every, n_rot;
    int64_t n_expert, n_expert_used, n_ff_exp, n_ff_shared;
    std::array<int32_t, 4> rope_sections;
};
// Layer i of a hybrid is full attention (llama.cpp: !hparams.is_recr(i)).
bool hybrid_full_attention(const HybridShape& h, int64_t i);
const HybridShape* find_hybrid(const std::string& shape_name);

struct TensorPlan {
    std::string name;
    std::vector<int64_t> ne;  // GGUF order: innermost (row length) first
    uint32_t type = kF32;
    enum class Fill { Weight, Norm, Values } fill = Fill::Weight;
    std::vector<float> values;  // Fill::Values (F32)
    uint64_t nbytes = 0;
    uint64_t offset = 0;        // relative to the data section
};

// Appends layer i's tensors of a hybrid shape (base: the recipe's type; more: its type for attn_v / ffn_down); mtp:
// block i is the multi-token-prediction block after the trunk.
void plan_hybrid_layer(const Shape& s, const HybridShape& h, int64_t i, uint32_t base, uint32_t more,
                       std::vector<TensorPlan>& t, bool mtp = false);

// Quantization recipes: "q8_0", "bf16", "q4_k_m" (llama.cpp's Q4_K_M mix). Throws std::runtime_error (one line)
// when the shape's rows do not fit the recipe's block sizes.
// mtp: append the multi-token-prediction block (qwen35moe shapes only; throws otherwise).
std::vector<TensorPlan> plan_tensors(const Shape& s, const std::string& quant, bool mtp = false);
uint32_t file_type(const std::string& quant);  // general.file_type (llama_ftype)

// GGUF metadata, serialized: one entry per key (key string + value type + value bytes).
struct KeyValue {
    std::string key;
    uint32_t type;
    std::string value;
};
std::vector<KeyValue> make_metadata(const Shape& s, const std::string& quant, bool mtp = false);

}  // namespace synth
