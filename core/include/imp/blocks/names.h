// imp SDK blocks: tensor names as data. A NameMap gives, for each weight role of a block ("attn_q", "ffn_down",
// ...), the tensor's name under the layer's prefix, the way llama.cpp's LLM_TENSOR_NAMES table does; an arch fills
// one (usually from gguf_names() or hf_names(), editing the entries its checkpoints name differently) and hands it
// to the blocks' specs (imp/blocks/attention.h, ffn.h).
//
// Roles the attention block reads: attn_norm, attn_q, attn_k, attn_v, attn_output, and attn_q_norm, attn_k_norm
// when it has q/k norms. Roles the SwiGLU FFN block reads: ffn_norm, ffn_gate, ffn_up, ffn_down.
#pragma once
#include <map>
#include <string>

#include "imp/blocks/export.h"

namespace imp::blocks {

struct IMP_API NameMap {
    std::string layer_prefix;                  // "blk.{L}.": {L} stands for the layer index
    std::map<std::string, std::string> names;  // role -> name under the prefix ("attn_q" -> "attn_q.weight")

    // layer_prefix with every {L} replaced by `layer`.
    std::string prefix(int layer) const;
    // The layer as the file names it, for messages: prefix(layer) without its trailing '.' ("blk.30",
    // "model.layers.30"); "layer <layer>" when the map has no prefix.
    std::string block(int layer) const;
    // prefix(layer) + names[role]; throws imp::Error naming the role when the map has none.
    std::string operator()(const std::string& role, int layer) const;
    bool has(const std::string& role) const { return names.count(role) != 0; }
};

// GGUF (llama.cpp) names of the attention and FFN roles: layer_prefix "blk.{L}.", "attn_q" -> "attn_q.weight", ...
IMP_API NameMap gguf_names();
// Hugging Face names of the same roles under `layer_prefix` (e.g. "model.language_model.layers.{L}." for the
// Qwen3.5 multimodal wrapper): "attn_norm" -> "input_layernorm.weight", "attn_q" -> "self_attn.q_proj.weight",
// "ffn_norm" -> "post_attention_layernorm.weight", "ffn_gate" -> "mlp.gate_proj.weight", ...
IMP_API NameMap hf_names(const std::string& layer_prefix = "model.layers.{L}.");

}  // namespace imp::blocks
