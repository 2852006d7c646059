// Hyper-parameters of the wrong type or out of range are refused, never read as their default: blocks::HparamReader
// on hand-made metadata, then arch_llama on copies of the llama_tiny folder whose config.json has one key edited.
// Every message names the file (a folder's config.json), the key and the type or value found.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <utility>

#include "exec/cpu/cpu_executor.h"
#include "fixture_registry.h"
#include "imp/blocks/hparams_reader.h"
#include "imp/error.h"
#include "imp/model.h"
#include "runtime/engine.h"

namespace fs = std::filesystem;
using namespace imp;
using namespace imp::test;

namespace {

Metadata sample() {
    Metadata md;
    md.source = "m.gguf";
    md.set("flag", {std::string("true"), "str"});
    md.set("name", {int64_t(5), "i64"});
    md.set("count", {9.5, "f32"});
    md.set("huge", {uint64_t(18446744073709551615ull), "u64"});
    md.set("list", {std::string("x"), "str"});
    md.set("rope", {std::string("x"), "str"});
    md.set("a.embedding_length", {uint64_t(575), "u32"});
    md.set("a.attention.head_count", {uint64_t(9), "u32"});
    md.set("a.block_count", {uint64_t(2), "u32"});
    return md;
}

// A fixture (llama_tiny) with each `from` in config.json replaced by its `to`; the engine's error (or "(accepted)").
std::string config_error(std::initializer_list<std::pair<std::string, std::string>> edits,
                         const std::string& fixture = "llama_tiny") {
    const fs::path dir = fs::temp_directory_path() / ("imp_hparams_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    fs::create_symlink(kFixtures + "/" + fixture + "/model.safetensors", dir / "model.safetensors");
    std::ifstream in(kFixtures + "/" + fixture + "/config.json");
    std::stringstream ss;
    ss << in.rdbuf();
    std::string cfg = ss.str();
    for (const auto& [from, to] : edits) {
        const size_t at = cfg.find(from);
        REQUIRE(at != std::string::npos);
        cfg.replace(at, from.size(), to);
    }
    std::ofstream(dir / "config.json") << cfg;
    std::string what = "(accepted)";
    try {
        auto src = open_model(dir.string());
        CpuExecutor ex(1);
        EngineOptions opt;
        opt.max_seq_len = 16;
        Engine eng(*src, full_registry(), ex, opt);
    } catch (const Error& e) {
        what = e.what();
    }
    fs::remove_all(dir);
    return what;
}

}  // namespace

TEST_CASE("HparamReader: a present key of the wrong type is an error, not the default", "[arch_llama][hparams]") {
    const Metadata md = sample();
    const blocks::HparamReader r{md, "m.gguf"};
    CHECK_THROWS_WITH(r.b("flag", false), "m.gguf: hyper-parameter 'flag' is str, expected a bool");
    CHECK_THROWS_WITH(r.s("name", "default"), "m.gguf: hyper-parameter 'name' is i64, expected a string");
    CHECK_THROWS_WITH(r.i("count"), "m.gguf: hyper-parameter 'count' is f32, expected an integer");
    CHECK_THROWS_WITH(r.i("count", 1), "m.gguf: hyper-parameter 'count' is f32, expected an integer");
    CHECK_THROWS_WITH(r.i("huge"),
                      Catch::StartsWith("m.gguf: metadata key 'huge' is 18446744073709551615, out of range"));
    CHECK_THROWS_WITH(r.f("flag", 1.0), "m.gguf: hyper-parameter 'flag' is str, expected a number");
    CHECK_THROWS_WITH(r.ints("list"), "m.gguf: hyper-parameter 'list' is str, expected a list of integers");
    CHECK_THROWS_WITH(r.object("rope"), "m.gguf: hyper-parameter 'rope' is str, expected an object");
    // Absent keys still give the fallback.
    CHECK(r.b("absent", true));
    CHECK(r.s("absent", "d") == "d");
    CHECK(r.i("absent", 4) == 4);
    CHECK(r.f("count", 0.0) == 9.5);
    CHECK(r.ints("absent").empty());
    CHECK_NOTHROW(r.object("absent"));
}

TEST_CASE("HparamReader: a head dim that does not divide is refused naming both keys", "[arch_llama][hparams]") {
    Metadata md = sample();
    const blocks::HparamReader r{md, "m.gguf"};
    CHECK_THROWS_WITH(blocks::read_gguf_attention(r, "a"),
                      "m.gguf: a.embedding_length 575 is not a multiple of a.attention.head_count 9 (and no "
                      "a.attention.key_length is given)");
    CHECK(r.head_dim("a.attention.key_length", "a.embedding_length", 576, "a.attention.head_count", 9) == 64);
    md.set("a.attention.key_length", {uint64_t(63), "u32"});  // an explicit head dim need not divide
    CHECK(r.head_dim("a.attention.key_length", "a.embedding_length", 575, "a.attention.head_count", 9) == 63);
}

TEST_CASE("config.json keys of the wrong type or range name the file and the key", "[arch_llama][hparams]") {
    const std::string cfg = "config.json: hyper-parameter ";
    CHECK_THAT(config_error({{"\"attention_bias\": false", "\"attention_bias\": \"true\""}}),
               Catch::EndsWith(cfg + "'attention_bias' is str, expected a bool"));
    CHECK_THAT(config_error({{"\"tie_word_embeddings\": false", "\"tie_word_embeddings\": \"yes\""}}),
               Catch::EndsWith(cfg + "'tie_word_embeddings' is str, expected a bool"));
    CHECK_THAT(config_error({{"\"rope_parameters\": {", "\"rope_parameters\": \"x\", \"unused\": {"}}),
               Catch::EndsWith(cfg + "'rope_parameters' is str, expected an object"));
    CHECK_THAT(config_error({{"\"rope_type\": \"default\"", "\"rope_type\": 5"}}),
               Catch::EndsWith(cfg + "'rope_parameters.rope_type' is int, expected a string"));
    CHECK_THAT(config_error({{"\"hidden_size\": 64", "\"hidden_size\": 64.5"}}),
               Catch::EndsWith(cfg + "'hidden_size' is float, expected an integer"));
    CHECK_THAT(config_error({{"\"hidden_size\": 64", "\"hidden_size\": 9223372036854775808"}}),
               Catch::EndsWith("config.json: metadata key 'hidden_size' is 9223372036854775808, out of range (at "
                               "most 9223372036854775807)"));
    CHECK_THAT(config_error({{"\"num_attention_heads\": 4", "\"num_attention_heads\": 5"},
                             {"\"head_dim\": 16", "\"unused_head_dim\": 16"}}),
               Catch::EndsWith("config.json: hidden_size 64 is not a multiple of num_attention_heads 5 (and no "
                               "head_dim is given)"));
    // Qwen3 with sliding-window attention is refused (it ran as full attention); its full-attention form loads.
    CHECK(config_error({}, "qwen3_tiny") == "(accepted)");
    CHECK_THAT(config_error({{"\"use_sliding_window\": false", "\"use_sliding_window\": true"}}, "qwen3_tiny"),
               Catch::EndsWith("config.json: use_sliding_window = true is not supported by arch_llama"));
    CHECK_THAT(config_error({{"\"full_attention\",\n    \"full_attention\"", "\"full_attention\",\n    \"sliding_attention\""}},
                            "qwen3_tiny"),
               Catch::EndsWith("config.json: layer_types entry 'sliding_attention' is not supported by arch_llama "
                               "(only full_attention)"));
}
