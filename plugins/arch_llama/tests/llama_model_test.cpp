// arch_llama end to end on the CPU executor: the tiny random-weight fixtures (tests/fixtures/models, made by
// tests/tools/make_model_fixtures.py with transformers and converted by hf_to_gguf.py) must give transformers'
// logits from the safetensors folder and from the GGUF, including a continuation at pos0 > 0 through the KV cache.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <cstdlib>
#include <map>
#include <unistd.h>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "common/max_err.h"
#include "exec/cpu/cpu_executor.h"
#include "imp/error.h"
#include "imp/model.h"
#include "imp/registry.h"
#include "model/json.h"
#include "plugin/loader.h"
#include "runtime/engine.h"
#include "fixture_registry.h"

namespace fs = std::filesystem;
using namespace imp;
using namespace imp::test;

namespace {

std::string read_text(const std::string& path) {
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

Reference load_reference(const std::string& name) {
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

// max |a - b| / max |b| over rows [row0, row0 + rows) of the reference (the shared NaN/Inf-aware measure).
double rel_diff(const float* got, const Reference& ref, size_t row0, size_t rows) {
    const size_t V = size_t(ref.n_vocab);
    REQUIRE((row0 + rows) * V <= ref.logits.size());
    return imp::test::max_rel_err(got, ref.logits.data() + row0 * V, rows * V);
}

void check_fixture(const std::string& name, const std::string& path, int64_t chunk, int threads) {
    INFO("fixture " << name << " from " << path << ", prefill_chunk " << chunk);
    const Reference ref = load_reference(name);
    auto src = open_model(path);
    CpuExecutor ex(threads);
    EngineOptions opt;
    opt.max_seq_len = 32;
    opt.prefill_chunk = chunk;
    Engine eng(*src, full_registry(), ex, opt);
    REQUIRE(eng.desc().n_vocab == ref.n_vocab);
    const size_t V = size_t(ref.n_vocab), n1 = ref.tokens.size(), n2 = ref.continuation.size();

    std::vector<float> a(n1 * V), b(n2 * V);
    eng.forward(ref.tokens.data(), int64_t(n1), a.data(), true);
    CHECK(eng.position() == int64_t(n1));
    eng.forward(ref.continuation.data(), int64_t(n2), b.data(), true);
    CHECK(eng.position() == int64_t(n1 + n2));
    const double d1 = rel_diff(a.data(), ref, 0, n1), d2 = rel_diff(b.data(), ref, n1, n2);
    INFO("prompt rel diff " << d1 << ", continuation (pos0 " << n1 << ") rel diff " << d2);
    CHECK(d1 <= 1e-4);
    CHECK(d2 <= 1e-4);

    // Last-token logits only, one token at a time (decode path), after a reset.
    eng.reset();
    CHECK(eng.position() == 0);
    std::vector<float> last(V);
    eng.forward(ref.tokens.data(), int64_t(n1 - 1), nullptr);  // prefill without logits
    eng.forward(ref.tokens.data() + n1 - 1, 1, last.data(), false);
    CHECK(rel_diff(last.data(), ref, n1 - 1, 1) <= 1e-4);
    eng.reset();
    eng.forward(ref.tokens.data(), int64_t(n1), last.data(), false);
    CHECK(rel_diff(last.data(), ref, n1 - 1, 1) <= 1e-4);
    for (size_t i = 0; i < n2; ++i) {
        eng.forward(&ref.continuation[i], 1, last.data(), false);
        INFO("decode step " << i);
        CHECK(rel_diff(last.data(), ref, n1 + i, 1) <= 1e-4);
    }
}

const char* kNames[] = {"llama_tiny", "llama3_tiny", "qwen3_tiny"};

}  // namespace

TEST_CASE("llama fixtures from safetensors match transformers", "[arch_llama]") {
    for (const char* name : kNames) {
        check_fixture(name, kFixtures + "/" + name, 512, 2);
        check_fixture(name, kFixtures + "/" + name, 5, 3);
    }
}

TEST_CASE("llama fixtures from GGUF match transformers", "[arch_llama]") {
    for (const char* name : kNames) {
        check_fixture(name, kFixtures + "/" + name + ".gguf", 512, 2);
        check_fixture(name, kFixtures + "/" + name + ".gguf", 4, 1);
    }
}

TEST_CASE("fused q|k|v and gate|up weights give the unfused engine's logits", "[arch_llama]") {
    for (const char* name : kNames)
        for (const std::string path : {kFixtures + "/" + name, kFixtures + "/" + name + ".gguf"}) {
            INFO(path);
            auto src = open_model(path);
            CpuExecutor ex(2);
            EngineOptions opt;
            opt.max_seq_len = 32;
            const Reference ref = load_reference(name);
            const size_t V = size_t(ref.n_vocab), n1 = ref.tokens.size();
            std::vector<float> logits[2];
            for (const int fuse : {1, 0}) {
                opt.fuse_weights = fuse == 1;
                Engine eng(*src, full_registry(), ex, opt);
                // One q|k|v per attention layer, one gate|up per FFN layer (the layers alternate).
                CHECK(eng.plan().fused == (fuse ? int(eng.desc().layers.size()) : 0));
                logits[fuse].resize(n1 * V);
                eng.forward(ref.tokens.data(), int64_t(n1), logits[fuse].data(), true);
                std::vector<float> last(V);
                eng.forward(ref.continuation.data(), 1, last.data(), false);  // decode step
                logits[fuse].insert(logits[fuse].end(), last.begin(), last.end());
            }
            CHECK(logits[0] == logits[1]);
            CHECK(rel_diff(logits[1].data(), ref, 0, n1) <= 1e-4);
        }
}

TEST_CASE("Q4_K_M attention with a Q6_K v fuses q|k only, and gives the unfused engine's logits", "[arch_llama]") {
    // synth-gguf's tiny llama in llama.cpp's Q4_K_M mix: layer 1 of 2 keeps v in Q6_K (use_more_bits), so its q|k
    // (both Q4_K) fuse and v runs alone; layer 0 fuses q|k|v. Fused weights: 2 q|k(|v) + 2 gate|up.
    const std::string path = (std::filesystem::temp_directory_path() /
                              ("imp-qk-fuse-" + std::to_string(::getpid()) + ".tiny.q4_k_m.gguf"))
                                 .string();
    REQUIRE(std::system((std::string(IMP_BINARY_DIR) + "/bin/synth-gguf --shape tiny --quant q4_k_m --out " + path +
                         " > /dev/null")
                            .c_str()) == 0);
    auto src = open_model(path);
    REQUIRE(src->get("blk.1.attn_v.weight").type == "Q6_K");
    REQUIRE(src->get("blk.1.attn_k.weight").type == "Q4_K");
    REQUIRE(src->get("blk.0.attn_v.weight").type == "Q4_K");
    CpuExecutor ex(2);
    EngineOptions opt;
    opt.max_seq_len = 64;
    std::vector<float> logits[2];
    const std::vector<int32_t> toks{5, 17, 200, 33, 9, 140, 71, 2, 66, 90};
    for (const int fuse : {1, 0}) {
        opt.fuse_weights = fuse == 1;
        Engine eng(*src, full_registry(), ex, opt);
        CHECK(eng.plan().fused == (fuse ? 4 : 0));
        const size_t V = size_t(eng.desc().n_vocab);
        logits[fuse].resize(toks.size() * V);
        eng.forward(toks.data(), int64_t(toks.size()), logits[fuse].data(), true);
        for (int32_t t : {3, 44}) {
            std::vector<float> last(V);
            eng.forward(&t, 1, last.data(), false);  // decode steps
            logits[fuse].insert(logits[fuse].end(), last.begin(), last.end());
        }
    }
    CHECK(logits[0] == logits[1]);
    std::filesystem::remove(path);
}

TEST_CASE("llama arch reads hyper-parameters and plans memory", "[arch_llama]") {
    auto src = open_model(kFixtures + "/qwen3_tiny.gguf");
    CpuExecutor ex(1);
    EngineOptions opt;
    opt.max_seq_len = 0;  // the trained context (512) capped at 8192
    Engine eng(*src, full_registry(), ex, opt);
    const ModelDesc& d = eng.desc();
    CHECK(d.arch == "qwen3");
    CHECK(d.n_embd == 64);
    CHECK(d.n_vocab == 384);
    CHECK(d.layers.size() == 4);
    CHECK(d.output == d.tok_embd);  // tied: no output.weight in the GGUF
    CHECK(d.hparams->get_int("head_dim") == 24);
    CHECK(d.hparams->get_bool("rope.neox"));
    CHECK(d.hparams->get_bool("attn.qk_norm"));
    CHECK(eng.capacity() == 512);
    // KV: 2 attention layers x K and V x (512 positions + the reserved zero block of 16) x 2 heads x 24 dims x 4 B.
    CHECK(eng.plan().kv_blocks == 512 / 16 + 1);
    CHECK(eng.plan().state == 2ull * 2 * (512 + 16) * 2 * 24 * 4);
    CHECK(eng.plan().weights >= uint64_t(src->file_bytes()) - 16384);
    CHECK(ex.bytes_allocated() >= eng.plan().total());

    auto llama = open_model(kFixtures + "/llama_tiny.gguf");
    Engine e2(*llama, full_registry(), ex, opt);
    CHECK_FALSE(e2.desc().hparams->get_bool("rope.neox"));  // permuted q/k: adjacent pairs
    CHECK(e2.desc().output == "output.weight");
    CHECK(e2.capacity() == 256);
    auto hf = open_model(kFixtures + "/llama3_tiny");
    Engine e3(*hf, full_registry(), ex, opt);
    CHECK(e3.desc().hparams->get_bool("rope.neox"));
    CHECK(e3.desc().hparams->get_string("rope.freqs") == "rope_freqs.llama3");
    CHECK(e3.desc().output == "model.embed_tokens.weight");
}

TEST_CASE("context overflow names the position, the token count and the capacity", "[arch_llama]") {
    auto src = open_model(kFixtures + "/llama_tiny");
    CpuExecutor ex(2);
    EngineOptions opt;
    opt.max_seq_len = 14;
    Engine eng(*src, full_registry(), ex, opt);
    std::vector<int32_t> toks(12, 7);
    std::vector<float> logits(size_t(eng.desc().n_vocab));
    eng.forward(toks.data(), 12, logits.data());
    CHECK_THROWS_WITH(eng.forward(toks.data(), 3, logits.data()),
                      Catch::Contains("position 12") && Catch::Contains("3 tokens") && Catch::Contains("14"));
    CHECK(eng.position() == 12);
    eng.forward(toks.data(), 2, logits.data());  // still fits exactly
    CHECK(eng.position() == 14);
    eng.reset();
    int32_t bad = 320;
    CHECK_THROWS_WITH(eng.forward(&bad, 1, logits.data()), Catch::Contains("320") && Catch::Contains("vocabulary"));
}

TEST_CASE("a weight whose shape differs from the config is rejected by name", "[arch_llama]") {
    const fs::path tmp = fs::temp_directory_path() / ("imp_arch_llama_shape_" + std::to_string(::getpid()));
    fs::create_directories(tmp);
    fs::copy_file(kFixtures + "/llama_tiny/model.safetensors", tmp / "model.safetensors",
                  fs::copy_options::overwrite_existing);
    std::string cfg = read_text(kFixtures + "/llama_tiny/config.json");
    const std::string from = "\"intermediate_size\": 172", to = "\"intermediate_size\": 171";
    REQUIRE(cfg.find(from) != std::string::npos);
    cfg.replace(cfg.find(from), from.size(), to);
    std::ofstream(tmp / "config.json") << cfg;
    auto src = open_model(tmp.string());
    CpuExecutor ex(1);
    CHECK_THROWS_WITH(Engine(*src, full_registry(), ex, EngineOptions{}),
                      Catch::Contains("model.layers.0.mlp.gate_proj.weight") && Catch::Contains("[172, 64]") &&
                          Catch::Contains("[171, 64]"));
    fs::remove_all(tmp);
}

TEST_CASE("missing plugins are named in the errors", "[arch_llama]") {
    auto src = open_model(kFixtures + "/qwen3_tiny.gguf");
    CpuExecutor ex(1);
    Registry empty;
    CHECK_THROWS_WITH(Engine(*src, empty, ex, EngineOptions{}),
                      Catch::Contains("no loaded plugin handles architecture 'qwen3'"));
    Registry& arch_only = registry_with({"arch_llama"});
    CHECK_THROWS_WITH(Engine(*src, arch_only, ex, EngineOptions{}),
                      Catch::Contains("token_embd.weight") && Catch::Contains("F32") &&
                          Catch::Contains("no loaded quant format"));
}

TEST_CASE("transformers 4.x config (rope_theta + rope_scaling) reads like 5.x rope_parameters", "[arch_llama]") {
    const fs::path tmp = fs::temp_directory_path() / ("imp_arch_llama_v4_" + std::to_string(::getpid()));
    fs::create_directories(tmp);
    fs::copy_file(kFixtures + "/llama3_tiny/model.safetensors", tmp / "model.safetensors",
                  fs::copy_options::overwrite_existing);
    std::string cfg = read_text(kFixtures + "/llama3_tiny/config.json");
    const std::string from = "\"rope_parameters\": {", to = "\"rope_theta\": 500000.0, \"rope_scaling\": {";
    REQUIRE(cfg.find(from) != std::string::npos);
    cfg.replace(cfg.find(from), from.size(), to);
    const std::string theta = "\"rope_theta\": 500000.0,\n", empty;
    const size_t inner = cfg.find(theta, cfg.find("rope_scaling"));
    REQUIRE(inner != std::string::npos);
    cfg.replace(inner, theta.size(), empty);  // rope_theta only at the top level now
    std::ofstream(tmp / "config.json") << cfg;

    const Reference ref = load_reference("llama3_tiny");
    auto src = open_model(tmp.string());
    REQUIRE_FALSE(src->metadata().has("rope_parameters.rope_type"));
    CpuExecutor ex(2);
    EngineOptions opt;
    opt.max_seq_len = 32;
    Engine eng(*src, full_registry(), ex, opt);
    std::vector<float> all(ref.logits.size());
    std::vector<int32_t> toks = ref.tokens;
    toks.insert(toks.end(), ref.continuation.begin(), ref.continuation.end());
    eng.forward(toks.data(), int64_t(toks.size()), all.data(), true);
    CHECK(rel_diff(all.data(), ref, 0, toks.size()) <= 1e-4);
    fs::remove_all(tmp);
}

TEST_CASE("a BF16 KV cache stays close to the fp32 reference", "[arch_llama]") {
    const Reference ref = load_reference("qwen3_tiny");
    auto src = open_model(kFixtures + "/qwen3_tiny.gguf");
    CpuExecutor ex(2);
    EngineOptions opt;
    opt.max_seq_len = 32;
    opt.kv_dtype = DType::BF16;
    Engine eng(*src, full_registry(), ex, opt);
    CHECK(eng.plan().state == 2ull * 2 * (32 + 16) * 2 * 24 * 2);  // + the reserved zero block
    std::vector<float> all(ref.logits.size());
    std::vector<int32_t> toks = ref.tokens;
    toks.insert(toks.end(), ref.continuation.begin(), ref.continuation.end());
    eng.forward(toks.data(), int64_t(toks.size()), all.data(), true);
    const double d = rel_diff(all.data(), ref, 0, toks.size());
    INFO("bf16 KV rel diff " << d);
    CHECK(d > 1e-6);  // the rounding is really there
    CHECK(d < 3e-2);
}
