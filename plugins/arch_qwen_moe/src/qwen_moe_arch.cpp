// The "qwen3moe" Arch: Qwen3-MoE from GGUF (general.architecture "qwen3moe") or from a Hugging Face safetensors
// folder (config.json model_type "qwen3_moe"; experts as per-expert tensors mlp.experts.{e}.*_proj.weight or as the
// fused 3-D mlp.experts.gate_up_proj / down_proj). Each layer is the SDK's attention block (Qwen3 q/k norms, NEOX
// rope) followed by the SDK's MoE block (imp/blocks/moe.h), or by the dense SwiGLU FFN block for the layers HF keeps
// dense (mlp_only_layers, decoder_sparse_step; in a GGUF: the layers without blk.N.ffn_gate_inp.weight).
// Routing: softmax, top-k, renormalized when norm_topk_prob (GGUF: qwen3moe.expert_weights_norm, default true as in
// llama.cpp), times expert_weights_scale (GGUF) when set.
#include "qwen_moe_arch.h"

#include <cmath>

#include "imp/blocks/attention.h"
#include "imp/blocks/ffn.h"
#include "imp/blocks/hparams_reader.h"
#include "imp/blocks/moe.h"
#include "imp/error.h"
#include "imp/registry.h"

namespace imp::qwen_moe {

namespace {

using Reader = blocks::HparamReader;
using blocks::meta_bool, blocks::meta_float, blocks::meta_int, blocks::meta_str;

struct Common {
    int64_t n_embd = 0, n_head = 0, n_kv = 0, head_dim = 0, n_ff = 0, n_layer = 0, n_vocab = 0, n_ctx = 0;
    int64_t n_expert = 0, top_k = 0, n_ff_exp = 0;
    double eps = 1e-6, base = 10000.0, freq_scale = 1.0, attn_scale = 0.0, w_scale = 1.0;
    bool norm_topk = true;
    std::vector<bool> moe;  // per layer
    std::string tok_embd, output_norm, output;
    blocks::NameMap names;
};

void read_gguf(const ModelSource& src, const Reader& r, Common& c) {
    const std::string a = src.architecture();
    const blocks::GgufAttentionKeys k = blocks::read_gguf_attention(r, a);
    c.n_embd = k.n_embd, c.n_layer = k.n_layer, c.n_head = k.n_head, c.n_kv = k.n_kv, c.head_dim = k.head_dim;
    c.eps = k.eps, c.base = k.rope_base, c.n_ctx = k.n_ctx, c.attn_scale = k.attn_scale;
    if (const int64_t rot = r.i(a + ".rope.dimension_count", c.head_dim); rot != c.head_dim)
        throw Error(r.file + ": " + a + ".rope.dimension_count " + std::to_string(rot) + " differs from the head dim " +
                    std::to_string(c.head_dim) + " (partial rotary is not qwen3moe)");
    c.freq_scale = blocks::gguf_rope_freq_scale(r, a);
    c.n_expert = r.positive(a + ".expert_count", r.i(a + ".expert_count"));
    c.top_k = r.positive(a + ".expert_used_count", r.i(a + ".expert_used_count"));
    c.n_ff = r.i(a + ".feed_forward_length", 0);
    c.n_ff_exp = r.i(a + ".expert_feed_forward_length", c.n_ff > 0 ? c.n_ff / c.top_k : 0);
    r.positive(a + ".expert_feed_forward_length", c.n_ff_exp);
    c.norm_topk = r.b(a + ".expert_weights_norm", true);
    c.w_scale = r.f(a + ".expert_weights_scale", 0.0);
    if (c.w_scale == 0.0) c.w_scale = 1.0;
    // llama.cpp's enum (1 = softmax), or its name
    const std::string gk = a + ".expert_gating_func";
    if (const MetaValue* g = r.md.find(gk); g && g->is_string()) {
        if (const std::string name = r.s(gk, ""); name != "softmax")
            throw Error(r.file + ": " + gk + " '" + name + "' is not supported (softmax only)");
    } else if (const int64_t id = r.i(gk, 1); id != 1) {
        throw Error(r.file + ": " + gk + " " + std::to_string(id) + " is not supported (1 = softmax only)");
    }
    if (const std::string b = blocks::gguf_layer_bias(src); !b.empty())
        throw Error(r.file + ": bias tensor " + b + " is not supported by arch_qwen_moe (layers without biases only)");
    for (int64_t i = 0; i < c.n_layer; ++i)
        c.moe.push_back(src.find("blk." + std::to_string(i) + ".ffn_gate_inp.weight") != nullptr);
    c.n_vocab = src.get("token_embd.weight").shape.at(0);
    c.tok_embd = "token_embd.weight";
    c.output_norm = "output_norm.weight";
    c.output = src.find("output.weight") ? "output.weight" : c.tok_embd;
    c.names = blocks::gguf_names();
    blocks::add_moe_gguf_names(c.names);
}

void read_hf(const ModelSource&, const Reader& r, Common& c) {
    c.n_embd = r.positive("hidden_size", r.i("hidden_size"));
    c.n_layer = r.positive("num_hidden_layers", r.i("num_hidden_layers"));
    c.n_ff = r.i("intermediate_size", 0);
    c.n_ff_exp = r.positive("moe_intermediate_size", r.i("moe_intermediate_size"));
    c.n_head = r.positive("num_attention_heads", r.i("num_attention_heads"));
    c.n_kv = r.positive("num_key_value_heads", r.i("num_key_value_heads", c.n_head));
    c.head_dim = r.head_dim("head_dim", "hidden_size", c.n_embd, "num_attention_heads", c.n_head);
    c.eps = r.f("rms_norm_eps", 1e-6);
    c.n_vocab = r.positive("vocab_size", r.i("vocab_size"));
    c.n_ctx = r.i("max_position_embeddings", 0);
    // transformers 5 writes num_local_experts (its attribute map), the published configs num_experts
    c.n_expert = r.positive("num_experts", r.i("num_experts", r.i("num_local_experts", 0)));
    c.top_k = r.positive("num_experts_per_tok", r.i("num_experts_per_tok"));
    c.norm_topk = r.b("norm_topk_prob", false);  // transformers' default
    r.require_silu("hidden_act", "arch_qwen_moe");
    if (r.b("attention_bias", false))
        throw Error(r.file + ": attention_bias = true is not supported by arch_qwen_moe");
    if (r.b("use_sliding_window", false))
        throw Error(r.file + ": use_sliding_window = true is not supported by arch_qwen_moe");
    r.object("rope_parameters");
    r.object("rope_scaling");
    const bool rp = r.number("rope_parameters.rope_theta") || r.md.has("rope_parameters.rope_type");
    const std::string sc = rp ? "rope_parameters." : "rope_scaling.";
    c.base = rp ? r.f("rope_parameters.rope_theta", r.f("rope_theta", 10000.0)) : r.f("rope_theta", 10000.0);
    const std::string type = r.s(sc + "rope_type", r.s(sc + "type", "default"));
    if (type == "linear") {
        const double factor = r.f(sc + "factor");
        if (factor <= 0) throw Error(r.file + ": " + sc + "factor must be positive");
        c.freq_scale = 1.0 / factor;
    } else if (type != "default") {
        throw Error(r.file + ": rope scaling type '" + type + "' (" + sc + "rope_type) is not supported by arch_qwen_moe");
    }
    const std::vector<int64_t> dense = r.ints("mlp_only_layers");
    const int64_t step = r.i("decoder_sparse_step", 1);
    for (int64_t i = 0; i < c.n_layer; ++i) c.moe.push_back(blocks::is_moe_layer(int(i), dense, step));
    for (int64_t i = 0; i < c.n_layer; ++i)
        if (!c.moe[size_t(i)]) r.positive("intermediate_size", c.n_ff);  // a dense layer needs it
    c.tok_embd = "model.embed_tokens.weight";
    c.output_norm = "model.norm.weight";
    c.output = r.b("tie_word_embeddings", false) ? c.tok_embd : "lm_head.weight";
    c.names = blocks::hf_names("model.layers.{L}.");
    blocks::add_moe_hf_names(c.names);
}

std::unique_ptr<Metadata> hparams(const ModelSource& src, const Common& c) {
    auto hp = std::make_unique<Metadata>();
    hp->source = src.path();
    hp->set("n_embd", meta_int(c.n_embd));
    hp->set("n_head", meta_int(c.n_head));
    hp->set("n_head_kv", meta_int(c.n_kv));
    hp->set("head_dim", meta_int(c.head_dim));
    hp->set("n_ff", meta_int(c.n_ff));
    hp->set("norm_eps", meta_float(c.eps));
    hp->set("rope.n_rot", meta_int(c.head_dim));
    hp->set("rope.base", meta_float(c.base));
    hp->set("rope.neox", meta_bool(true));
    hp->set("rope.freq_scale", meta_float(c.freq_scale));
    hp->set("attn.scale", meta_float(c.attn_scale > 0 ? c.attn_scale : 1.0 / std::sqrt(double(c.head_dim))));
    hp->set("attn.qk_norm", meta_bool(true));
    hp->set("moe.n_expert", meta_int(c.n_expert));
    hp->set("moe.top_k", meta_int(c.top_k));
    hp->set("moe.n_ff_exp", meta_int(c.n_ff_exp));
    hp->set("moe.norm_topk", meta_bool(c.norm_topk));
    hp->set("moe.weights_scale", meta_float(c.w_scale));
    for (const auto& [role, name] : c.names.names) hp->set("name." + role, meta_str(name));
    return hp;
}

class QwenMoeArch final : public Arch {
public:
    std::string name() const override { return "qwen3moe"; }
    std::vector<std::string> architectures() const override { return {"qwen3moe", "qwen3_moe"}; }
    bool matches(const ModelSource& src) const override {
        const std::string a = src.architecture();
        return a == "qwen3moe" || a == "qwen3_moe";
    }

