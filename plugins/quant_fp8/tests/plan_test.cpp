// The fp8 format on hand-made sources: per-tensor and per-channel scales, fused parts of different scales (per-row
// canonical scales), experts, and the config cases (accepted algorithms, block-wise FP8, exclusions, a MIXED_PRECISION
// entry whose tensors are not FP8), each loading or failing with one line naming the key or tensor.
#include <catch2/catch.hpp>

#include <algorithm>
#include <string>

#include "exec/cpu/cpu_executor.h"
#include "fake_tensors.h"
#include "fp8_format.h"
#include "imp/error.h"
#include "matmul_reference.h"
#include "plan_helpers.h"

using namespace imp;
using namespace imp::quant_test;

TEST_CASE("fp8: per-tensor, per-channel, fused and expert weights", "[fp8][plan]") {
    FakeTensors f;
    CpuExecutor ex(2);
    fp8::Fp8Format fmt;
    const QuantConfig q = config(R"({"quant_algo": "FP8", "exclude_modules": ["lm_head"]})");
    WeightSource s = fp8_source(f, "a", 20, 40, false, 0.01f);
    s.aux["input_scale"] = f.f32("a.input_scale", {}, {0.2f});
    auto r = request("a.weight", WeightRole::Linear, {20, 40}, s, &q);
    const WeightPlan p = fmt.plan(r, ex);
    REQUIRE(p.accepted);
    CHECK(p.type == "FP8_E4M3");
    CHECK(p.consumed.size() == 3);
    CHECK(p.device_bytes == 20 * 40 + 4);
    check_weight(fmt, r, ex);

    const QuantConfig ct = config_json(R"({"quant_method": "compressed-tensors", "format": "float-quantized"})");
    auto rc = request("b.weight", WeightRole::Linear, {24, 32}, fp8_source(f, "b", 24, 32, true, 0.02f), &ct);
    CHECK(fmt.plan(rc, ex).device_bytes == 24 * 32 + 24 * 4);
    check_weight(fmt, rc, ex);

    // q|k|v with different per-tensor scales: per-row scales, exact.
    WeightSource fused;
    fused.parts = {fp8_source(f, "q", 16, 32, false, 0.01f), fp8_source(f, "k", 8, 32, false, 0.03f),
                   fp8_source(f, "v", 8, 32, true, 0.02f)};
    auto rf = request("qkv", WeightRole::Linear, {32, 32}, fused, &q);
    CHECK(fmt.plan(rf, ex).device_bytes == 32 * 32 + 32 * 4);
    check_weight(fmt, rf, ex);

    WeightSource ex_src;
    for (int e = 0; e < 4; ++e)
        ex_src.experts.push_back(fp8_source(f, "e" + std::to_string(e), 12, 32, e % 2 == 1, 0.01f * float(e + 1)));
    auto re = request("experts", WeightRole::Experts, {4, 12, 32}, ex_src, &q);
    CHECK(fmt.plan(re, ex).device_bytes == 4 * 12 * 32 + 4 * 12 * 4);
    check_experts(fmt, re, ex);
    WeightSource pt;
    for (int e = 0; e < 3; ++e) pt.experts.push_back(fp8_source(f, "p" + std::to_string(e), 12, 32, false, 0.5f));
    auto rp = request("experts", WeightRole::Experts, {3, 12, 32}, pt, &q);
    CHECK(fmt.plan(rp, ex).device_bytes == 3 * 12 * 32 + 3 * 4);
    check_experts(fmt, rp, ex);
}

