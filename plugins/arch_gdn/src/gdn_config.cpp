// arch_gdn: reads a Gated-DeltaNet hybrid's hyper-parameters and names its tensors (gdn_config.h).
// GGUF keys (the ones llama.cpp's qwen3next / qwen35 / qwen35moe loaders read): {arch}.ssm.* (conv_kernel,
// state_size = dk, group_count = Hk, time_step_rank = Hv, inner_size = Hv * dv), rope.dimension_count (partial
// rotary), expert_* keys, nextn_predict_layers (MTP blocks after the trunk); the layer schedule from
// attention.recurrent_layers or full_attention_interval (gguf_schedule), checked against the tensors present; the
// MoE layers are those with blk.N.ffn_gate_inp.weight. HF: config.json (text_config.* under the multimodal wrapper), layer_types or
// full_attention_interval, rope_parameters.partial_rotary_factor.
#include "gdn_config.h"

#include <cmath>

#include "imp/blocks/hparams_reader.h"  // HparamReader: metadata getters whose messages name the file
#include "imp/blocks/moe.h"
#include "imp/error.h"

namespace imp::gdn_arch {

namespace {

using Reader = imp::blocks::HparamReader;

std::string L(int64_t i) { return std::to_string(i); }

void gdn_gguf_names(blocks::NameMap& m, const ModelSource& src, int first_gdn) {
    const std::string p = "blk." + L(first_gdn) + ".";
    if (src.find(p + "ssm_in.weight")) {  // legacy qwen3next: grouped q|k|v|z in one tensor
        m.names["gdn_qkvz"] = "ssm_in.weight";
    } else {
        m.names["gdn_qkv"] = "attn_qkv.weight";
        m.names["gdn_z"] = "attn_gate.weight";
    }
    if (src.find(p + "ssm_ba.weight")) {  // qwen3next: b|a grouped per key head
        m.names["gdn_ba"] = "ssm_ba.weight";
    } else {
        m.names["gdn_b"] = "ssm_beta.weight";
        m.names["gdn_a"] = "ssm_alpha.weight";
    }
    m.names["gdn_conv"] = "ssm_conv1d.weight";
    m.names["gdn_A"] = "ssm_a";
    m.names["gdn_dt"] = "ssm_dt.bias";
    m.names["gdn_norm"] = "ssm_norm.weight";
    m.names["gdn_out"] = "ssm_out.weight";
}

void gdn_hf_names(blocks::NameMap& m, bool grouped) {
    const std::string l = "linear_attn.";
    if (grouped) {
        m.names["gdn_qkvz"] = l + "in_proj_qkvz.weight";
        m.names["gdn_ba"] = l + "in_proj_ba.weight";
    } else {
        m.names["gdn_qkv"] = l + "in_proj_qkv.weight";
        m.names["gdn_z"] = l + "in_proj_z.weight";
        m.names["gdn_b"] = l + "in_proj_b.weight";
        m.names["gdn_a"] = l + "in_proj_a.weight";
    }
    m.names["gdn_conv"] = l + "conv1d.weight";
    m.names["gdn_A"] = l + "A_log";
    m.names["gdn_dt"] = l + "dt_bias";
    m.names["gdn_norm"] = l + "norm.weight";
    m.names["gdn_out"] = l + "out_proj.weight";
}

// The layer schedule as llama.cpp reads it (src/models/qwen35moe.cpp, qwen35.cpp, qwen3next.cpp load_arch_hparams):
// {arch}.attention.recurrent_layers, one bool per block (true: Gated DeltaNet), else every
// {arch}.full_attention_interval-th layer (default 4) is full attention. Returns full_attn for the n_layer trunk
// layers of the n_all blocks.
std::vector<bool> gguf_schedule(const Reader& r, const std::string& a, int64_t n_all, int64_t n_layer) {
    std::vector<bool> full;
    const std::string key = a + ".attention.recurrent_layers";
    if (const MetaValue* v = r.typed(key, &MetaValue::is_array, "a list of booleans")) {
        const MetaArray& arr = v->as_array(key);
        if (int64_t(arr.size()) != n_all)
            throw Error(r.file + ": " + key + " has " + L(int64_t(arr.size())) + " entries for block_count " +
                        L(n_all));
        for (int64_t i = 0; i < n_layer; ++i) {
            const MetaValue& e = arr[size_t(i)];
            if (!e.is_bool() && !e.is_int()) throw Error(r.file + ": " + key + " must be a list of booleans");
            full.push_back(e.is_bool() ? !e.as_bool(key) : e.as_int(key) == 0);
        }
        return full;
    }
    const std::string ik = a + ".full_attention_interval";
    const int64_t every = r.positive(ik, r.i(ik, 4));
    for (int64_t i = 0; i < n_layer; ++i) full.push_back((i + 1) % every == 0);
    return full;
}

void read_gguf(const ModelSource& src, const Reader& r, GdnConfig& c) {
    const std::string a = c.arch;
    c.gguf = true;
    const blocks::GgufAttentionKeys k = blocks::read_gguf_attention(r, a);
    c.n_embd = k.n_embd, c.n_layer = k.n_layer, c.n_head = k.n_head, c.n_kv = k.n_kv, c.head_dim = k.head_dim;
    c.eps = k.eps, c.rope_base = k.rope_base, c.n_ctx = k.n_ctx, c.attn_scale = k.attn_scale;
    c.n_rot = r.i(a + ".rope.dimension_count", c.head_dim / 4);
    c.freq_scale = blocks::gguf_rope_freq_scale(r, a);  // as llama.cpp's qwen3next / qwen35 read it
    c.conv_key = a + ".ssm.conv_kernel";
    c.conv_kernel = r.positive(c.conv_key, r.i(c.conv_key));
    c.gdn_dk = r.positive(a + ".ssm.state_size", r.i(a + ".ssm.state_size"));
    c.gdn_hk = r.positive(a + ".ssm.group_count", r.i(a + ".ssm.group_count"));
    c.gdn_hv = r.positive(a + ".ssm.time_step_rank", r.i(a + ".ssm.time_step_rank"));
    const int64_t inner = r.positive(a + ".ssm.inner_size", r.i(a + ".ssm.inner_size"));
    if (inner % c.gdn_hv != 0)
        throw Error(r.file + ": " + a + ".ssm.inner_size " + L(inner) + " is not a multiple of ssm.time_step_rank " +
                    L(c.gdn_hv));
    c.gdn_dv = inner / c.gdn_hv;
    // llama.cpp's qwen35 converter stores the value heads tiled (v-head j pairs with k-head j % Hk); qwen3next
    // keeps HF's grouped order (FORMATS §2.5)
    c.tiled = (a == "qwen35" || a == "qwen35moe") && c.gdn_hk != c.gdn_hv;
    c.a_is_log = false;
    c.n_expert = r.i(a + ".expert_count", 0);
    if (c.n_expert > 0) {
        c.top_k = r.positive(a + ".expert_used_count", r.i(a + ".expert_used_count"));
        c.n_ff_exp = r.positive(a + ".expert_feed_forward_length", r.i(a + ".expert_feed_forward_length"));
        // Without the key, the shared expert's own tensors give its size (llama.cpp takes n_ff then): a file whose
        // blk.N.ffn_*_shexp tensors were left unread would run without its shared expert.
        const TensorInfo* sh = src.find("blk.0.ffn_up_shexp.weight");
        c.n_ff_shared = r.i(a + ".expert_shared_feed_forward_length", sh && sh->shape.size() == 2 ? sh->shape[0] : 0);
    }
    c.n_ff = r.i(a + ".feed_forward_length", 0);
    // multi-token-prediction blocks appended after the trunk (llama.cpp: the last {arch}.nextn_predict_layers of the
    // block_count blocks, blk.N.nextn.* among their tensors): not part of the text model
    const int64_t n_all = c.n_layer, n_nextn = r.i(a + ".nextn_predict_layers", 0);
    if (n_nextn < 0 || n_nextn >= n_all)
        throw Error(r.file + ": " + a + ".nextn_predict_layers " + L(n_nextn) + " is not below block_count " +
                    L(n_all));
    c.n_layer = n_all - n_nextn;
    for (int64_t i = c.n_layer; i < n_all; ++i) c.skipped.push_back("blk." + L(i) + ".");
    c.full_attn = gguf_schedule(r, a, n_all, c.n_layer);
    int first_gdn = -1;
    for (int64_t i = 0; i < c.n_layer; ++i) {
        const std::string p = "blk." + L(i) + ".";
        if (c.full_attn[size_t(i)] && !src.find(p + "attn_q.weight"))
            throw Error(r.file + ": layer " + L(i) + " is full attention (" + a + ".attention.recurrent_layers / " +
                        "full_attention_interval) but has no " + p + "attn_q.weight" +
                        (src.find(p + "attn_qkv.weight") ? " (a fused attn_qkv, convert_hf_to_gguf.py --fuse-qkv, "
                                                           "is not supported)" : ""));
        if (!c.full_attn[size_t(i)] && !src.find(p + "attn_qkv.weight") && !src.find(p + "ssm_in.weight"))
            throw Error(r.file + ": layer " + L(i) + " is Gated DeltaNet (" + a + ".attention.recurrent_layers / " +
                        "full_attention_interval) but has neither " + p + "attn_qkv.weight nor " + p + "ssm_in.weight");
        c.moe.push_back(src.find(p + "ffn_gate_inp.weight") != nullptr);
        if (!c.full_attn[size_t(i)] && first_gdn < 0) first_gdn = int(i);
    }
    const std::string emb = "token_embd.weight";
    c.n_vocab = src.get(emb).shape.at(0);
    c.tok_embd = emb;
    c.output_norm = "output_norm.weight";
    c.output = src.find("output.weight") ? "output.weight" : emb;
    c.conv_shape = {0, c.conv_kernel};
    c.names = blocks::gguf_names();
    c.names.names["ffn_norm"] = "post_attention_norm.weight";
    blocks::add_moe_gguf_names(c.names);
    gdn_gguf_names(c.names, src, first_gdn < 0 ? 0 : first_gdn);
    c.norm_offset = 0.f;
}

void read_hf(const ModelSource& src, const Reader& r, GdnConfig& c) {
    const std::string t = r.md.has("text_config.hidden_size") ? "text_config." : "";
    const bool qwen3_next = c.arch == "qwen3_next";
    c.n_embd = r.positive(t + "hidden_size", r.i(t + "hidden_size"));
    c.n_layer = r.positive(t + "num_hidden_layers", r.i(t + "num_hidden_layers"));
    c.n_head = r.positive(t + "num_attention_heads", r.i(t + "num_attention_heads"));
    c.n_kv = r.positive(t + "num_key_value_heads", r.i(t + "num_key_value_heads", c.n_head));
    c.head_dim = r.head_dim(t + "head_dim", t + "hidden_size", c.n_embd, t + "num_attention_heads", c.n_head);
    c.eps = r.f(t + "rms_norm_eps", 1e-6);
    c.n_vocab = r.positive(t + "vocab_size", r.i(t + "vocab_size"));
    c.n_ctx = r.i(t + "max_position_embeddings", 0);
    r.require_silu(t + "hidden_act", "arch_gdn");
    if (r.b(t + "attention_bias", false))
        throw Error(r.file + ": " + t + "attention_bias = true is not supported by arch_gdn");
    r.object(t + "rope_parameters");
    r.object(t + "rope_scaling");
    const std::string rp = t + "rope_parameters.";
    c.rope_base = r.f(rp + "rope_theta", r.f(t + "rope_theta", 10000.0));
    // Every place a rope type can be written (transformers 5's rope_parameters, the older rope_scaling with either
    // key, as the model cards' YaRN snippet has it): any type but the default is refused, never ignored.
    for (const std::string key : {rp + "rope_type", t + "rope_scaling.rope_type", t + "rope_scaling.type"})
        if (const std::string ty = r.s(key, "default"); ty != "default")
            throw Error(r.file + ": rope type '" + ty + "' (" + key + ") is not supported by arch_gdn");
    const double prf = r.f(rp + "partial_rotary_factor", r.f(t + "partial_rotary_factor", 0.25));
    c.n_rot = int64_t(std::lround(double(c.head_dim) * prf));
    c.conv_key = t + "linear_conv_kernel_dim";
    c.conv_kernel = r.positive(c.conv_key, r.i(c.conv_key, 4));
    c.gdn_dk = r.positive(t + "linear_key_head_dim", r.i(t + "linear_key_head_dim"));
    c.gdn_dv = r.positive(t + "linear_value_head_dim", r.i(t + "linear_value_head_dim"));
    c.gdn_hk = r.positive(t + "linear_num_key_heads", r.i(t + "linear_num_key_heads"));
    c.gdn_hv = r.positive(t + "linear_num_value_heads", r.i(t + "linear_num_value_heads"));
    c.a_is_log = true;
    c.n_expert = r.i(t + "num_experts", 0);
    c.n_ff = r.i(t + "intermediate_size", 0);
    if (c.n_expert > 0) {
        c.top_k = r.positive(t + "num_experts_per_tok", r.i(t + "num_experts_per_tok"));
        c.n_ff_exp = r.positive(t + "moe_intermediate_size", r.i(t + "moe_intermediate_size"));
        // transformers' default (Qwen3NextConfig, Qwen3_5MoeTextConfig): a config without the key has a shared
        // expert of 512, not none
        c.n_ff_shared = r.i(t + "shared_expert_intermediate_size", 512);
        // Qwen3.5 / 3.6's router always renormalizes (transformers' Qwen3_5MoeTopKRouter reads no norm_topk_prob,
        // so a config that carries the key computes the same); Qwen3-Next's config says whether it does
        c.norm_topk = qwen3_next ? r.b(t + "norm_topk_prob", true) : true;
    }
    // layer schedule: layer_types, else every full_attention_interval-th layer
    const MetaValue* lt = r.typed(t + "layer_types", &MetaValue::is_array, "a list of layer types");
    if (lt) {
        const MetaArray& arr = lt->as_array(t + "layer_types");
        if (int64_t(arr.size()) != c.n_layer)
            throw Error(r.file + ": " + t + "layer_types has " + L(int64_t(arr.size())) + " entries for " +
                        L(c.n_layer) + " layers");
        for (const auto& v : arr) {
            const std::string s = v.is_string() ? v.as_string(t + "layer_types") : "";
            if (s != "full_attention" && s != "linear_attention")
                throw Error(r.file + ": " + t + "layer_types entry '" + s +
                            "' is neither full_attention nor linear_attention");
            c.full_attn.push_back(s == "full_attention");
        }
    } else {
        const int64_t every = r.positive(t + "full_attention_interval", r.i(t + "full_attention_interval", 4));
        for (int64_t i = 0; i < c.n_layer; ++i) c.full_attn.push_back((i + 1) % every == 0);
    }
    // Qwen3-Next's dense layers (mlp_only_layers, decoder_sparse_step); transformers' Qwen3.5 / 3.6 MoE decoder
    // layer is MoE whatever these keys say
    const std::vector<int64_t> dense = qwen3_next ? r.ints(t + "mlp_only_layers") : std::vector<int64_t>{};
    const int64_t step = qwen3_next ? r.i(t + "decoder_sparse_step", 1) : 1;
    for (int64_t i = 0; i < c.n_layer; ++i)
        c.moe.push_back(c.n_expert > 0 && blocks::is_moe_layer(int(i), dense, step));
    // the multimodal wrapper (Qwen3_5MoeForConditionalGeneration) keeps the text model under model.language_model
    const std::string base = src.find("model.language_model.embed_tokens.weight") ? "model.language_model." : "model.";
    c.tok_embd = base + "embed_tokens.weight";
    c.output_norm = base + "norm.weight";
    c.output = r.b("tie_word_embeddings", r.b(t + "tie_word_embeddings", false)) ? c.tok_embd : "lm_head.weight";
    c.conv_shape = {0, 1, c.conv_kernel};
    c.names = blocks::hf_names(base + "layers.{L}.");
    blocks::add_moe_hf_names(c.names);
    gdn_hf_names(c.names, c.arch == "qwen3_next");
    c.norm_offset = 1.f;
    c.skipped = {"model.visual.", "mtp."};
}

}  // namespace

std::vector<std::string> gdn_architectures() {
    return {"qwen3next", "qwen35", "qwen35moe", "qwen3_next", "qwen3_5", "qwen3_5_text", "qwen3_5_moe",
            "qwen3_5_moe_text"};
}

GdnConfig read_config(const ModelSource& src) {
    const Reader r = blocks::hparam_reader(src);
    GdnConfig c;
    c.arch = src.architecture();
    if (src.kind() == ContainerKind::GGUF) read_gguf(src, r, c);
    else read_hf(src, r, c);
    if (c.n_head % c.n_kv != 0)
        throw Error(r.file + ": " + L(c.n_head) + " attention heads are not a multiple of " + L(c.n_kv) + " KV heads");
    if (c.n_rot <= 0 || c.n_rot % 2 != 0 || c.n_rot > c.head_dim)
        throw Error(r.file + ": rotary dims " + L(c.n_rot) + " must be even and within the head dim " + L(c.head_dim));
    if (c.gdn_hv % c.gdn_hk != 0)
        throw Error(r.file + ": " + L(c.gdn_hv) + " linear-attention value heads are not a multiple of " +
                    L(c.gdn_hk) + " key heads");
    // the gdn.conv op's range (ops/gdn_validate.cpp), checked here so that a file outside it is refused before any
    // weight is read, not at its first forward pass
    if (c.conv_kernel < 2 || c.conv_kernel > 8)
        throw Error(r.file + ": linear-attention conv kernel " + L(c.conv_kernel) + " (" +
                    c.conv_key + ") is outside 2..8");
    if (c.n_expert > 0 && c.top_k > c.n_expert)
        throw Error(r.file + ": " + L(c.top_k) + " experts per token but only " + L(c.n_expert) + " experts");
    c.conv_shape[0] = 2 * c.gdn_hk * c.gdn_dk + c.gdn_hv * c.gdn_dv;
    for (int64_t i = 0; i < c.n_layer; ++i)
        if (!c.moe[size_t(i)] && c.n_ff <= 0)
            throw Error(r.file + ": " + c.names.block(int(i)) + " has a dense FFN but the model gives no intermediate size");
    return c;
}

}  // namespace imp::gdn_arch
