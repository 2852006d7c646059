// The "llama" Arch: Llama and Qwen3 (dense) from GGUF (general.architecture "llama" / "qwen3") or from a Hugging Face
// safetensors folder (config.json model_type "llama" / "qwen3"). Reads the hyper-parameters and composes the SDK's
// shared blocks, one attention (imp/blocks/attention.h) + one SwiGLU FFN (imp/blocks/ffn.h) per layer, from typed
// specs and the GGUF / HF tensor-name maps. It also writes the hyper-parameters as the normalized keys of the
// blocks' from_hparams adapters into ModelDesc::hparams, so the layer kinds "llama.attention" / "llama.ffn" built by
// name from them are the same layers.
#include "llama_arch.h"

#include <cmath>
#include <numbers>

#include "imp/blocks/attention.h"
#include "imp/blocks/ffn.h"
#include "imp/blocks/hparams_reader.h"
#include "imp/error.h"
#include "imp/registry.h"

namespace imp::llama {

namespace {

using Reader = blocks::HparamReader;
using blocks::meta_bool, blocks::meta_float, blocks::meta_int, blocks::meta_str;

// Llama-3 frequency divisors (one per rotated pair) from the rope_scaling parameters, as the GGUF converter stores
// them in rope_freqs.weight: 1 for short wavelengths, `factor` for long ones, a smooth blend between.
std::vector<double> llama3_freq_factors(int n_rot, double base, double factor, double low_f, double high_f,
                                        double orig_ctx) {
    std::vector<double> out(size_t(n_rot / 2));
    const double low_wl = orig_ctx / low_f, high_wl = orig_ctx / high_f;
    for (int i = 0; i < n_rot / 2; ++i) {
        const double freq = std::pow(base, -2.0 * i / n_rot);
        const double wl = 2.0 * std::numbers::pi / freq;
        if (wl < high_wl) {
            out[size_t(i)] = 1.0;
        } else if (wl > low_wl) {
            out[size_t(i)] = factor;
        } else {
            const double smooth = (orig_ctx / wl - low_f) / (high_f - low_f);
            out[size_t(i)] = 1.0 / ((1.0 - smooth) / factor + smooth);
        }
    }
    return out;
}

struct Common {
    int64_t n_embd = 0, n_head = 0, n_kv = 0, head_dim = 0, n_ff = 0, n_layer = 0, n_rot = 0, n_vocab = 0, n_ctx = 0;
    double eps = 1e-5, base = 10000.0, freq_scale = 1.0, attn_scale = 0.0;
    bool neox = false, qk_norm = false;
    std::string freqs_name;             // rope.freqs
    std::vector<double> freq_factors;   // rope.freq_factors (computed)
    std::string tok_embd, output_norm, output;
    blocks::NameMap names;
};

void read_gguf(const ModelSource& src, const Reader& r, Common& c) {
    const std::string a = src.architecture();
    const blocks::GgufAttentionKeys k = blocks::read_gguf_attention(r, a);
    c.n_embd = k.n_embd, c.n_layer = k.n_layer, c.n_head = k.n_head, c.n_kv = k.n_kv, c.head_dim = k.head_dim;
    c.eps = k.eps, c.base = k.rope_base, c.n_ctx = k.n_ctx, c.attn_scale = k.attn_scale;
    c.n_ff = r.positive(a + ".feed_forward_length", r.i(a + ".feed_forward_length"));
    c.n_rot = r.i(a + ".rope.dimension_count", c.head_dim);
    c.freq_scale = blocks::gguf_rope_freq_scale(r, a);
    // Llama GGUFs had q/k permuted by the converter to use adjacent pairs; Qwen keeps HF's rotate-half.
    c.neox = a != "llama";
    c.qk_norm = a == "qwen3";
    if (src.find("rope_freqs.weight")) c.freqs_name = "rope_freqs.weight";
    if (const std::string b = blocks::gguf_layer_bias(src); !b.empty())
        throw Error(r.file + ": bias tensor " + b + " is not supported by arch_llama (layers without biases only)");
    c.n_vocab = src.get("token_embd.weight").shape.at(0);
    c.tok_embd = "token_embd.weight";
    c.output_norm = "output_norm.weight";
    c.output = src.find("output.weight") ? "output.weight" : c.tok_embd;
    c.names = blocks::gguf_names();
}

void read_hf(const ModelSource& src, const Reader& r, Common& c) {
    const std::string mt = src.architecture();
    c.n_embd = r.positive("hidden_size", r.i("hidden_size"));
    c.n_layer = r.positive("num_hidden_layers", r.i("num_hidden_layers"));
    c.n_ff = r.positive("intermediate_size", r.i("intermediate_size"));
    c.n_head = r.positive("num_attention_heads", r.i("num_attention_heads"));
    c.n_kv = r.positive("num_key_value_heads", r.i("num_key_value_heads", c.n_head));
    c.head_dim = r.head_dim("head_dim", "hidden_size", c.n_embd, "num_attention_heads", c.n_head);
    c.n_rot = c.head_dim;
    c.eps = r.f("rms_norm_eps", 1e-6);
    c.n_vocab = r.positive("vocab_size", r.i("vocab_size"));
    c.n_ctx = r.i("max_position_embeddings", 0);
    r.require_silu("hidden_act", "arch_llama");
    if (r.b("attention_bias", false) || r.b("mlp_bias", false))
        throw Error(r.file + ": attention_bias / mlp_bias = true is not supported by arch_llama");
    // Sliding-window attention (Qwen3's use_sliding_window, transformers 5's layer_types) is refused, not run as full
    // attention: past the window the logits would differ from transformers'.
    if (r.b("use_sliding_window", false))
        throw Error(r.file + ": use_sliding_window = true is not supported by arch_llama");
    if (const MetaValue* lt = r.typed("layer_types", &MetaValue::is_array, "a list of layer types"))
        for (const MetaValue& e : lt->as_array("layer_types"))
            if (!e.is_string() || e.as_string("layer_types") != "full_attention")
                throw Error(r.file + ": layer_types entry " + (e.is_string() ? "'" + e.as_string("") + "'" : e.type) +
                            " is not supported by arch_llama (only full_attention)");
    // transformers 5 moved rope_theta and rope_scaling into rope_parameters; older configs have them top level.
    r.object("rope_parameters");
    r.object("rope_scaling");
    const bool rp = r.number("rope_parameters.rope_theta") || r.md.has("rope_parameters.rope_type");
    const std::string sc = rp ? "rope_parameters." : "rope_scaling.";
    c.base = rp ? r.f("rope_parameters.rope_theta", r.f("rope_theta", 10000.0)) : r.f("rope_theta", 10000.0);
    std::string type = r.s(sc + "rope_type", r.s(sc + "type", "default"));
    if (type == "linear") {
        const double factor = r.f(sc + "factor");
        if (factor <= 0) throw Error(r.file + ": " + sc + "factor must be positive");
        c.freq_scale = 1.0 / factor;
    } else if (type == "llama3") {
        c.freq_factors = llama3_freq_factors(int(c.n_rot), c.base, r.f(sc + "factor", 8.0),
                                             r.f(sc + "low_freq_factor", 1.0), r.f(sc + "high_freq_factor", 4.0),
                                             r.f(sc + "original_max_position_embeddings", 8192.0));
        c.freqs_name = "rope_freqs.llama3";  // computed, not in the file
    } else if (type != "default") {
        throw Error(r.file + ": rope scaling type '" + type + "' (" + sc + "rope_type) is not supported by arch_llama");
    }
    c.neox = true;  // HF checkpoints are rotate-half
    c.qk_norm = mt == "qwen3";
    c.tok_embd = "model.embed_tokens.weight";
    c.output_norm = "model.norm.weight";
    const bool tied = r.b("tie_word_embeddings", false);
    c.output = tied ? c.tok_embd : "lm_head.weight";
    c.names = blocks::hf_names("model.layers.{L}.");
}

class LlamaArch final : public Arch {
public:
    std::string name() const override { return "llama"; }
    std::vector<std::string> architectures() const override { return {"llama", "qwen3"}; }
    bool matches(const ModelSource& src) const override {
        const std::string a = src.architecture();
        return a == "llama" || a == "qwen3";
    }

