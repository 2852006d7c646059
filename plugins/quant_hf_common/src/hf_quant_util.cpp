// quant_fp8 / quant_nvfp4: shared config and scale-tensor helpers (see hf_quant_util.h).
#include "hf_quant_util.h"

#include <cmath>
#include <cstring>

#include "imp/error.h"

namespace imp::quant_hf {

std::string shape_str(const std::vector<int64_t>& s) {
    std::string r = "[";
    for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
    return r + "]";
}

namespace {

std::vector<std::string> name_variants(const std::string& module) {
    static const std::string mm = "model.language_model.", plain = "model.";
    std::vector<std::string> v{module};
    if (module.rfind(mm, 0) == 0) v.push_back(plain + module.substr(mm.size()));
    else if (module.rfind(plain, 0) == 0) v.push_back(mm + module.substr(plain.size()));
    return v;
}

}  // namespace

ModuleAlgo module_algo(const QuantConfig& q, const std::string& module) {
    ModuleAlgo r;
    const auto names = name_variants(module);
    // The module itself, then its ancestors ("...mlp.experts" covers "...mlp.experts.5.gate_proj").
    for (const auto& full : names) {
        std::string n = full;
        while (!n.empty()) {
            auto it = q.layers.find(n);
            if (it != q.layers.end()) {
                r.algo = it->second.algo;
                r.listed = true;
                r.group_size = it->second.group_size ? it->second.group_size : q.group_size;
                r.key = "quantized_layers." + n;
                return r;
            }
            const size_t dot = n.rfind('.');
            n = dot == std::string::npos ? std::string() : n.substr(0, dot);
        }
    }
    for (const auto& n : names)
        if (q.excluded(n)) {
            r.excluded = true;
            r.key = "exclude_modules / ignore";
            return r;
        }
    r.algo = q.algo;
    r.group_size = q.group_size;
    r.key = "quant_algo";
    return r;
}

std::string config_files(const QuantConfig& q) {
    if (q.files.empty()) return "no quantization config";
    std::string r;
    for (const auto& f : q.files) r += (r.empty() ? "" : ", ") + f;
    return r;
}

std::vector<float> read_f32(const TensorInfo& t, const std::string& plugin, int64_t want) {
    const int64_t n = t.numel();
    if (t.type != "F32")
        throw Error(plugin + ": scale tensor '" + t.name + "' has type " + t.type + ", expected F32");
    if (want >= 0 && n != want)
        throw Error(plugin + ": scale tensor '" + t.name + "' " + shape_str(t.shape) + " has " + std::to_string(n) +
                    " values, expected " + std::to_string(want));
    if (n < 0 || t.nbytes != uint64_t(n) * 4 || (n > 0 && !t.data))
        throw Error(plugin + ": scale tensor '" + t.name + "' holds " + std::to_string(t.nbytes) + " bytes, expected " +
                    std::to_string(uint64_t(n) * 4));
    std::vector<float> v(static_cast<size_t>(n));
    if (n) std::memcpy(v.data(), t.data, size_t(n) * 4);
    return v;
}

std::vector<float> read_floats(const TensorInfo& t, const std::string& plugin) {
    if (t.type == "F32") return read_f32(t, plugin);
    const int64_t n = t.numel();
    if (t.type != "BF16" && t.type != "F16")
        throw Error(plugin + ": scale tensor '" + t.name + "' has type " + t.type + ", expected F32, BF16 or F16");
    if (n < 0 || t.nbytes != uint64_t(n) * 2 || (n > 0 && !t.data))
        throw Error(plugin + ": scale tensor '" + t.name + "' holds " + std::to_string(t.nbytes) + " bytes, expected " +
                    std::to_string(uint64_t(n) * 2));
    std::vector<float> v(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, t.data + 2 * i, 2);
        uint32_t bits;
        if (t.type == "BF16") {
            bits = uint32_t(h) << 16;
        } else {  // IEEE half to float, exactly
            const uint32_t sign = uint32_t(h & 0x8000) << 16, exp = (h >> 10) & 0x1F, man = h & 0x3FF;
            if (exp == 0x1F) {
                bits = sign | 0x7F800000u | (man << 13);
            } else if (exp != 0) {
                bits = sign | ((exp + 112) << 23) | (man << 13);
            } else {
                float f = std::ldexp(float(man), -24);
                std::memcpy(&bits, &f, 4);
                bits |= sign;
            }
        }
        std::memcpy(&v[size_t(i)], &bits, 4);
    }
    return v;
}

bool FormatRules::reads_algo(const std::string& a) const {
    for (const auto& x : algos)
        if (a == x) return true;
    return false;
}

void check_module(const FormatRules& r, const QuantConfig& q, const ModuleAlgo& m, const std::string& tensor,
                  const std::string& module) {
    const std::string where = " (" + config_files(q) + ")";
    auto fail = [&](const std::string& what) { throw Error(r.plugin + ": " + what + where); };
    if (m.excluded)
        fail("'" + tensor + "' " + r.holds + " but module '" + module +
             "' matches an exclude_modules / ignore pattern of the quantization config");
    if (q.method == "compressed-tensors" && m.algo.empty()) {
        if (q.format.empty() || q.format == "mixed-precision") return;
        for (const auto& f : r.ct_formats)
            if (q.format == f) return;
        fail("'" + tensor + "' " + r.holds + " but key 'format' is '" + q.format + "', not " + r.ct_formats.at(0));
    }
    if (r.reads_algo(m.algo)) return;
    if (m.algo.empty() || m.algo == "MIXED_PRECISION")
        fail("'" + tensor + "' " + r.holds + " but module '" + module + "' has no " + r.kind + " entry in key '" +
             (m.algo.empty() ? std::string("quant_algo") : std::string("quantized_layers")) +
             "' of the quantization config");
    fail("'" + tensor + "': key '" + m.key + "' is quant_algo '" + m.algo + "', which " + r.plugin +
         " does not read " + r.reads);
}

void check_missing(const FormatRules& r, const QuantConfig* q, const std::string& module, const std::string& have) {
    if (!q || q->layers.empty()) return;
    const ModuleAlgo m = module_algo(*q, module);
    if (!m.listed || !r.reads_algo(m.algo)) return;
    throw Error(r.plugin + ": key '" + m.key + "' of the quantization config (" + config_files(*q) + ") makes '" +
                module + "' " + m.algo + ", but its tensors are not " + r.kind + " (" + have + ")");
}

}  // namespace imp::quant_hf
