// The blocks' from_hparams adapters: AttentionSpec / FfnSpec from normalized hyper-parameter keys (the keys
// arch_llama writes into ModelDesc::hparams; documented in imp/blocks/attention.h and ffn.h).
#include <cmath>
#include <string>

#include "imp/blocks/attention.h"
#include "imp/blocks/ffn.h"
#include "imp/error.h"

namespace imp::blocks {

namespace {

int64_t positive(const Metadata& hp, const std::string& key) {
    const int64_t v = hp.get_int(key);
    if (v <= 0) throw Error(hp.source + ": hyper-parameter '" + key + "' must be positive, got " + std::to_string(v));
    return v;
}

// names.names[role] = hp["name.<role>"] for each role; the prefix is taken literally.
NameMap names_from(const Metadata& hp, const std::string& prefix, std::initializer_list<const char*> roles) {
    NameMap m;
    m.layer_prefix = prefix;
    for (const char* r : roles) m.names[r] = hp.get_string(std::string("name.") + r);
    return m;
}

}  // namespace

AttentionSpec AttentionSpec::from_hparams(const Metadata& hp, const std::string& prefix) {
    AttentionSpec s;
    s.n_embd = positive(hp, "n_embd");
    s.n_head = int(positive(hp, "n_head"));
    s.n_kv_head = int(positive(hp, "n_head_kv"));
    s.head_dim = int(positive(hp, "head_dim"));
    s.eps = float(hp.get_float("norm_eps"));
    s.rope.n_rot = int(positive(hp, "rope.n_rot"));
    s.rope.base = float(hp.get_float("rope.base"));
    s.rope.neox = hp.get_bool("rope.neox");
    s.rope.freq_scale = float(hp.get_float("rope.freq_scale", 1.0));
    s.rope.freqs_name = hp.get_string("rope.freqs", "");
    if (const MetaValue* ff = hp.find("rope.freq_factors")) {
        for (const auto& v : ff->as_array("rope.freq_factors")) s.rope.freq_factors.push_back(float(v.as_float("rope.freq_factors")));
        if (int64_t(s.rope.freq_factors.size()) != s.rope.n_rot / 2)
            throw Error(hp.source + ": rope.freq_factors has " + std::to_string(s.rope.freq_factors.size()) +
                        " values, expected rope.n_rot/2 = " + std::to_string(s.rope.n_rot / 2));
        if (s.rope.freqs_name.empty()) throw Error(hp.source + ": rope.freq_factors given without a rope.freqs name");
    }
    s.scale = float(hp.get_float("attn.scale", 1.0 / std::sqrt(double(s.head_dim))));
    s.qk_norm = hp.get_bool("attn.qk_norm", false);
    s.output_gate = hp.get_bool("attn.output_gate", false);
    s.names = s.qk_norm ? names_from(hp, prefix, {"attn_norm", "attn_q", "attn_k", "attn_v", "attn_output",
                                                  "attn_q_norm", "attn_k_norm"})
                        : names_from(hp, prefix, {"attn_norm", "attn_q", "attn_k", "attn_v", "attn_output"});
    return s;
}

FfnSpec FfnSpec::from_hparams(const Metadata& hp, const std::string& prefix) {
    FfnSpec s;
    s.n_embd = positive(hp, "n_embd");
    s.n_ff = positive(hp, "n_ff");
    s.eps = float(hp.get_float("norm_eps"));
    s.names = names_from(hp, prefix, {"ffn_norm", "ffn_gate", "ffn_up", "ffn_down"});
    return s;
}

}  // namespace imp::blocks
