#include "model/quant_config.h"

#include <fnmatch.h>

#include <filesystem>
#include <memory>
#include <unordered_map>

#include "imp/error.h"
#include "model/mapped_file.h"
#include "tokenizer/regex.h"

namespace fs = std::filesystem;

namespace imp {

namespace {

constexpr uint64_t kMaxConfigBytes = 100'000'000;

json::Value read_object(const std::string& path) {
    auto f = MappedFile::open(path);
    if (f->size() > kMaxConfigBytes)
        throw Error(path + ": " + std::to_string(f->size()) + " bytes is too large for a JSON side file");
    json::Value v = json::parse(std::string_view(reinterpret_cast<const char*>(f->data()), size_t(f->size())), path);
    if (!v.is_object()) throw Error(path + ": top level is not a JSON object");
    return v;
}

// Reads the members of one quantization object (config.json quantization_config, or hf_quant_config.json
// "quantization") into q. `set_scalars`: overwrite scalar fields already set (hf_quant_config.json wins).
class Reader {
public:
    Reader(QuantConfig& q, std::string file, std::string prefix) : q_(q), file_(std::move(file)), prefix_(std::move(prefix)) {}

    void read(const json::Value& obj, bool overwrite) {
        string(obj, "quant_method", q_.method, overwrite);
        string(obj, "quant_algo", q_.algo, overwrite);
        string(obj, "format", q_.format, overwrite);
        string(obj, "kv_cache_quant_algo", q_.kv_cache_algo, overwrite);
        if (const json::Value* g = obj.get("group_size"); g && g->kind != json::Value::Kind::Null) {
            if (overwrite || q_.group_size == 0) q_.group_size = integer(*g, "group_size");
        }
        // compressed-tensors' groups: the 4-bit float group's size (the NVFP4 one, which is what group_size is read
        // for) wins over a group listed before it (an int4 or FP8 group of 128 in a mixed checkpoint), else the first
        if (const json::Value* cg = obj.get("config_groups"); cg && cg->is_object() && q_.group_size == 0) {
            for (const bool fp4_only : {true, false}) {
                for (const auto& grp : cg->items) {
                    const json::Value* w = grp.get("weights");
                    const json::Value* g = w ? w->get("group_size") : nullptr;
                    if (!g || !g->is_integer()) continue;
                    const json::Value* bits = w->get("num_bits");
                    const json::Value* type = w->get("type");
                    const bool fp4 = bits && bits->kind == json::Value::Kind::Int && bits->i == 4 && type &&
                                     type->is_string() && type->s == "float";
                    if (fp4_only && !fp4) continue;
                    q_.group_size = integer(*g, "config_groups.*.weights.group_size");
                    break;
                }
                if (q_.group_size != 0) break;
            }
        }
        patterns(obj, "exclude_modules");
        patterns(obj, "ignore");
        patterns(obj, "ignored_layers");  // AutoFP8 (quant_method "fp8"): whole module names, as vLLM matches them
        // quant_method "fp8" (AutoFP8, transformers' FP8) names no quant_algo: per-tensor or per-channel FP8 scales
        // ("FP8"), or block-wise ones when weight_block_size is given ("FP8_BLOCK", compressed-tensors' name).
        if (const json::Value* m = obj.get("quant_method"); m && m->is_string() && m->s == "fp8" &&
                                                             !obj.get("quant_algo") && (overwrite || q_.algo.empty())) {
            const json::Value* b = obj.get("weight_block_size");
            q_.algo = b && b->kind != json::Value::Kind::Null ? "FP8_BLOCK" : "FP8";
        }
        if (const json::Value* ql = obj.get("quantized_layers"); ql && ql->kind != json::Value::Kind::Null) {
            if (!ql->is_object()) fail("quantized_layers", "must be an object of module -> {quant_algo, group_size}");
            for (size_t i = 0; i < ql->items.size(); ++i) {
                const json::Value& e = ql->items[i];
                const std::string key = "quantized_layers." + ql->keys[i];
                if (!e.is_object()) fail(key, "must be an object");
                QuantConfig::Layer l;
                if (const json::Value* a = e.get("quant_algo")) {
                    if (!a->is_string()) fail(key + ".quant_algo", "must be a string");
                    l.algo = a->s;
                }
                if (const json::Value* g = e.get("group_size")) l.group_size = integer(*g, key + ".group_size");
                q_.layers[ql->keys[i]] = l;
            }
        }
    }

private:
    [[noreturn]] void fail(const std::string& key, const std::string& what) const {
        throw Error(file_ + ": key '" + prefix_ + key + "' " + what);
    }
    void string(const json::Value& obj, const char* key, std::string& out, bool overwrite) const {
        const json::Value* v = obj.get(key);
        if (!v || v->kind == json::Value::Kind::Null) return;
        if (!v->is_string()) fail(key, "must be a string");
        if (overwrite || out.empty()) out = v->s;
    }
    int64_t integer(const json::Value& v, const std::string& key) const {
        if (v.kind != json::Value::Kind::Int || v.i < 0) fail(key, "must be a non-negative integer");
        return v.i;
    }
    void patterns(const json::Value& obj, const char* key) const {
        const json::Value* v = obj.get(key);
        if (!v || v->kind == json::Value::Kind::Null) return;
        if (!v->is_array()) fail(key, "must be an array of module name patterns");
        for (const auto& e : v->items) {
            if (!e.is_string()) fail(key, "must be an array of strings");
            // "re:" patterns are compiled here, so a bad one is an error naming the file and key at load
            // ("config.json: key 'quantization_config.ignore': regex /(x/: missing closing parenthesis at offset 2").
            if (e.s.rfind("re:", 0) == 0) Regex check(e.s.substr(3), file_ + ": key '" + prefix_ + key + "'", true);
            bool seen = false;
            for (const auto& x : q_.exclude) seen = seen || x == e.s;
            if (!seen) q_.exclude.push_back(e.s);
        }
    }