TEST_CASE("fp8: quantization config cases load or fail with one line naming the key", "[fp8][plan][config]") {
    FakeTensors f;
    CpuExecutor ex(1);
    fp8::Fp8Format fmt;
    const std::string m = "model.layers.0.self_attn.o_proj";
    const WeightSource s = fp8_source(f, m, 16, 32, false, 0.1f);
    auto plan_with = [&](const QuantConfig& q) { return fmt.plan(request(m + ".weight", WeightRole::Linear, {16, 32}, s, &q), ex); };
    auto error_with = [&](const QuantConfig& q) {
        return error_of(fmt, request(m + ".weight", WeightRole::Linear, {16, 32}, s, &q), ex);
    };
    CHECK(plan_with(config(R"({"quant_algo": "FP8"})")).accepted);
    CHECK(plan_with(config(R"({"quant_algo": "FP8_PER_CHANNEL_PER_TOKEN"})")).accepted);
    CHECK(plan_with(QuantConfig{}).accepted);
    CHECK(plan_with(config(R"({"quant_algo": "MIXED_PRECISION", "quantized_layers": {
        "model.language_model.layers.0.self_attn.o_proj": {"quant_algo": "FP8"}}})")).accepted);
    CHECK(error_with(config(R"({"quant_algo": "W8A8_SQ"})")) ==
          "quant_fp8: '" + m + ".weight': key 'quant_algo' is quant_algo 'W8A8_SQ', which quant_fp8 does not read (it "
          "reads FP8 and FP8_PER_CHANNEL_PER_TOKEN) (hf_quant_config.json)");
    CHECK_THAT(error_with(config_json(R"({"quant_method": "fp8", "weight_block_size": [128, 128]})")),
               Catch::Contains("key 'quant_method' is 'fp8' with 'weight_block_size'"));
    // AutoFP8's per-tensor checkpoints: quant_method "fp8" without weight_block_size, ignored_layers by name.
    CHECK(plan_with(config_json(R"({"quant_method": "fp8", "activation_scheme": "static"})")).accepted);
    CHECK(plan_with(config_json(R"({"quant_method": "fp8", "activation_scheme": "dynamic", "ignored_layers":
        ["lm_head", "model.layers.0.self_attn.o"]})")).accepted);
    CHECK_THAT(error_with(config_json(R"({"quant_method": "fp8", "ignored_layers": ["lm_head", ")" + m + R"("]})")),
               Catch::Contains("matches an exclude_modules / ignore pattern"));
    CHECK_THAT(error_with(config(R"({"quant_algo": "FP8", "exclude_modules": ["*o_proj"]})")),
               Catch::Contains("matches an exclude_modules / ignore pattern"));
    const QuantConfig mixed = config(R"({"quant_algo": "MIXED_PRECISION", "quantized_layers": {
        "model.layers.0.self_attn.k_proj": {"quant_algo": "FP8"}}})");
    WeightSource bf;
    bf.main = f.add("model.layers.0.self_attn.k_proj.weight", "BF16", {16, 32}, std::vector<uint8_t>(1024));
    CHECK(error_of(fmt, request("model.layers.0.self_attn.k_proj.weight", WeightRole::Linear, {16, 32}, bf, &mixed), ex) ==
          "quant_fp8: key 'quantized_layers.model.layers.0.self_attn.k_proj' of the quantization config "
          "(hf_quant_config.json) makes 'model.layers.0.self_attn.k_proj' FP8, but its tensors are not FP8 "
          "('model.layers.0.self_attn.k_proj.weight' is BF16)");
    WeightSource bad = fp8_source(f, "w", 16, 32, false, 1.f);
    bad.aux.erase("weight_scale");
    CHECK(error_of(fmt, request("w.weight", WeightRole::Linear, {16, 32}, bad, nullptr), ex) ==
          "quant_fp8: 'w.weight' is F8_E4M3 but its scale 'w.weight_scale' is missing");
    bad = fp8_source(f, "w", 16, 32, false, 1.f);
    bad.aux["weight_scale"] = f.f32("w.weight_scale", {3}, {1.f, 2.f, 3.f});
    CHECK_THAT(error_of(fmt, request("w.weight", WeightRole::Linear, {16, 32}, bad, nullptr), ex),
               Catch::Contains("needs 1 (per tensor) or 16 (per channel)"));
    // Scales by their shape: [16, 1] per channel, [1, 1] per tensor; a block-wise [2, 8] has 16 values too.
    WeightSource col = fp8_source(f, "wc", 16, 32, false, 1.f);
    col.aux["weight_scale"] = f.f32("wc.weight_scale", {16, 1}, std::vector<float>(16, 0.5f));
    CHECK(fmt.plan(request("wc.weight", WeightRole::Linear, {16, 32}, col, nullptr), ex).device_bytes == 16 * 32 + 16 * 4);
    col.aux["weight_scale"] = f.f32("wc.weight_scale2", {1, 1}, {0.5f});
    CHECK(fmt.plan(request("wc.weight", WeightRole::Linear, {16, 32}, col, nullptr), ex).device_bytes == 16 * 32 + 4);
    bad = fp8_source(f, "w", 16, 32, false, 1.f);
    bad.aux["weight_scale"] = f.f32("w.weight_scale", {2, 8}, std::vector<float>(16, 1.f));
    CHECK_THAT(error_of(fmt, request("w.weight", WeightRole::Linear, {16, 32}, bad, nullptr), ex),
               Catch::Contains("'w.weight_scale' [2, 8] has 16 values") && Catch::Contains("block-wise"));
    // One row of blocks whose count equals the rows ([1, 16] for 16 x 2048 at blocks of 128): a block-wise scale,
    // not a per-channel one (it passed for [16], giving row r the scale of column block r).
    WeightSource wide = fp8_source(f, "ww", 16, 2048, false, 1.f);
    wide.aux["weight_scale"] = f.f32("ww.weight_scale", {1, 16}, std::vector<float>(16, 1.f));
    CHECK_THAT(error_of(fmt, request("ww.weight", WeightRole::Linear, {16, 2048}, wide, nullptr), ex),
               Catch::Contains("'ww.weight_scale' [1, 16] has 16 values") && Catch::Contains("block-wise"));
    bad = fp8_source(f, "w", 16, 32, false, 1.f);
    bad.aux["weight_scale_inv"] = f.f32("w.weight_scale_inv", {1, 1}, {1.f});
    CHECK(error_of(fmt, request("w.weight", WeightRole::Linear, {16, 32}, bad, nullptr), ex) ==
          "quant_fp8: 'w.weight_scale_inv': block-wise FP8 (weight_scale_inv) is not supported");
}

