// Shared by the arch_qwen_moe tests: the registry with the build tree's arch_qwen_moe + quant_ggml plugins, and the
// transformers reference of a fixture (tests/tools/make_moe_fixtures.py).
#pragma once
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

#include "exec/cpu/cpu_executor.h"
#include "fixture_registry.h"  // plugins/arch_llama/tests: registry_with, kFixtures
#include "imp/model.h"
#include "model/json.h"
#include "runtime/engine.h"

namespace imp::test {

inline Registry& moe_registry() { return registry_with({"arch_qwen_moe", "quant_ggml"}); }

inline std::string read_text(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    REQUIRE(f.good());
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

struct Reference {
    std::vector<int32_t> tokens, continuation;
    int64_t n_vocab = 0;
    std::vector<float> logits;  // [tokens + continuation, n_vocab]
};

inline Reference load_reference(const std::string& name) {
    const std::string dir = kFixtures + "/" + name;
    const json::Value v = json::parse(read_text(dir + "/reference.json"), dir + "/reference.json");
    Reference r;
    for (auto& t : v.get("tokens")->items) r.tokens.push_back(int32_t(t.i));
    for (auto& t : v.get("continuation")->items) r.continuation.push_back(int32_t(t.i));
    r.n_vocab = v.get("n_vocab")->i;
    const std::string raw = read_text(dir + "/reference_logits.f32");
    const size_t n = (r.tokens.size() + r.continuation.size()) * size_t(r.n_vocab);
    REQUIRE(raw.size() == n * 4);
    r.logits.resize(n);
    std::memcpy(r.logits.data(), raw.data(), raw.size());
    return r;
}

// max |got - ref| / max |ref| over rows [row0, row0 + rows) of the reference.
inline double rel_diff(const float* got, const Reference& ref, size_t row0, size_t rows) {
    double md = 0, mr = 0;
    const size_t V = size_t(ref.n_vocab);
    for (size_t i = 0; i < rows * V; ++i) {
        const double b = ref.logits[row0 * V + i];
        md = std::max(md, std::abs(double(got[i]) - b));
        mr = std::max(mr, std::abs(b));
    }
    return md / mr;
}

// A copy of the GGUF `in` with metadata KEY set to VALUE of TYPE (or removed: TYPE "delete"), written by the
// hostile-input tests' gguf-edit tool at `tool` to a temporary file named after `tag`; its path.
inline std::string gguf_edited(const std::string& tool, const std::string& in, const std::string& tag,
                               const std::string& key, const std::string& type, const std::string& value) {
    const std::filesystem::path out =
        std::filesystem::temp_directory_path() / ("imp-gguf-edit-" + std::to_string(::getpid()) + "-" + tag + ".gguf");
    const std::string cmd = "'" + tool + "' '" + in + "' '" + out.string() + "' '" + key + "' " + type + " '" + value +
                            "'";
    REQUIRE(std::system(cmd.c_str()) == 0);
    return out.string();
}

// max|diff| / max|ref| of the prompt's logits of the model at `path` (CPU executor, plugins of `reg`) against ref.
inline double prompt_rel_diff(const std::string& path, Registry& reg, const Reference& ref) {
    auto src = open_model(path);
    CpuExecutor ex(2);
    EngineOptions opt;
    opt.max_seq_len = 32;
    Engine eng(*src, reg, ex, opt);
    std::vector<float> a(ref.tokens.size() * size_t(ref.n_vocab));
    eng.forward(ref.tokens.data(), int64_t(ref.tokens.size()), a.data(), true);
    return rel_diff(a.data(), ref, 0, ref.tokens.size());
}

}  // namespace imp::test
