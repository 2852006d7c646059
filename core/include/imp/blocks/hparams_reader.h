// imp SDK blocks: what an arch plugin reads a model file's hyper-parameters with (GGUF keys or config.json), with the
// file name in every message, and writes the normalized keys of the blocks' from_hparams adapters with
// (ModelDesc::hparams). Header only; used by arch_llama, arch_qwen_moe and arch_gdn.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "imp/error.h"
#include "imp/metadata.h"
#include "imp/model.h"

namespace imp::blocks {

// Values for Metadata::set.
inline MetaValue meta_int(int64_t v) { return MetaValue{v, "i64"}; }
inline MetaValue meta_float(double v) { return MetaValue{v, "f64"}; }
inline MetaValue meta_bool(bool v) { return MetaValue{v, "bool"}; }
inline MetaValue meta_str(const std::string& v) { return MetaValue{v, "str"}; }

// Typed reads of md's keys; a JSON null counts as absent. A key that is present must have the type asked for (and
// an integer must fit int64): otherwise, as when a required key is missing, imp::Error names `file`, the key and the
// type or value found. A config.json object is flattened to "<key>.<name>" keys (object() checks `key` itself).

struct HparamReader {
    const Metadata& md;
    std::string file;

    // `key`'s value, or null when absent; present but not `fits` (MetaValue::is_number, is_int, ...): an error.
    const MetaValue* typed(const std::string& key, bool (MetaValue::*fits)() const, const char* want) const {
        const MetaValue* v = md.find(key);  // JSON null is absent (the reader leaves it out)
        if (v && !(v->*fits)())
            throw Error(file + ": hyper-parameter '" + key + "' is " + v->type + ", expected " + want);
        return v;
    }
    const MetaValue* number(const std::string& key) const { return typed(key, &MetaValue::is_number, "a number"); }
    int64_t i(const std::string& key) const {
        const MetaValue* v = typed(key, &MetaValue::is_int, "an integer");
        if (!v) throw Error(file + ": missing hyper-parameter '" + key + "'");
        return in_file(file, [&] { return v->as_int(key); });  // a u64 above INT64_MAX
    }
    int64_t i(const std::string& key, int64_t fallback) const { return md.find(key) ? i(key) : fallback; }
    double f(const std::string& key) const {
        const MetaValue* v = number(key);
        if (!v) throw Error(file + ": missing hyper-parameter '" + key + "'");
        return v->as_float(key);
    }
    double f(const std::string& key, double fallback) const { return md.find(key) ? f(key) : fallback; }
    bool b(const std::string& key, bool fallback) const {
        const MetaValue* v = typed(key, &MetaValue::is_bool, "a bool");
        return v ? v->as_bool(key) : fallback;
    }
    std::string s(const std::string& key, const std::string& fallback) const {
        const MetaValue* v = typed(key, &MetaValue::is_string, "a string");
        return v ? v->as_string(key) : fallback;
    }
    // A config.json object flattened to "<key>.<name>" keys: a value under `key` itself is not an object.
    void object(const std::string& key) const {
        if (const MetaValue* v = md.find(key))
            throw Error(file + ": hyper-parameter '" + key + "' is " + v->type + ", expected an object");
    }
    // An array of integers (absent or JSON null: empty).
    std::vector<int64_t> ints(const std::string& key) const {
        const MetaValue* v = typed(key, &MetaValue::is_array, "a list of integers");
        std::vector<int64_t> out;
        if (!v) return out;
        for (const auto& e : v->as_array(key)) {
            if (!e.is_int()) throw Error(file + ": hyper-parameter '" + key + "' must be a list of integers");
            out.push_back(in_file(file, [&] { return e.as_int(key); }));
        }
        return out;
    }
    int64_t positive(const std::string& key, int64_t v) const {
        if (v <= 0) throw Error(file + ": hyper-parameter '" + key + "' must be positive, got " + std::to_string(v));
        return v;
    }
    // The head dim: `dim_key` when given, else n_embd / n_head (read from `embd_key` and `heads_key`), which must
    // divide exactly.
    int64_t head_dim(const std::string& dim_key, const std::string& embd_key, int64_t n_embd,
                     const std::string& heads_key, int64_t n_head) const {
        if (md.find(dim_key)) return positive(dim_key, i(dim_key));
        if (n_embd % n_head != 0)
            throw Error(file + ": " + embd_key + " " + std::to_string(n_embd) + " is not a multiple of " + heads_key +
                        " " + std::to_string(n_head) + " (and no " + dim_key + " is given)");
        return n_embd / n_head;
    }
    // config.json's FFN activation (`key`, e.g. "hidden_act"; absent: silu): the SwiGLU blocks compute silu, so any
    // other activation is refused rather than run as silu.
    void require_silu(const std::string& key, const std::string& who) const {
        if (const std::string a = s(key, "silu"); a != "silu" && a != "swish")
            throw Error(file + ": " + key + " '" + a + "' is not supported by " + who + " (only silu)");
    }
};

// The reader of src's hyper-parameters, naming the file they came from (a model folder's config.json).
inline HparamReader hparam_reader(const ModelSource& src) {
    const Metadata& md = src.metadata();
    return HparamReader{md, md.source.empty() ? src.path() : md.source};
}

// A GGUF's rope frequency scale as llama.cpp uses it: <a>.rope.scaling.type (absent: linear) "none" never scales;
// "linear" takes <a>.rope.scaling.factor, else the older <a>.rope.scale_linear: 1 / factor, 1 without one. Any other
// type (yarn, ...) is refused.
inline double gguf_rope_freq_scale(const HparamReader& r, const std::string& a) {
    const std::string type = r.s(a + ".rope.scaling.type", "linear");
    if (type == "none") return 1.0;
    if (type != "linear")
        throw Error(r.file + ": rope scaling type '" + type + "' (" + a + ".rope.scaling.type) is not supported");
    std::string key = a + ".rope.scaling.factor";
    double factor = r.f(key, 0.0);
    if (factor == 0.0) factor = r.f(key = a + ".rope.scale_linear", 0.0);
    if (factor < 0) throw Error(r.file + ": " + key + " must be positive");
    return factor > 0 ? 1.0 / factor : 1.0;
}

// The first bias tensor of any GGUF layer ("blk.N.attn_k.bias", ...; empty when none): for blocks that have no bias,
// which must refuse such a file rather than run without the biases.
inline std::string gguf_layer_bias(const ModelSource& src) {
    for (const auto& t : src.tensors())
        if (t.name.rfind("blk.", 0) == 0 && t.name.size() > 5 && t.name.compare(t.name.size() - 5, 5, ".bias") == 0)
            return t.name;
    return "";
}

// The attention keys every GGUF transformer architecture `a` has: <a>.embedding_length, .block_count,
// .attention.head_count, .attention.head_count_kv (default head_count), .attention.key_length (default
// embedding_length / head_count, which must divide; .attention.value_length must equal it),
// .attention.layer_norm_rms_epsilon, .rope.freq_base (default 10000), .context_length (default 0: unknown),
// .attention.scale (default 0: 1/sqrt(head dim)). Counts and dims must be positive.
struct GgufAttentionKeys {
    int64_t n_embd = 0, n_layer = 0, n_head = 0, n_kv = 0, head_dim = 0, n_ctx = 0;
    double eps = 0, rope_base = 10000.0, attn_scale = 0;
};
inline GgufAttentionKeys read_gguf_attention(const HparamReader& r, const std::string& a) {
    GgufAttentionKeys k;
    k.n_embd = r.positive(a + ".embedding_length", r.i(a + ".embedding_length"));
    k.n_layer = r.positive(a + ".block_count", r.i(a + ".block_count"));
    k.n_head = r.positive(a + ".attention.head_count", r.i(a + ".attention.head_count"));
    k.n_kv = r.positive(a + ".attention.head_count_kv", r.i(a + ".attention.head_count_kv", k.n_head));
    k.head_dim = r.head_dim(a + ".attention.key_length", a + ".embedding_length", k.n_embd,
                            a + ".attention.head_count", k.n_head);
    if (const int64_t vdim = r.i(a + ".attention.value_length", k.head_dim); vdim != k.head_dim)
        throw Error(r.file + ": " + a + ".attention.value_length " + std::to_string(vdim) + " differs from key_length " +
                    std::to_string(k.head_dim) + " (not supported)");
    k.eps = r.f(a + ".attention.layer_norm_rms_epsilon");
    k.rope_base = r.f(a + ".rope.freq_base", 10000.0);
    k.n_ctx = r.i(a + ".context_length", 0);
    k.attn_scale = r.f(a + ".attention.scale", 0.0);
    return k;
}

}  // namespace imp::blocks
