// The shared blocks' specs: tensor-name maps, the zero-centred norm folded into computed weights at build time,
// clear errors for invalid specs, and arch_llama's typed composition equal to the layer kinds "llama.attention" /
// "llama.ffn" built by name from its hyper-parameters (from_hparams) for every fixture.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "block_harness.h"
#include "fixture_registry.h"
#include "imp/blocks/attention.h"
#include "imp/blocks/ffn.h"
#include "imp/blocks/norm.h"
#include "imp/error.h"
#include "imp/registry.h"

using namespace imp;
using namespace imp::blocks_test;

namespace {

blocks::AttentionSpec small_spec(const HostModel* m) {
    blocks::AttentionSpec s;
    s.layer = 0;
    s.n_embd = 8;
    s.n_head = 2;
    s.n_kv_head = 1;
    s.head_dim = 4;
    s.qk_norm = true;
    s.names = blocks::gguf_names();
    s.source = m;
    return s;
}

void check_same_specs(const Layer& a, const Layer& b) {
    CHECK(a.kind() == b.kind());
    CHECK(a.state().kind == b.state().kind);
    CHECK(a.state().n_kv_heads == b.state().n_kv_heads);
    CHECK(a.state().head_dim == b.state().head_dim);
    CHECK(a.scratch_floats(7) == b.scratch_floats(7));
    const auto sa = a.weight_specs(), sb = b.weight_specs();
    REQUIRE(sa.size() == sb.size());
    for (size_t i = 0; i < sa.size(); ++i) {
        INFO(sa[i].name);
        CHECK(sa[i].name == sb[i].name);
        CHECK(sa[i].shape == sb[i].shape);
        CHECK(sa[i].use == sb[i].use);
        CHECK(sa[i].optional == sb[i].optional);
        CHECK(sa[i].values == sb[i].values);
        CHECK(sa[i].concat == sb[i].concat);
    }
}

}  // namespace

TEST_CASE("name maps resolve roles per layer and name a missing role", "[blocks]") {
    const blocks::NameMap gg = blocks::gguf_names();
    CHECK(gg("attn_q", 3) == "blk.3.attn_q.weight");
    CHECK(gg("ffn_down", 0) == "blk.0.ffn_down.weight");
    const blocks::NameMap hf = blocks::hf_names("model.language_model.layers.{L}.");
    CHECK(hf("attn_k_norm", 12) == "model.language_model.layers.12.self_attn.k_norm.weight");
    CHECK(hf("ffn_norm", 5) == "model.language_model.layers.5.post_attention_layernorm.weight");
    CHECK(blocks::hf_names()("attn_output", 1) == "model.layers.1.self_attn.o_proj.weight");
    CHECK_THROWS_WITH(gg("ffn_gate_exps", 1), Catch::Contains("'ffn_gate_exps'") && Catch::Contains("attn_q"));

    // An arch edits entries: Qwen3-Next GGUFs name the FFN norm post_attention_norm.
    blocks::NameMap q3n = gg;
    q3n.names["ffn_norm"] = "post_attention_norm.weight";
    blocks::FfnSpec f;
    f.layer = 7, f.n_embd = 8, f.n_ff = 16, f.names = q3n;
    const auto specs = blocks::make_swiglu_ffn(f)->weight_specs();
    CHECK(specs[0].name == "blk.7.post_attention_norm.weight");
    CHECK(specs.back().name == "blk.7.ffn_gate_up.fused");
    CHECK(specs.back().concat == std::vector<std::string>{"blk.7.ffn_gate.weight", "blk.7.ffn_up.weight"});
}

