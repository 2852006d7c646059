// Shared by the arch_gdn tests: the registry with the build tree's arch_gdn + quant_ggml plugins, the fixture folder
// (tools/make_gdn_fixtures.py, tools/gdn_hf_to_gguf.py) and transformers' reference logits of a fixture.
#pragma once
#include <catch2/catch.hpp>

#include <cstring>
#include <string>
#include <vector>

#include "fixture_registry.h"  // plugins/arch_llama/tests: registry_with
#include "model/json.h"
#include "moe_fixture.h"       // plugins/arch_qwen_moe/tests: Reference, rel_diff, read_text

namespace imp::test {

inline const std::string kGdnFixtures = GDN_FIXTURES;

inline Registry& gdn_registry() { return registry_with({"arch_gdn", "quant_ggml"}); }

// The reference of fixture folder `name` (a GGUF file "x.gguf" or "x_legacy.gguf" uses the folder "x").
inline Reference gdn_reference(std::string name) {
    for (const std::string suffix : {".gguf", "_legacy"})
        if (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
            name.resize(name.size() - suffix.size());
    const std::string dir = kGdnFixtures + "/" + name;
    const json::Value v = json::parse(read_text(dir + "/reference.json"), dir + "/reference.json");
    Reference r;
    for (auto& t : v.get("tokens")->items) r.tokens.push_back(int32_t(t.i));
    for (auto& t : v.get("continuation")->items) r.continuation.push_back(int32_t(t.i));
    r.n_vocab = v.get("n_vocab")->i;
    const std::string raw = read_text(dir + "/reference_logits.f32");
    REQUIRE(raw.size() == (r.tokens.size() + r.continuation.size()) * size_t(r.n_vocab) * 4);
    r.logits.resize(raw.size() / 4);
    std::memcpy(r.logits.data(), raw.data(), raw.size());
    return r;
}

// max |a - b| / max |b|
inline double rel_max(const std::vector<float>& a, const std::vector<float>& b) {
    REQUIRE(a.size() == b.size());
    double md = 0, mr = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        md = std::max(md, double(std::abs(a[i] - b[i])));
        mr = std::max(mr, double(std::abs(b[i])));
    }
    return md / mr;
}

inline const std::vector<std::string>& gdn_fixture_files() {
    static const std::vector<std::string> f = {"qwen35moe_tiny", "qwen35moe_tiny.gguf", "qwen35_tiny",
                                               "qwen35_tiny.gguf",   "qwen3next_tiny",      "qwen3next_tiny.gguf",
                                               "qwen3next_tiny_legacy.gguf"};
    return f;
}

}  // namespace imp::test
