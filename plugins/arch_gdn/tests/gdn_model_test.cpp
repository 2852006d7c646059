// arch_gdn end to end on the CPU executor: the tiny random Qwen3.5-MoE (multimodal wrapper, separate GDN
// projections, 2 key / 4 value heads, explicit layer_types) and Qwen3-Next (grouped projections, schedule from
// full_attention_interval) give transformers' logits (max|diff| / max|ref| <= 1e-4) from safetensors and from the
// GGUFs (qwen35moe: tiled v-head order; qwen3next: grouped order, attn_qkv + attn_gate or the legacy ssm_in), over a
// prompt and a continuation (the recurrent state and the KV cache carried over), prefilled whole or in small chunks,
// and decoded one token at a time.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "exec/cpu/cpu_executor.h"
#include "gdn_fixture.h"
#include "imp/error.h"
#include "imp/model.h"
#include "runtime/engine.h"

using namespace imp;
using namespace imp::test;

namespace {

void check_fixture(const std::string& name, int64_t chunk, int threads) {
    INFO(name << ", prefill_chunk " << chunk);
    const Reference ref = gdn_reference(name);
    auto src = open_model(kGdnFixtures + "/" + name);
    CpuExecutor ex(threads);
    EngineOptions opt;
    opt.max_seq_len = 32;
    opt.prefill_chunk = chunk;
    Engine eng(*src, gdn_registry(), ex, opt);
    REQUIRE(eng.desc().n_vocab == ref.n_vocab);
    const size_t V = size_t(ref.n_vocab), n1 = ref.tokens.size(), n2 = ref.continuation.size();
    std::vector<float> a(n1 * V), b(n2 * V);
    eng.forward(ref.tokens.data(), int64_t(n1), a.data(), true);
    eng.forward(ref.continuation.data(), int64_t(n2), b.data(), true);
    const double d1 = rel_diff(a.data(), ref, 0, n1), d2 = rel_diff(b.data(), ref, n1, n2);
    INFO("prompt rel diff " << d1 << ", continuation rel diff " << d2);
    CHECK(d1 <= 1e-4);
    CHECK(d2 <= 1e-4);
    eng.reset();  // one token at a time (the decode rule and the conv state update)
    std::vector<float> last(V);
    eng.forward(ref.tokens.data(), int64_t(n1), last.data(), false);
    CHECK(rel_diff(last.data(), ref, n1 - 1, 1) <= 1e-4);
    for (size_t i = 0; i < n2; ++i) {
        eng.forward(&ref.continuation[i], 1, last.data(), false);
        INFO("decode step " << i);
        CHECK(rel_diff(last.data(), ref, n1 + i, 1) <= 1e-4);
    }
}

}  // namespace

TEST_CASE("Qwen3.5-MoE tiny (multimodal wrapper) from safetensors matches transformers", "[arch_gdn]") {
    check_fixture("qwen35moe_tiny", 512, 2);
    check_fixture("qwen35moe_tiny", 5, 1);
}

TEST_CASE("Qwen3.5-MoE tiny from GGUF (tiled v-heads) matches transformers", "[arch_gdn]") {
    check_fixture("qwen35moe_tiny.gguf", 512, 2);
    check_fixture("qwen35moe_tiny.gguf", 3, 1);
}

TEST_CASE("dense Qwen3.5 tiny (text-only model, SwiGLU FFN) from safetensors and GGUF matches transformers",
          "[arch_gdn]") {
    check_fixture("qwen35_tiny", 512, 2);
    check_fixture("qwen35_tiny.gguf", 5, 1);
}

TEST_CASE("Qwen3-Next tiny (grouped projections) from safetensors matches transformers", "[arch_gdn]") {
    check_fixture("qwen3next_tiny", 512, 2);
    check_fixture("qwen3next_tiny", 4, 1);
}

TEST_CASE("Qwen3-Next tiny from GGUF (attn_qkv + attn_gate, and legacy ssm_in) matches transformers", "[arch_gdn]") {
    check_fixture("qwen3next_tiny.gguf", 512, 2);
    check_fixture("qwen3next_tiny_legacy.gguf", 512, 2);
    check_fixture("qwen3next_tiny_legacy.gguf", 6, 1);
}

TEST_CASE("the layer schedule: layer_types, full_attention_interval, tensors of the GGUF", "[arch_gdn]") {
    const std::vector<std::pair<std::string, std::string>> want = {
        {"qwen35moe_tiny", "GAGGA"}, {"qwen35moe_tiny.gguf", "GAGGA"}, {"qwen35_tiny", "GGA"},
        {"qwen35_tiny.gguf", "GGA"}, {"qwen3next_tiny", "GAGA"}, {"qwen3next_tiny.gguf", "GAGA"}};
    for (const auto& [name, sched] : want) {
        INFO(name);
        auto src = open_model(kGdnFixtures + "/" + name);
        CpuExecutor ex(1);
        EngineOptions opt;
        opt.max_seq_len = 16;
        Engine eng(*src, gdn_registry(), ex, opt);
        const ModelDesc& d = eng.desc();
        REQUIRE(d.layers.size() == 2 * sched.size());
        for (size_t i = 0; i < sched.size(); ++i) {
            INFO("layer " << i);
            CHECK(d.layers[2 * i]->kind() == (sched[i] == 'A' ? "gdn.attention" : "gdn.linear_attention"));
            CHECK(d.layers[2 * i + 1]->kind() == (name.rfind("qwen35_", 0) == 0 ? "gdn.ffn" : "gdn.moe"));
        }
        CHECK(d.output != d.tok_embd);  // untied LM head
        CHECK(d.hparams->get_int("gdn.n_v_heads") == (name.rfind("qwen35_", 0) == 0 ? 2 : 4));
        CHECK(d.hparams->get_bool("gdn.tiled") == (name == "qwen35moe_tiny.gguf"));
    }
}

TEST_CASE("GDN projections fuse into one matmul per storage type, fused or not the same logits", "[arch_gdn]") {
    for (const std::string name : {"qwen35moe_tiny", "qwen3next_tiny.gguf"}) {
        INFO(name);
        const Reference ref = gdn_reference(name);
        auto src = open_model(kGdnFixtures + "/" + name);
        CpuExecutor ex(2);
        EngineOptions opt;
        opt.max_seq_len = 32;
        std::vector<float> logits[2];
        int fused[2] = {0, 0};
        for (const int fuse : {0, 1}) {
            opt.fuse_weights = fuse == 1;
            Engine eng(*src, gdn_registry(), ex, opt);
            fused[fuse] = eng.plan().fused;
            logits[fuse].resize(ref.tokens.size() * size_t(ref.n_vocab));
            eng.forward(ref.tokens.data(), int64_t(ref.tokens.size()), logits[fuse].data(), true);
        }
        // F32 everywhere: per GDN layer qkv|z|b|a in one weight (3 GDN layers in both models' GGUF/HF forms),
        // plus per attention layer q|k|v and the shared expert's gate|up
        CHECK(fused[0] == 0);
        CHECK(fused[1] > 0);
        CHECK(rel_max(logits[1], logits[0]) <= 1e-5);
        CHECK(rel_diff(logits[1].data(), ref, 0, ref.tokens.size()) <= 1e-4);
    }
}
