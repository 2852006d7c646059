// quant_fp8 / quant_nvfp4 tests: a tiny quantized checkpoint (tests/tools/make_quant_fixtures.py) run through the
// engine on the CPU executor with the build tree's arch_llama, quant_ggml, quant_nvfp4 and quant_fp8 plugins must
// give transformers' fp32 logits on the producers' dequantized weights (<= 1e-4 relative), prompt and continuation
// through the KV cache, fused and unfused weights.
#pragma once
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "exec/cpu/cpu_executor.h"
#include "imp/model.h"
#include "imp/registry.h"
#include "model/json.h"
#include "plugin/loader.h"
#include "runtime/engine.h"

namespace imp::quant_test {

inline const std::string kPluginDir = std::string(IMP_BINARY_DIR) + "/lib/imp/plugins";

inline Registry& quant_registry() {
    static Registry reg;
    static PluginLoader loader(reg, {kPluginDir});
    static bool loaded = false;
    if (!loaded) {
        for (const char* p : {"arch_llama", "quant_ggml", "quant_nvfp4", "quant_fp8"}) loader.load(p);
        loaded = true;
    }
    return reg;
}

// The same with the mixture-of-experts architecture (arch_qwen_moe), when the build has it; null otherwise.
inline Registry* moe_registry() {
    static Registry reg;
    static std::unique_ptr<PluginLoader> loader;
    if (!loader) {
        bool have = false;
        std::error_code ec;
        for (const auto& e : std::filesystem::directory_iterator(kPluginDir, ec))
            have = have || e.path().filename().string().find("arch_qwen_moe") != std::string::npos;
        if (!have) return nullptr;
        loader = std::make_unique<PluginLoader>(reg, std::vector<std::string>{kPluginDir});
        for (const char* p : {"arch_qwen_moe", "quant_ggml", "quant_nvfp4", "quant_fp8"}) loader->load(p);
    }
    return &reg;
}

inline std::string read_text(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    REQUIRE(f.good());
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

// max |a - b| / max |b| of the logits against the reference rows [row0, row0 + rows).
inline double rel_diff(const float* got, const std::vector<float>& ref, size_t V, size_t row0, size_t rows) {
    double md = 0, mr = 0;
    for (size_t i = 0; i < rows * V; ++i) {
        const double b = ref[row0 * V + i];
        md = std::max(md, std::abs(double(got[i]) - b));
        mr = std::max(mr, std::abs(b));
    }
    return md / mr;
}

inline void check_model(const std::string& dir, bool fuse, Registry& reg = quant_registry()) {
    INFO("model " << dir << (fuse ? " (fused weights)" : " (unfused)"));
    const json::Value v = json::parse(read_text(dir + "/reference.json"), dir + "/reference.json");
    std::vector<int32_t> toks, cont;
    for (auto& t : v.get("tokens")->items) toks.push_back(int32_t(t.i));
    for (auto& t : v.get("continuation")->items) cont.push_back(int32_t(t.i));
    const size_t V = size_t(v.get("n_vocab")->i), n1 = toks.size(), n2 = cont.size();
    const std::string raw = read_text(dir + "/reference_logits.f32");
    REQUIRE(raw.size() == (n1 + n2) * V * 4);
    std::vector<float> ref((n1 + n2) * V);
    std::memcpy(ref.data(), raw.data(), raw.size());

    auto src = open_model(dir);
    CpuExecutor ex(2);
    EngineOptions opt;
    opt.max_seq_len = 32;
    opt.prefill_chunk = 5;
    opt.fuse_weights = fuse;
    Engine eng(*src, reg, ex, opt);
    REQUIRE(eng.desc().n_vocab == int64_t(V));
    if (fuse) CHECK(eng.plan().fused > 0);
    std::vector<float> a(n1 * V), b(n2 * V);
    eng.forward(toks.data(), int64_t(n1), a.data(), true);
    eng.forward(cont.data(), int64_t(n2), b.data(), true);
    const double d1 = rel_diff(a.data(), ref, V, 0, n1), d2 = rel_diff(b.data(), ref, V, n1, n2);
    INFO("prompt rel diff " << d1 << ", continuation rel diff " << d2);
    CHECK(d1 <= 1e-4);
    CHECK(d2 <= 1e-4);
    // Decode one token at a time.
    eng.reset();
    std::vector<float> last(V);
    eng.forward(toks.data(), int64_t(n1), last.data(), false);
    for (size_t i = 0; i < n2; ++i) {
        eng.forward(&cont[i], 1, last.data(), false);
        INFO("decode step " << i);
        CHECK(rel_diff(last.data(), ref, V, n1 + i, 1) <= 1e-4);
    }
}

}  // namespace imp::quant_test
