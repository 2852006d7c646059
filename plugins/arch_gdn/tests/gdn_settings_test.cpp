// The [plugin.arch_gdn] kernel variants give the same logits on the CPU executor: decode steps with the gated norm
// inside gdn.rule_decode or after it (decode_fused_norm), gdn.decode_step (decode_conv_fused; refused at load where its
// CUDA cluster would exceed 8 blocks), warp_kernels off, and every prefill_rule choice (CUDA
// variants: the CPU kernels ignore them, the layer still plans the workspace). The registry is shared by the process: each case sets
// the defaults back.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "exec/cpu/cpu_executor.h"
#include "gdn_fixture.h"
#include "imp/model.h"
#include "runtime/engine.h"

using namespace imp;
using namespace imp::test;

namespace {

// Prompt logits then 6 one-token decode steps.
std::vector<float> run(const ModelSource& src) {
    CpuExecutor ex(2);
    EngineOptions opt;
    opt.max_seq_len = 64;
    Engine eng(src, gdn_registry(), ex, opt);
    const size_t V = size_t(eng.desc().n_vocab);
    std::vector<int32_t> prompt{1, 17, 200, 45, 3, 99, 150, 7};
    std::vector<float> out(V), last(V);
    eng.forward(prompt.data(), int64_t(prompt.size()), out.data());
    for (int i = 0; i < 6; ++i) {
        const int32_t t = int32_t(10 + 37 * i);
        eng.forward(&t, 1, last.data());
        out.insert(out.end(), last.begin(), last.end());
    }
    return out;
}

}  // namespace

TEST_CASE("decode_fused_norm, decode_conv_fused, warp_kernels and prefill_rule choices give the same logits (CPU)",
          "[arch_gdn]") {
    Registry& reg = gdn_registry();
    for (const std::string name : {"qwen35moe_tiny.gguf", "qwen3next_tiny"}) {
        INFO(name);
        auto src = open_model(kGdnFixtures + "/" + name);
        const std::vector<float> base = run(*src);
        reg.configure("arch_gdn", "decode_fused_norm", false);
        const std::vector<float> unfused = run(*src);
        reg.configure("arch_gdn", "decode_fused_norm", true);
        CHECK(rel_max(unfused, base) <= 1e-6);
        reg.configure("arch_gdn", "decode_conv_fused", true);  // gdn.decode_step: the same CPU kernels in one op
        CHECK(run(*src) == base);
        reg.configure("arch_gdn", "decode_norm_ctas", std::string("8"));  // 2 v-heads per k-head x 8 > 8: at load
        CHECK_THROWS_WITH(run(*src), Catch::Contains("decode_conv_fused with decode_norm_ctas = 8: 2 value heads per "
                                                     "key head x 8 = 16 blocks per cluster, above 8") &&
                                         Catch::Contains("lower decode_norm_ctas to 4"));
        reg.configure("arch_gdn", "decode_norm_ctas", std::string("1"));
        reg.configure("arch_gdn", "decode_conv_fused", false);
        reg.configure("arch_gdn", "warp_kernels", false);  // a CUDA choice: the CPU kernels ignore it
        CHECK(run(*src) == base);
        reg.configure("arch_gdn", "warp_kernels", true);
        for (const std::string v : {"fused", "split64", "split32", "split32_mma_prep", "mma32", "mma64"}) {
            INFO("prefill_rule " << v);
            reg.configure("arch_gdn", "prefill_rule", v);
            CHECK(run(*src) == base);
        }
        reg.configure("arch_gdn", "prefill_rule", std::string("auto"));
    }
    CHECK_THROWS_WITH(reg.configure("arch_gdn", "prefill_rule", std::string("split16")), Catch::Contains("split16"));
}

TEST_CASE("prefix caching is off for the hybrids (a recurrent state cannot resume from a prefix)", "[arch_gdn]") {
    auto src = open_model(kGdnFixtures + "/qwen35moe_tiny.gguf");
    CpuExecutor ex(1);
    EngineOptions opt;
    opt.max_seq_len = 64;
    opt.prefix_cache = true;
    Engine eng(*src, gdn_registry(), ex, opt);
    CHECK_FALSE(eng.prefix_cache());
    std::vector<int32_t> p(40, 7);
    SeqId a = eng.add_sequence();
    eng.step(std::vector<SeqWork>{{a, p.data(), int64_t(p.size())}});
    eng.release_sequence(a);
    a = eng.add_sequence();
    CHECK(eng.attach_prefix(a, p) == 0);
    CHECK(eng.position(a) == 0);
}
