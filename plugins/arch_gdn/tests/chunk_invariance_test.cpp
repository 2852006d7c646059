// The recurrent state crosses chunk boundaries exactly: a 300-token prompt prefilled in one chunk, in chunks of 7
// and token by token gives the same logits at every position (<= 1e-5 relative on the CPU), for both tiny hybrids.
#include <catch2/catch.hpp>

#include <random>
#include <string>
#include <vector>

#include "exec/cpu/cpu_executor.h"
#include "gdn_fixture.h"
#include "imp/model.h"
#include "runtime/engine.h"

using namespace imp;
using namespace imp::test;

namespace {

constexpr int64_t kPrompt = 300;

std::vector<float> run(const ModelSource& src, const std::vector<int32_t>& prompt, int64_t chunk) {
    CpuExecutor ex(2);
    EngineOptions opt;
    opt.max_seq_len = 320;
    opt.prefill_chunk = chunk;
    Engine eng(src, gdn_registry(), ex, opt);
    const size_t V = size_t(eng.desc().n_vocab);
    std::vector<float> logits(prompt.size() * V);
    if (chunk > 1) {
        eng.forward(prompt.data(), int64_t(prompt.size()), logits.data(), true);
    } else {
        for (size_t i = 0; i < prompt.size(); ++i) eng.forward(&prompt[i], 1, logits.data() + i * V, false);
    }
    return logits;
}

}  // namespace

TEST_CASE("a 300-token prompt in one chunk, in chunks of 7 and token by token gives the same logits", "[arch_gdn]") {
    for (const std::string name : {"qwen35moe_tiny", "qwen3next_tiny.gguf"}) {
        INFO(name);
        auto src = open_model(kGdnFixtures + "/" + name);
        std::mt19937 g(300);
        std::vector<int32_t> prompt(static_cast<size_t>(kPrompt));
        for (auto& t : prompt) t = int32_t(g() % 320);
        const std::vector<float> whole = run(*src, prompt, 512);
        const std::vector<float> sevens = run(*src, prompt, 7);
        const std::vector<float> single = run(*src, prompt, 1);
        CHECK(rel_max(sevens, whole) <= 1e-5);
        CHECK(rel_max(single, whole) <= 1e-5);
    }
}
