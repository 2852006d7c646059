// The model-level quantization config: config.json "quantization_config" (ModelOpt flat and nested forms,
// compressed-tensors) and hf_quant_config.json, normalized; exclusion patterns; MIXED_PRECISION per-layer algos.
#include "model/quant_config.h"

#include <catch2/catch.hpp>

#include "imp/error.h"
#include "model/json.h"
#include "model/reader_test_util.h"

using imp::QuantConfig;

namespace {

QuantConfig parse(const std::string& qc, const std::string& hf = "") {
    const imp::json::Value q = imp::json::parse(qc, "config.json");
    imp::json::Value h;
    if (!hf.empty()) h = imp::json::parse(hf, "hf_quant_config.json");
    return imp::parse_quant_config(qc == "null" ? nullptr : &q, "config.json", hf.empty() ? nullptr : &h,
                                   "hf_quant_config.json");
}

std::string error_of(const std::string& qc, const std::string& hf = "") {
    try {
        parse(qc, hf);
    } catch (const imp::Error& e) {
        return e.what();
    }
    return "";
}

}  // namespace

TEST_CASE("quant config: ModelOpt NVFP4 in config.json and hf_quant_config.json", "[model][quant_config]") {
    const QuantConfig q = parse(
        R"({"quant_method": "modelopt", "quant_algo": "NVFP4", "kv_cache_scheme": null,
            "config_groups": {"group_0": {"weights": {"num_bits": 4, "type": "float", "group_size": 16}}},
            "ignore": ["lm_head", "model.layers.*.mlp.gate"]})",
        R"({"producer": {"name": "modelopt", "version": "0.44.0"},
            "quantization": {"quant_algo": "W4A16_NVFP4", "kv_cache_quant_algo": "FP8", "group_size": 16,
                             "exclude_modules": ["lm_head", "*visual*"]}})");
    CHECK(q.method == "modelopt");
    CHECK(q.algo == "W4A16_NVFP4");  // hf_quant_config.json wins
    CHECK(q.kv_cache_algo == "FP8");
    CHECK(q.group_size == 16);
    CHECK(q.exclude == std::vector<std::string>{"lm_head", "model.layers.*.mlp.gate", "*visual*"});
    CHECK(q.files == std::vector<std::string>{"config.json", "hf_quant_config.json"});
    CHECK(q.excluded("lm_head"));
    CHECK(q.excluded("model.layers.17.mlp.gate"));
    CHECK_FALSE(q.excluded("model.layers.17.mlp.gate_proj"));  // wildcards match the whole name
    CHECK(q.excluded("model.visual.blocks.0.attn.qkv"));
    CHECK(q.algo_for("model.layers.0.mlp.experts.3.up_proj") == "W4A16_NVFP4");
    CHECK(q.algo_for("lm_head") == "");
    CHECK_FALSE(q.empty());
}

TEST_CASE("quant config: compressed-tensors regex ignores and MIXED_PRECISION layers", "[model][quant_config]") {
    const QuantConfig ct = parse(R"({"quant_method": "compressed-tensors", "format": "nvfp4-pack-quantized",
        "config_groups": {"g": {"targets": ["Linear"], "weights": {"num_bits": 4, "group_size": 16}}},
        "ignore": ["re:.*mlp.gate$", "re:visual.*", "lm_head"]})");
    CHECK(ct.method == "compressed-tensors");
    CHECK(ct.format == "nvfp4-pack-quantized");
    CHECK(ct.group_size == 16);
    CHECK(ct.excluded("model.layers.3.mlp.gate"));
    CHECK_FALSE(ct.excluded("model.layers.3.mlp.gate_up"));
    CHECK(ct.excluded("visual.blocks.0"));
    CHECK_FALSE(ct.excluded("model.visual.blocks.0"));  // re.match anchors at the start
    CHECK(ct.algo_for("model.layers.3.self_attn.q_proj") == "");  // no quant_algo at all
    // A mixed checkpoint whose first group is int4 at 128 and second NVFP4 at 16: the FP4 group's size (the first
    // group's 128 refused every NVFP4 module)
    const QuantConfig mix = parse(R"({"quant_method": "compressed-tensors", "format": "mixed-precision",
        "config_groups": {"a": {"targets": ["re:.*self_attn.*"], "weights": {"num_bits": 4, "type": "int",
                                "group_size": 128}},
                          "b": {"targets": ["re:.*mlp.*"], "weights": {"num_bits": 4, "type": "float",
                                "group_size": 16}}}})");
    CHECK(mix.group_size == 16);

    const QuantConfig mixed = parse("null", R"({"quantization": {"quant_algo": "MIXED_PRECISION",
        "quantized_layers": {"model.layers.0.mlp.experts.0.gate_proj": {"quant_algo": "NVFP4", "group_size": 16},
                             "model.layers.0.self_attn.q_proj": {"quant_algo": "FP8"}}}})");
    CHECK(mixed.method == "modelopt");  // a bare hf_quant_config.json
    CHECK(mixed.algo == "MIXED_PRECISION");
    CHECK(mixed.layers.size() == 2);
    CHECK(mixed.algo_for("model.layers.0.mlp.experts.0.gate_proj") == "NVFP4");
    CHECK(mixed.layers.at("model.layers.0.mlp.experts.0.gate_proj").group_size == 16);
    CHECK(mixed.algo_for("model.layers.0.self_attn.q_proj") == "FP8");
    CHECK(mixed.algo_for("model.layers.0.mlp.gate") == "MIXED_PRECISION");

    // The nested ModelOpt form inside config.json.
    const QuantConfig nested = parse(R"({"quant_method": "modelopt", "quantization": {"quant_algo": "FP8",
        "exclude_modules": ["lm_head"]}})");
    CHECK(nested.algo == "FP8");
    CHECK(nested.excluded("lm_head"));
    CHECK(parse("null").empty());
}

