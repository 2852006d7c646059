// Shared by the arch_gdn tests: the registry with the build tree's arch_gdn + quant_ggml plugins, the fixture folder
// (tools/make_gdn_fixtures.py, tools/gdn_hf_to_gguf.py) and transformers' reference logits of a fixture.
#pragma once
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "fixture_registry.h"  // plugins/arch_llama/tests: registry_with
#include "moe_fixture.h"       // plugins/arch_qwen_moe/tests: Reference, load_reference, rel_diff, read_text

namespace imp::test {

inline const std::string kGdnFixtures = GDN_FIXTURES;

inline Registry& gdn_registry() { return registry_with({"arch_gdn", "quant_ggml"}); }

// The reference of fixture `name` (a GGUF file "x.gguf" or "x_legacy.gguf" uses the folder "x"), read by
// arch_qwen_moe's loader, whose folder argument is relative to tests/fixtures/models.
inline Reference gdn_reference(std::string name) {
    for (const std::string suffix : {".gguf", "_legacy"})
        if (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
            name.resize(name.size() - suffix.size());
    return load_reference("../../../plugins/arch_gdn/tests/fixtures/" + name);
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