TEST_CASE("fp8: fused expert parts (gate|up of every expert) stack per expert with per-row scales",
          "[fp8][plan][experts]") {
    FakeTensors f;
    CpuExecutor ex(2);
    fp8::Fp8Format fmt;
    const int64_t ne = 3, cols = 32;
    WeightSource gate, up;
    for (int e = 0; e < ne; ++e) {
        gate.experts.push_back(fp8_source(f, "g" + std::to_string(e), 12, cols, false, 0.01f * float(e + 1)));
        up.experts.push_back(fp8_source(f, "u" + std::to_string(e), 4, cols, e == 1, 0.02f));
    }
    WeightSource fused;
    fused.parts = {gate, up};
    auto r = request("gate_up", WeightRole::Experts, {ne, 16, cols}, fused, nullptr);
    const WeightPlan p = fmt.plan(r, ex);
    REQUIRE(p.accepted);
    CHECK(p.shape == std::vector<int64_t>{ne, 16, cols});
    CHECK(p.device_bytes == uint64_t(ne * 16 * cols + ne * 16 * 4));
    std::vector<float> all(size_t(ne * 16 * cols)), g(size_t(12 * cols)), u(size_t(4 * cols));
    fmt.dequantize(fused, 0, ne * 16, all.data());
    for (int64_t e = 0; e < ne; ++e) {
        fmt.dequantize(gate, e * 12, 12, g.data());
        fmt.dequantize(up, e * 4, 4, u.data());
        CHECK(std::equal(g.begin(), g.end(), all.begin() + e * 16 * cols));
        CHECK(std::equal(u.begin(), u.end(), all.begin() + (e * 16 + 12) * cols));
    }
    check_experts(fmt, r, ex);
}