TEST_CASE("quant config: re: patterns from a file cannot overflow, hang or read past a bad name",
          "[model][quant_config]") {
    // The config fuzzer's finding: std::regex's compiler multiplied a quantifier count into a long until it overflowed
    // (undefined behaviour). PCRE2 refuses counts past 65535 with an error.
    CHECK_THAT(error_of(R"({"ignore": ["re:a{33033333333333333337}"]})"),
               Catch::StartsWith("config.json: key 'quantization_config.ignore': regex /a{33033333333333333337}/: ") &&
                   Catch::Contains("too"));
    CHECK_THAT(error_of(R"({"ignore": ["re:a{70000}"]})"), Catch::Contains("regex /a{70000}/"));
    // A pattern that backtracks without end in a naive matcher: PCRE2's match limit ends it with an error.
    const QuantConfig q = parse(R"({"ignore": ["re:(a|aa)*(a|aa)*(a|aa)*[^a]$"]})");
    const std::string name(40, 'a');
    CHECK_THROWS_WITH(q.excluded(name), "quantization config: regex /(a|aa)*(a|aa)*(a|aa)*[^a]$/: match on '" + name +
                                            "' failed: match limit exceeded");
    // A module name that is not UTF-8 is an error, not undefined behaviour in the matcher.
    const QuantConfig v = parse(R"({"ignore": ["re:model.*"]})");
    CHECK(v.excluded("model.layers.0"));
    CHECK_THROWS_AS(v.excluded(std::string("\xff\xfe")), imp::Error);
    // A long pattern is echoed shortened.
    const std::string long_pattern = "(" + std::string(5000, 'x');
    CHECK(error_of(R"({"ignore": ["re:)" + long_pattern + R"("]})").size() < 600);
}

TEST_CASE("quant config: wrong types name the file and key", "[model][quant_config]") {
    CHECK(error_of(R"({"group_size": "16"})") ==
          "config.json: key 'quantization_config.group_size' must be a non-negative integer");
    CHECK(error_of(R"({"ignore": "lm_head"})") ==
          "config.json: key 'quantization_config.ignore' must be an array of module name patterns");
    CHECK(error_of(R"({"ignore": ["re:(unclosed"]})") ==
          "config.json: key 'quantization_config.ignore': regex /(unclosed/: missing closing parenthesis at offset 9");
    CHECK(error_of("null", R"({"quantization": {"quant_algo": 4}})") ==
          "hf_quant_config.json: key 'quantization.quant_algo' must be a string");
    CHECK(error_of("null", R"({"producer": {}})") == "hf_quant_config.json: no \"quantization\" object");
    CHECK(error_of("[1]") == "config.json: key 'quantization_config' must be an object");
}

TEST_CASE("quant config: read from a safetensors folder: none for other models", "[model][quant_config]") {
    imp::test::TempDir d("quant_config");
    const std::string st_header = R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
    imp::test::Bytes b;
    std::string h = st_header;
    while (h.size() % 8) h += ' ';
    b.u64(h.size()).raw(h).zeros(4);
    d.file("model.safetensors", b.b);
    d.file("config.json", R"({"model_type": "x", "quantization_config": {"quant_method": "fp8", "weight_block_size": [128, 128]}})");
    auto src = imp::open_model(d.dir.string());
    QuantConfig q = imp::read_quant_config(*src);
    CHECK(q.method == "fp8");
    CHECK(q.files == std::vector<std::string>{(d.dir / "config.json").string()});
    d.file("hf_quant_config.json", R"({"producer": {"name": "modelopt"}, "quantization": {"quant_algo": "FP8"}})");
    src = imp::open_model(d.dir.string());
    q = imp::read_quant_config(*src);
    CHECK(q.algo == "FP8");
    CHECK(src->metadata().get_string("hf_quant_config.producer.name") == "modelopt");
    // A single .safetensors file has no config.
    auto file = imp::open_model((d.dir / "model.safetensors").string());
    CHECK(imp::read_quant_config(*file).empty());
}