    QuantConfig& q_;
    std::string file_, prefix_;
};

bool pattern_matches(const std::string& pattern, const std::string& module) {
    if (pattern.rfind("re:", 0) != 0) return ::fnmatch(pattern.c_str(), module.c_str(), 0) == 0;
    // Python's re.match (compressed-tensors' "re:" patterns): anchored at the start of the name, not at its end.
    thread_local std::unordered_map<std::string, std::unique_ptr<Regex>> cache;
    auto it = cache.find(pattern);
    if (it == cache.end())
        it = cache.emplace(pattern, std::make_unique<Regex>(pattern.substr(3), "quantization config", true)).first;
    return it->second->search(module);
}

}  // namespace

bool QuantConfig::excluded(const std::string& module) const {
    for (const auto& p : exclude)
        if (pattern_matches(p, module)) return true;
    return false;
}

std::string QuantConfig::algo_for(const std::string& module) const {
    if (auto it = layers.find(module); it != layers.end()) return it->second.algo;
    if (excluded(module)) return "";
    return algo;
}

QuantConfig parse_quant_config(const json::Value* qc, const std::string& config_file, const json::Value* hq,
                               const std::string& hf_file) {
    QuantConfig q;
    if (qc && qc->kind != json::Value::Kind::Null) {
        if (!qc->is_object()) throw Error(config_file + ": key 'quantization_config' must be an object");
        Reader r(q, config_file, "quantization_config.");
        r.read(*qc, false);
        // ModelOpt's nested form: {"quantization": {...}, "producer": {...}} inside quantization_config.
        if (const json::Value* inner = qc->get("quantization"); inner && inner->is_object()) {
            Reader ri(q, config_file, "quantization_config.quantization.");
            ri.read(*inner, false);
        }
        q.files.push_back(config_file);
    }
    if (hq) {
        if (!hq->is_object()) throw Error(hf_file + ": top level is not a JSON object");
        const json::Value* inner = hq->get("quantization");
        if (!inner || !inner->is_object()) throw Error(hf_file + ": no \"quantization\" object");
        Reader r(q, hf_file, "quantization.");
        r.read(*inner, true);
        if (q.method.empty()) {
            const json::Value* prod = hq->get("producer");
            const json::Value* name = prod ? prod->get("name") : nullptr;
            q.method = name && name->is_string() ? name->s : "modelopt";
        }
        q.files.push_back(hf_file);
    }
    return q;
}

QuantConfig read_quant_config(const ModelSource& src) {
    std::error_code ec;
    if (src.kind() != ContainerKind::Safetensors || !fs::is_directory(src.path(), ec)) return {};
    const fs::path dir(src.path());
    const std::string config = (dir / "config.json").string();
    const std::string hf = (dir / "hf_quant_config.json").string();
    json::Value cfg, hq;
    const json::Value* qc = nullptr;
    if (fs::exists(config, ec)) {
        cfg = read_object(config);
        qc = cfg.get("quantization_config");
    }
    const bool has_hf = fs::exists(hf, ec);
    if (has_hf) hq = read_object(hf);
    return parse_quant_config(qc, config, has_hf ? &hq : nullptr, hf);
}

}  // namespace imp