    // The layers are the SDK's blocks, made directly from typed specs: no registry lookup.
    ModelDesc build(const ModelSource& src, const Registry&) const override {
        const Reader r = blocks::hparam_reader(src);
        Common c;
        if (src.kind() == ContainerKind::GGUF) read_gguf(src, r, c);
        else read_hf(src, r, c);
        if (c.n_head % c.n_kv != 0)
            throw Error(r.file + ": " + std::to_string(c.n_head) + " attention heads are not a multiple of " +
                        std::to_string(c.n_kv) + " KV heads");
        if (c.n_rot <= 0 || c.n_rot % 2 != 0 || c.n_rot > c.head_dim)
            throw Error(r.file + ": rotary dims " + std::to_string(c.n_rot) + " must be even and <= head dim " +
                        std::to_string(c.head_dim));

        ModelDesc d;
        d.arch = src.architecture();
        d.n_vocab = c.n_vocab;
        d.n_embd = c.n_embd;
        d.n_ctx_train = c.n_ctx;
        d.norm_eps = float(c.eps);
        d.tok_embd = c.tok_embd;
        d.output_norm = c.output_norm;
        d.output = c.output;
        auto hp = std::make_unique<Metadata>();
        hp->source = src.path();
        hp->set("n_embd", meta_int(c.n_embd));
        hp->set("n_head", meta_int(c.n_head));
        hp->set("n_head_kv", meta_int(c.n_kv));
        hp->set("head_dim", meta_int(c.head_dim));
        hp->set("n_ff", meta_int(c.n_ff));
        hp->set("norm_eps", meta_float(c.eps));
        hp->set("rope.n_rot", meta_int(c.n_rot));
        hp->set("rope.base", meta_float(c.base));
        hp->set("rope.neox", meta_bool(c.neox));
        hp->set("rope.freq_scale", meta_float(c.freq_scale));
        if (!c.freqs_name.empty()) hp->set("rope.freqs", meta_str(c.freqs_name));
        if (!c.freq_factors.empty()) {
            auto arr = std::make_shared<MetaArray>();
            for (double v : c.freq_factors) arr->push_back(meta_float(v));
            hp->set("rope.freq_factors", MetaValue{arr, "arr[f64]"});
        }
        hp->set("attn.scale", meta_float(c.attn_scale > 0 ? c.attn_scale : 1.0 / std::sqrt(double(c.head_dim))));
        hp->set("attn.qk_norm", meta_bool(c.qk_norm));
        for (const auto& [role, name] : c.names.names) hp->set("name." + role, meta_str(name));
        d.hparams = std::move(hp);

        blocks::AttentionSpec a;
        a.kind = "llama.attention";
        a.n_embd = c.n_embd;
        a.n_head = int(c.n_head);
        a.n_kv_head = int(c.n_kv);
        a.head_dim = int(c.head_dim);
        a.rope.n_rot = int(c.n_rot);
        a.rope.base = float(c.base);
        a.rope.neox = c.neox;
        a.rope.freq_scale = float(c.freq_scale);
        a.rope.freqs_name = c.freqs_name;
        for (double v : c.freq_factors) a.rope.freq_factors.push_back(float(v));
        a.qk_norm = c.qk_norm;
        a.eps = float(c.eps);
        a.scale = float(d.hparams->get_float("attn.scale"));
        a.names = c.names;
        a.source = &src;  // the q, k, v storage types choose what fuses (read while the block is built)
        blocks::FfnSpec f;
        f.kind = "llama.ffn";
        f.n_embd = c.n_embd;
        f.n_ff = c.n_ff;
        f.eps = float(c.eps);
        f.names = c.names;
        for (int i = 0; i < int(c.n_layer); ++i) {
            a.layer = f.layer = i;
            d.layers.push_back(blocks::make_attention(a));
            d.layers.push_back(blocks::make_swiglu_ffn(f));
        }
        return d;
    }
};

}  // namespace

std::unique_ptr<Arch> make_arch() { return std::make_unique<LlamaArch>(); }

}  // namespace imp::llama
