// Several sequences in one step through the MoE model on the CPU executor: each token is routed on its own, so the
// greedy tokens and logits of sequences stepped together (joining mid-run, prompts spanning several passes) equal
// each sequence run alone.
#include <catch2/catch.hpp>

#include <random>
#include <string>
#include <vector>

#include "batch_harness.h"  // plugins/arch_llama/tests: run_alone, run_together
#include "exec/cpu/cpu_executor.h"
#include "imp/model.h"
#include "moe_fixture.h"
#include "runtime/engine.h"

using namespace imp;
using namespace imp::test;

namespace {

constexpr int kDecode = 5;

}  // namespace

TEST_CASE("MoE sequences stepped together equal each sequence alone (CPU)", "[arch_qwen_moe][batch]") {
    for (const std::string name : {"qwen3moe_tiny.gguf", "qwen3moe_tiny_fused"}) {
        INFO(name);
        auto src = open_model(kFixtures + "/" + name);
        CpuExecutor ex(2);
        EngineOptions opt;
        opt.max_seq_len = 128;
        opt.prefill_chunk = 40;
        opt.max_seqs = 8;
        Engine together(*src, moe_registry(), ex, opt);
        EngineOptions one = opt;
        one.max_seqs = 1;
        Engine alone(*src, moe_registry(), ex, one);
        std::mt19937 g(11);
        std::vector<std::vector<int32_t>> prompts(8);
        for (size_t i = 0; i < prompts.size(); ++i) {
            prompts[i].resize(i == 0 ? 1 : size_t(1 + g() % 90));
            for (auto& t : prompts[i]) t = int32_t(g() % 320);
        }
        const std::vector<int> join = {0, 0, 0, 1, 2, 2, 4, 6};
        const auto got = run_together(together, prompts, join, kDecode);
        for (size_t i = 0; i < prompts.size(); ++i) {
            INFO("sequence " << i << ", prompt of " << prompts[i].size());
            const Trace ref = run_alone(alone, prompts[i], kDecode);
            CHECK(got[i].tokens == ref.tokens);
            REQUIRE(got[i].logits.size() == ref.logits.size());
            double md = 0, mr = 0;
            for (size_t j = 0; j < ref.logits.size(); ++j) {
                md = std::max(md, double(std::abs(got[i].logits[j] - ref.logits[j])));
                mr = std::max(mr, double(std::abs(ref.logits[j])));
            }
            CHECK(md <= 1e-5 * mr);  // same routing and per-token math; only summation blocking may differ
        }
    }
}
