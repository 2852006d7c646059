// Several sequences in one step through the hybrids on the CPU executor: each sequence keeps its own recurrent
// state slot (conv window + delta-rule state) and KV blocks, so sequences stepped together — joining mid-run, prompts
// spanning several passes, decode rows beside prefill rows — give the logits and greedy tokens of each one alone.
#include <catch2/catch.hpp>

#include <random>
#include <string>
#include <vector>

#include "exec/cpu/cpu_executor.h"
#include "batch_harness.h"  // plugins/arch_llama/tests: run_alone, run_together
#include "gdn_fixture.h"
#include "imp/model.h"
#include "runtime/engine.h"

using namespace imp;
using namespace imp::test;

namespace {

constexpr int kDecode = 5;

}  // namespace

TEST_CASE("hybrid sequences stepped together equal each sequence alone (CPU)", "[arch_gdn][batch]") {
    for (const std::string name : {"qwen35moe_tiny.gguf", "qwen3next_tiny"}) {
        INFO(name);
        auto src = open_model(kGdnFixtures + "/" + name);
        CpuExecutor ex(2);
        EngineOptions opt;
        opt.max_seq_len = 128;
        opt.prefill_chunk = 40;
        opt.max_seqs = 4;
        Engine together(*src, gdn_registry(), ex, opt);
        EngineOptions one = opt;
        one.max_seqs = 1;
        Engine alone(*src, gdn_registry(), ex, one);
        std::mt19937 g(12);
        std::vector<std::vector<int32_t>> prompts(7);
        for (size_t i = 0; i < prompts.size(); ++i) {
            prompts[i].resize(i == 0 ? 1 : size_t(1 + g() % 90));
            for (auto& t : prompts[i]) t = int32_t(g() % 320);
        }
        const std::vector<int> join = {0, 0, 1, 2, 6, 7, 9};  // at most 4 alive at once
        const auto got = run_together(together, prompts, join, kDecode);
        for (size_t i = 0; i < prompts.size(); ++i) {
            INFO("sequence " << i << ", prompt of " << prompts[i].size());
            const Trace ref = run_alone(alone, prompts[i], kDecode);
            CHECK(got[i].tokens == ref.tokens);
            CHECK(rel_max(got[i].logits, ref.logits) <= 1e-5);
        }
    }
}
