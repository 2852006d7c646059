// Tensor names as data (imp/blocks/names.h): NameMap lookups and the GGUF / Hugging Face tables of the attention
// and FFN roles.
#include "imp/blocks/names.h"

#include "imp/error.h"

namespace imp::blocks {

std::string NameMap::prefix(int layer) const {
    std::string p = layer_prefix;
    const std::string idx = std::to_string(layer);
    for (size_t at = p.find("{L}"); at != std::string::npos; at = p.find("{L}", at + idx.size()))
        p.replace(at, 3, idx);
    return p;
}

std::string NameMap::block(int layer) const {
    std::string p = prefix(layer);
    while (!p.empty() && p.back() == '.') p.pop_back();
    return p.empty() ? "layer " + std::to_string(layer) : p;
}

std::string NameMap::operator()(const std::string& role, int layer) const {
    const auto it = names.find(role);
    if (it == names.end()) {
        std::string known;
        for (const auto& [r, n] : names) known += (known.empty() ? "" : ", ") + r;
        throw Error("tensor-name map (prefix '" + layer_prefix + "') has no name for role '" + role +
                    "' (roles: " + (known.empty() ? "none" : known) + ")");
    }
    return prefix(layer) + it->second;
}

NameMap gguf_names() {
    NameMap m;
    m.layer_prefix = "blk.{L}.";
    for (const char* role : {"attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "attn_q_norm", "attn_k_norm",
                             "ffn_norm", "ffn_gate", "ffn_up", "ffn_down"})
        m.names[role] = std::string(role) + ".weight";
    return m;
}

NameMap hf_names(const std::string& layer_prefix) {
    NameMap m;
    m.layer_prefix = layer_prefix;
    m.names = {{"attn_norm", "input_layernorm.weight"},
               {"attn_q", "self_attn.q_proj.weight"},
               {"attn_k", "self_attn.k_proj.weight"},
               {"attn_v", "self_attn.v_proj.weight"},
               {"attn_output", "self_attn.o_proj.weight"},
               {"attn_q_norm", "self_attn.q_norm.weight"},
               {"attn_k_norm", "self_attn.k_norm.weight"},
               {"ffn_norm", "post_attention_layernorm.weight"},
               {"ffn_gate", "mlp.gate_proj.weight"},
               {"ffn_up", "mlp.up_proj.weight"},
               {"ffn_down", "mlp.down_proj.weight"}};
    return m;
}

}  // namespace imp::blocks