TEST_CASE("zero-centred norms become computed weights (1 + w) when the block is built", "[blocks]") {
    std::mt19937 g(fresh_seed());
    HostModel m;
    m.add("blk.0.attn_norm.weight", {8}, uniform(g, 8, -.5f, .5f), true);  // BF16
    m.add("blk.0.attn_q_norm.weight", {4}, uniform(g, 4, -.5f, .5f));
    m.add("blk.0.attn_k_norm.weight", {4}, uniform(g, 4, -.5f, .5f));
    blocks::AttentionSpec s = small_spec(&m);
    s.norm_offset = 1.f;
    const auto specs = blocks::make_attention(s)->weight_specs();
    int found = 0;
    for (const auto& w : specs) {
        if (w.use != WeightSpec::Use::Vector) continue;
        INFO(w.name);
        REQUIRE(w.values.size() == m.value(w.name).size());
        for (size_t i = 0; i < w.values.size(); ++i) CHECK(w.values[i] == m.value(w.name)[i] + 1.f);
        ++found;
    }
    CHECK(found == 3);
    s.norm_offset = 0.f;  // plain weights: read from the file by the engine
    for (const auto& w : blocks::make_attention(s)->weight_specs()) CHECK(w.values.empty());

    const WeightSpec n = blocks::norm_weight(&m, "blk.0.attn_q_norm.weight", 4, 1.f, "test");
    CHECK(n.values.size() == 4);
    CHECK_THROWS_WITH(blocks::norm_weight(&m, "blk.0.attn_q_norm.weight", 5, 1.f, "test"),
                      Catch::Contains("blk.0.attn_q_norm.weight") && Catch::Contains("[4]") &&
                          Catch::Contains("[5]"));
    CHECK_THROWS_WITH(blocks::norm_weight(&m, "blk.9.attn_norm.weight", 8, 1.f, "attention (layer 9)"),
                      Catch::Contains("'blk.9.attn_norm.weight'") && Catch::Contains("missing") &&
                          Catch::Contains("attention (layer 9)"));
}

TEST_CASE("invalid attention and FFN specs are refused with the field named", "[blocks]") {
    HostModel m;
    m.add("blk.0.attn_norm.weight", {8}, std::vector<float>(8, 0.25f));
    blocks::AttentionSpec s = small_spec(nullptr);
    CHECK_NOTHROW(blocks::make_attention(s));
    auto bad = s;
    bad.n_kv_head = 3, bad.n_head = 4;
    CHECK_THROWS_WITH(blocks::make_attention(bad), Catch::Contains("n_head 4") && Catch::Contains("n_kv_head 3"));
    bad = s;
    bad.rope.n_rot = 3;
    CHECK_THROWS_WITH(blocks::make_attention(bad), Catch::Contains("rope.n_rot 3"));
    bad.rope.n_rot = 6;
    CHECK_THROWS_WITH(blocks::make_attention(bad), Catch::Contains("rope.n_rot 6") && Catch::Contains("head_dim 4"));
    bad = s;
    bad.head_dim = 0;
    CHECK_THROWS_WITH(blocks::make_attention(bad), Catch::Contains("blocks.attention (blk.0): head_dim"));
    bad = s;
    bad.rope.freq_factors = {1.f};
    bad.rope.freqs_name = "rope_freqs.weight";
    CHECK_THROWS_WITH(blocks::make_attention(bad), Catch::Contains("freq_factors has 1") && Catch::Contains("2"));
    bad = s;
    bad.names.names.erase("attn_v");
    CHECK_THROWS_WITH(blocks::make_attention(bad), Catch::Contains("'attn_v'"));
    bad = s;
    bad.norm_offset = 1.f;  // zero-centred norms need the source to read w from
    CHECK_THROWS_WITH(blocks::make_attention(bad), Catch::Contains("blk.0.attn_norm.weight") &&
                                                       Catch::Contains("no model source"));
    bad.source = &m;  // has attn_norm, not the q/k norms
    CHECK_THROWS_WITH(blocks::make_attention(bad), Catch::Contains("'blk.0.attn_q_norm.weight'") &&
                                                       Catch::Contains("host-model"));
    blocks::FfnSpec f;
    f.n_embd = 8, f.n_ff = 0, f.names = blocks::gguf_names();
    CHECK_THROWS_WITH(blocks::make_swiglu_ffn(f), Catch::Contains("n_ff must be positive"));
}

TEST_CASE("arch_llama's composed blocks equal the llama.attention / llama.ffn kinds built from its hparams",
          "[blocks]") {
    Registry& reg = test::full_registry();
    for (const char* name : {"llama_tiny", "llama3_tiny", "qwen3_tiny"})
        for (const bool gguf : {true, false}) {
            const std::string path = test::kFixtures + "/" + name + (gguf ? ".gguf" : "");
            INFO(path);
            auto src = open_model(path);
            const ModelDesc d = reg.find_arch(*src)->build(*src, reg);
            REQUIRE(d.layers.size() % 2 == 0);
            for (size_t i = 0; i < d.layers.size() / 2; ++i) {
                LayerParams lp;
                lp.hparams = d.hparams.get();
                lp.prefix = (gguf ? "blk." : "model.layers.") + std::to_string(i) + ".";
                lp.index = int(i);
                check_same_specs(*d.layers[2 * i], *reg.make_layer("llama.attention", lp));
                check_same_specs(*d.layers[2 * i + 1], *reg.make_layer("llama.ffn", lp));
            }
        }
}