    ModelDesc build(const ModelSource& src, const Registry& reg) const override {
        const Reader r = blocks::hparam_reader(src);
        Common c;
        if (src.kind() == ContainerKind::GGUF) read_gguf(src, r, c);
        else read_hf(src, r, c);
        if (c.n_head % c.n_kv != 0)
            throw Error(r.file + ": " + std::to_string(c.n_head) + " attention heads are not a multiple of " +
                        std::to_string(c.n_kv) + " KV heads");
        if (c.head_dim % 2 != 0) throw Error(r.file + ": head dim " + std::to_string(c.head_dim) + " must be even");
        if (c.top_k > c.n_expert)
            throw Error(r.file + ": " + std::to_string(c.top_k) + " experts per token but only " +
                        std::to_string(c.n_expert) + " experts");

        ModelDesc d;
        d.arch = src.architecture();
        d.n_vocab = c.n_vocab;
        d.n_embd = c.n_embd;
        d.n_ctx_train = c.n_ctx;
        d.norm_eps = float(c.eps);
        d.tok_embd = c.tok_embd;
        d.output_norm = c.output_norm;
        d.output = c.output;
        d.hparams = hparams(src, c);

        blocks::AttentionSpec a;
        a.kind = "qwen3moe.attention";
        a.n_embd = c.n_embd;
        a.n_head = int(c.n_head);
        a.n_kv_head = int(c.n_kv);
        a.head_dim = int(c.head_dim);
        a.rope.n_rot = int(c.head_dim);
        a.rope.base = float(c.base);
        a.rope.neox = true;
        a.rope.freq_scale = float(c.freq_scale);
        a.qk_norm = true;
        a.eps = float(c.eps);
        a.scale = float(d.hparams->get_float("attn.scale"));
        a.names = c.names;
        a.source = &src;  // the q, k, v storage types choose what fuses (read while the block is built)
        blocks::MoeSpec m;
        m.kind = "qwen3moe.moe";
        m.n_embd = c.n_embd;
        m.n_expert = int(c.n_expert);
        m.top_k = int(c.top_k);
        m.n_ff_exp = c.n_ff_exp;
        m.norm_topk = c.norm_topk;
        m.weights_scale = float(c.w_scale);
        m.eps = float(c.eps);
        m.names = c.names;
        m.registry = &reg;
        blocks::FfnSpec f;
        f.kind = "qwen3moe.ffn";
        f.n_embd = c.n_embd;
        f.n_ff = c.n_ff;
        f.eps = float(c.eps);
        f.names = c.names;
        for (int i = 0; i < int(c.n_layer); ++i) {
            a.layer = m.layer = f.layer = i;
            d.layers.push_back(blocks::make_attention(a));
            if (c.moe[size_t(i)]) {
                d.layers.push_back(blocks::make_moe(m));
            } else {
                if (c.n_ff <= 0)
                    throw Error(r.file + ": " + c.names.block(i) +
                                " is dense but the model has no dense FFN size (feed_forward_length)");
                d.layers.push_back(blocks::make_swiglu_ffn(f));
            }
        }
        return d;
    }
};

}  // namespace

std::unique_ptr<Arch> make_arch() { return std::make_unique<QwenMoeArch>(); }

std::unique_ptr<Layer> make_moe_layer(const LayerParams& p) {
    if (!p.hparams) throw Error("qwen3moe.moe: no hyper-parameters given for " + (p.prefix.empty() ? "layer " + std::to_string(p.index) : p.prefix));
    blocks::MoeSpec s = blocks::MoeSpec::from_hparams(*p.hparams, p.prefix);
    s.kind = "qwen3moe.moe";
    s.layer = p.index;
    s.registry = p.registry;
    return blocks::make_moe(s);
}

}  // namespace imp::qwen_moe
