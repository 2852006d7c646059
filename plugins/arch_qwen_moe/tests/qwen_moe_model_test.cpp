// arch_qwen_moe end to end on the CPU executor: the tiny random Qwen3MoeForCausalLM (tests/fixtures/models/
// qwen3moe_tiny*: 4 layers, 8 experts top-2, layer 1 dense through mlp_only_layers) gives transformers' logits
// (max|diff| / max|ref| <= 1e-4) from safetensors with per-expert tensors, from safetensors with the fused 3-D
// expert tensors, and from the GGUF, including a continuation through the KV cache and one-token decode steps.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "exec/cpu/cpu_executor.h"
#include "imp/error.h"
#include "imp/model.h"
#include "moe_fixture.h"
#include "runtime/engine.h"

using namespace imp;
using namespace imp::test;

namespace {

void check_fixture(const std::string& path, int64_t chunk, int threads) {
    INFO("qwen3moe_tiny from " << path << ", prefill_chunk " << chunk);
    const Reference ref = load_reference("qwen3moe_tiny");
    auto src = open_model(path);
    CpuExecutor ex(threads);
    EngineOptions opt;
    opt.max_seq_len = 32;
    opt.prefill_chunk = chunk;
    Engine eng(*src, moe_registry(), ex, opt);
    REQUIRE(eng.desc().n_vocab == ref.n_vocab);
    const size_t V = size_t(ref.n_vocab), n1 = ref.tokens.size(), n2 = ref.continuation.size();
    std::vector<float> a(n1 * V), b(n2 * V);
    eng.forward(ref.tokens.data(), int64_t(n1), a.data(), true);
    eng.forward(ref.continuation.data(), int64_t(n2), b.data(), true);
    const double d1 = rel_diff(a.data(), ref, 0, n1), d2 = rel_diff(b.data(), ref, n1, n2);
    INFO("prompt rel diff " << d1 << ", continuation (pos0 " << n1 << ") rel diff " << d2);
    CHECK(d1 <= 1e-4);
    CHECK(d2 <= 1e-4);
    // one token at a time through the KV cache (the decode path)
    eng.reset();
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

TEST_CASE("qwen3moe tiny from safetensors (per-expert tensors) matches transformers", "[arch_qwen_moe]") {
    check_fixture(kFixtures + "/qwen3moe_tiny", 512, 2);
    check_fixture(kFixtures + "/qwen3moe_tiny", 5, 3);
}

TEST_CASE("qwen3moe tiny from safetensors (fused 3-D experts) matches transformers", "[arch_qwen_moe]") {
    check_fixture(kFixtures + "/qwen3moe_tiny_fused", 512, 2);
    check_fixture(kFixtures + "/qwen3moe_tiny_fused", 4, 1);
}

TEST_CASE("qwen3moe tiny from GGUF matches transformers", "[arch_qwen_moe]") {
    check_fixture(kFixtures + "/qwen3moe_tiny.gguf", 512, 2);
    check_fixture(kFixtures + "/qwen3moe_tiny.gguf", 3, 1);
}

TEST_CASE("qwen3moe arch builds attention + MoE layers, the mlp_only layer dense", "[arch_qwen_moe]") {
    for (const std::string name : {"qwen3moe_tiny", "qwen3moe_tiny_fused", "qwen3moe_tiny.gguf"}) {
        INFO(name);
        auto src = open_model(kFixtures + "/" + name);
        CpuExecutor ex(1);
        EngineOptions opt;
        opt.max_seq_len = 16;
        Engine eng(*src, moe_registry(), ex, opt);
        const ModelDesc& d = eng.desc();
        REQUIRE(d.layers.size() == 8);
        for (size_t i = 0; i < 8; ++i) {
            INFO("layer " << i);
            CHECK(d.layers[i]->kind() ==
                  (i % 2 == 0 ? "qwen3moe.attention" : i == 3 ? "qwen3moe.ffn" : "qwen3moe.moe"));
        }
        CHECK(d.hparams->get_int("moe.n_expert") == 8);
        CHECK(d.hparams->get_int("moe.top_k") == 2);
        CHECK(d.hparams->get_int("moe.n_ff_exp") == 32);
        CHECK(d.hparams->get_bool("moe.norm_topk"));
        CHECK(d.layers[1]->required_ops() == std::vector<std::string>{"blocks.moe_router", "blocks.row_scale"});
    }
}

TEST_CASE("the layer kind qwen3moe.moe builds the MoE block from the arch's hyper-parameters", "[arch_qwen_moe]") {
    auto src = open_model(kFixtures + "/qwen3moe_tiny.gguf");
    CpuExecutor ex(1);
    EngineOptions opt;
    opt.max_seq_len = 16;
    Engine eng(*src, moe_registry(), ex, opt);
    LayerParams p;
    p.hparams = eng.desc().hparams.get();
    p.prefix = "blk.2.";
    p.index = 2;
    auto layer = moe_registry().make_layer("qwen3moe.moe", p);
    CHECK(layer->kind() == "qwen3moe.moe");
    const auto names = [](const Layer& l) {
        std::vector<std::string> n;
        for (const auto& s : l.weight_specs()) n.push_back(s.name);
        return n;
    };
    CHECK(names(*layer) == names(*eng.desc().layers[5]));  // layer 2's MoE block, as the arch built it
    CHECK(names(*layer).at(1) == "blk.2.ffn_gate_inp.weight");
}

TEST_CASE("gate|up experts stacked by the core (GGUF, HF per-expert) give the unfused logits", "[arch_qwen_moe]") {
    const Reference ref = load_reference("qwen3moe_tiny");
    const size_t V = size_t(ref.n_vocab), n1 = ref.tokens.size();
    // fused weights: q|k|v per attention layer (4), gate|up of the dense layer (1), and the gate|up
    // expert stack of each MoE layer (3, from GGUF 3-D tensors or HF per-expert tensors); the fused HF folder has the
    // file's own fused 3-D tensor
    for (const auto& [name, fused] : std::vector<std::pair<std::string, int>>{
             {"qwen3moe_tiny.gguf", 8}, {"qwen3moe_tiny", 8}, {"qwen3moe_tiny_fused", 5}}) {
        INFO(name);
        auto src = open_model(kFixtures + "/" + name);
        CpuExecutor ex(2);
        EngineOptions opt;
        opt.max_seq_len = 32;
        std::vector<float> logits[2];
        for (const int fuse : {1, 0}) {
            opt.fuse_weights = fuse == 1;
            Engine eng(*src, moe_registry(), ex, opt);
            CHECK(eng.plan().fused == (fuse ? fused : 0));
            logits[fuse].resize(n1 * V);
            eng.forward(ref.tokens.data(), int64_t(n1), logits[fuse].data(), true);
        }
        CHECK(rel_diff(logits[0].data(), ref, 0, n1) <= 1e-4);
        CHECK(rel_diff(logits[1].data(), ref, 0, n1) <= 1e-4);
        double md = 0;
        for (size_t i = 0; i < logits[0].size(); ++i) md = std::max(md, double(std::abs(logits[0][i] - logits[1][i])));
        CHECK(md <= 1e-5);
    }
}
