// The nvfp4 format on hand-made sources: what it accepts (ModelOpt, compressed-tensors, fused parts, experts),
// loads (CPU matmul, get_rows, grouped expert matmul against dequantize()), refuses (with the reason) and rejects
// (one imp::Error line naming the key or tensor) for every quantization-config case.
#include <catch2/catch.hpp>

#include <algorithm>
#include <string>

#include "exec/cpu/cpu_executor.h"
#include "fake_tensors.h"
#include "imp/error.h"
#include "matmul_reference.h"
#include "plan_helpers.h"
#include "nvfp4_format.h"

using namespace imp;
using namespace imp::quant_test;

namespace {

const std::string kQ = "model.layers.0.self_attn.q_proj";

}  // namespace

TEST_CASE("nvfp4: ModelOpt and compressed-tensors weights plan, load and multiply", "[nvfp4][plan]") {
    FakeTensors f;
    CpuExecutor ex(2);
    nvfp4::Nvfp4Format fmt;
    const QuantConfig q = config(R"({"quant_algo": "NVFP4", "group_size": 16, "exclude_modules": ["lm_head"]})");
    auto r = request(kQ + ".weight", WeightRole::Linear, {24, 64}, nvfp4_source(f, kQ, 24, 64, 0.01f), &q);
    WeightPlan p = fmt.plan(r, ex);
    REQUIRE(p.accepted);
    CHECK(p.type == "NVFP4");
    CHECK(p.shape == std::vector<int64_t>{24, 64});
    CHECK(p.consumed.size() == 4);  // codes, scales, weight_scale_2, input_scale (read, ignored)
    CHECK(p.device_bytes == 24 * 32 + 24 * 4 + 4);
    check_weight(fmt, r, ex);

    // compressed-tensors: weight_packed + weight_global_scale (the reciprocal), no "X.weight".
    const QuantConfig ct = config_json(R"({"quant_method": "compressed-tensors", "format": "nvfp4-pack-quantized",
                                         "ignore": ["lm_head"]})");
    WeightSource s;
    s.aux["weight_packed"] = f.add("m.weight_packed", "U8", {16, 24}, f.random_bytes(16 * 24, 0, 255));
    s.aux["weight_scale"] = f.add("m.weight_scale", "F8_E4M3", {16, 3}, f.random_bytes(16 * 3, 0x20, 0x48));
    s.aux["weight_global_scale"] = f.f32("m.weight_global_scale", {1}, {300.f});
    s.aux["input_global_scale"] = f.f32("m.input_global_scale", {1}, {20.f});
    auto rc = request("m.weight", WeightRole::Linear, {16, 48}, s, &ct);
    REQUIRE(fmt.plan(rc, ex).accepted);
    check_weight(fmt, rc, ex);

    // A fused q|k|v with one shared weight_scale_2 (as ModelOpt exports it); LM head role.
    WeightSource fused;
    for (const char* m : {"a", "b", "c"}) fused.parts.push_back(nvfp4_source(f, m, 16, 32, 0.02f));
    auto rf = request("abc", WeightRole::LmHead, {48, 32}, fused, &q);
    REQUIRE(fmt.plan(rf, ex).accepted);
    CHECK(fmt.plan(rf, ex).consumed.size() == 12);
    check_weight(fmt, rf, ex);
    // Parts of different per-tensor scales are refused (the engine then keeps them unfused).
    fused.parts[1] = nvfp4_source(f, "b2", 16, 32, 0.03f);
    const WeightPlan pr = fmt.plan(request("abc", WeightRole::Linear, {48, 32}, fused, &q), ex);
    CHECK_FALSE(pr.accepted);
    CHECK_THAT(pr.reason, Catch::Contains("different per-tensor scales"));
}

TEST_CASE("nvfp4: per-expert tensors gather into one stacked weight", "[nvfp4][plan][experts]") {
    FakeTensors f;
    CpuExecutor ex(2);
    nvfp4::Nvfp4Format fmt;
    // MIXED_PRECISION with one entry for the whole experts module, keyed with the multimodal prefix.
    const QuantConfig q = config(R"({"quant_algo": "MIXED_PRECISION", "quantized_layers": {
        "model.language_model.layers.0.mlp.experts": {"quant_algo": "W4A16_NVFP4", "group_size": 16}}})");
    WeightSource s;
    for (int e = 0; e < 5; ++e)
        s.experts.push_back(nvfp4_source(f, "model.layers.0.mlp.experts." + std::to_string(e) + ".gate_proj", 20, 48,
                                         0.001f * float(e + 1)));
    auto r = request("model.layers.0.mlp.experts.gate_proj", WeightRole::Experts, {5, 20, 48}, s, &q);
    const WeightPlan p = fmt.plan(r, ex);
    REQUIRE(p.accepted);
    CHECK(p.shape == std::vector<int64_t>{5, 20, 48});
    CHECK(p.device_bytes == 5 * 20 * (24 + 3) + 5 * 4);
    check_experts(fmt, r, ex);
    // A 2-D weight asked as experts reads as its own shape (the engine reports the mismatch).
    auto r2 = request(kQ + ".weight", WeightRole::Experts, {1, 16, 32}, nvfp4_source(f, kQ, 16, 32, 1.f), nullptr);
    CHECK(fmt.plan(r2, ex).shape == std::vector<int64_t>{16, 32});
}

TEST_CASE("nvfp4: quantization config cases load or fail with one line naming the key", "[nvfp4][plan][config]") {
    FakeTensors f;
    CpuExecutor ex(1);
    nvfp4::Nvfp4Format fmt;
    const WeightSource nv = nvfp4_source(f, kQ, 16, 32, 0.5f);
    auto plan_with = [&](const QuantConfig& q) { return fmt.plan(request(kQ + ".weight", WeightRole::Linear, {16, 32}, nv, &q), ex); };
    auto error_with = [&](const QuantConfig& q) {
        return error_of(fmt, request(kQ + ".weight", WeightRole::Linear, {16, 32}, nv, &q), ex);
    };
    // Accepted algorithms; no config at all (the tensors speak).
    for (const char* algo : {"NVFP4", "W4A16_NVFP4"})
        CHECK(plan_with(config(std::string(R"({"quant_algo": ")") + algo + R"(", "group_size": 16})")).accepted);
    CHECK(plan_with(QuantConfig{}).accepted);
    CHECK(plan_with(config(R"({"quant_algo": "MIXED_PRECISION", "quantized_layers": {
        "model.layers.0.self_attn.q_proj": {"quant_algo": "NVFP4", "group_size": 16}}})")).accepted);
    // Unknown and unsupported algorithms, W4A8 (NVFP4 weights, FP8 activations), a wrong group size.
    CHECK(error_with(config(R"({"quant_algo": "NVFP5"})")) ==
          "quant_nvfp4: '" + kQ + ".weight': key 'quant_algo' is quant_algo 'NVFP5', which quant_nvfp4 does not read "
          "(it reads NVFP4 and W4A16_NVFP4, weight-only) (hf_quant_config.json)");
    CHECK_THAT(error_with(config(R"({"quant_algo": "W4A8_NVFP4_FP8"})")), Catch::Contains("'W4A8_NVFP4_FP8'"));
    CHECK(error_with(config(R"({"quant_algo": "NVFP4", "group_size": 32})")) ==
          "quant_nvfp4: '" + kQ + ".weight': key 'group_size' is 32; NVFP4 blocks are 16 elements "
          "(hf_quant_config.json)");
    CHECK_THAT(error_with(config(R"({"quant_algo": "MIXED_PRECISION", "quantized_layers": {
        "model.layers.0.self_attn.q_proj": {"quant_algo": "FP8"}}})")),
               Catch::Contains("key 'quantized_layers.model.layers.0.self_attn.q_proj' is quant_algo 'FP8'"));
    CHECK_THAT(error_with(config(R"({"quant_algo": "MIXED_PRECISION", "quantized_layers": {"lm_head": {"quant_algo": "NVFP4"}}})")),
               Catch::Contains("has no NVFP4 entry in key 'quantized_layers'"));
    // Excluded by fnmatch and by re: patterns.
    CHECK_THAT(error_with(config(R"({"quant_algo": "NVFP4", "exclude_modules": ["*self_attn*"]})")),
               Catch::Contains("matches an exclude_modules / ignore pattern"));
    CHECK_THAT(error_with(config_json(R"({"quant_method": "compressed-tensors", "format": "nvfp4-pack-quantized",
                                        "ignore": ["re:.*q_proj$"]})")),
               Catch::Contains("matches an exclude_modules / ignore pattern"));
    CHECK_THAT(error_with(config_json(R"({"quant_method": "compressed-tensors", "format": "pack-quantized"})")),
               Catch::Contains("key 'format' is 'pack-quantized'"));

    // A layer in the map whose tensors are not NVFP4 (BF16 left in the file).
    WeightSource bf;
    bf.main = f.add("model.layers.1.mlp.down_proj.weight", "BF16", {16, 32}, std::vector<uint8_t>(16 * 32 * 2));
    const QuantConfig mixed = config(R"({"quant_algo": "MIXED_PRECISION", "quantized_layers": {
        "model.layers.1.mlp.down_proj": {"quant_algo": "W4A16_NVFP4", "group_size": 16}}})");
    CHECK(error_of(fmt, request("model.layers.1.mlp.down_proj.weight", WeightRole::Linear, {16, 32}, bf, &mixed), ex) ==
          "quant_nvfp4: key 'quantized_layers.model.layers.1.mlp.down_proj' of the quantization config "
          "(hf_quant_config.json) makes 'model.layers.1.mlp.down_proj' W4A16_NVFP4, but its tensors are not NVFP4 "
          "('model.layers.1.mlp.down_proj.weight' is BF16 [16, 32], no weight_scale)");
    // Not listed: a BF16 weight is refused with the reason (another format takes it).
    const WeightPlan pb = fmt.plan(request("x.weight", WeightRole::Linear, {16, 32}, [&] {
        WeightSource s;
        s.main = f.add("x.weight", "BF16", {16, 32}, std::vector<uint8_t>(16 * 32 * 2));
        return s;
    }(), &mixed), ex);
    CHECK_FALSE(pb.accepted);
    CHECK(pb.reason == "type BF16 without an F8_E4M3 weight_scale is not NVFP4");

    // Malformed NVFP4 tensors.
    WeightSource bad = nvfp4_source(f, "m", 16, 32, 1.f);
    bad.aux.erase("weight_scale_2");
    CHECK(error_of(fmt, request("m.weight", WeightRole::Linear, {16, 32}, bad, nullptr), ex) ==
          "quant_nvfp4: 'm.weight': the per-tensor scale 'm.weight_scale_2' is missing");
    bad = nvfp4_source(f, "m", 16, 32, 1.f);
    bad.aux["weight_scale"] = f.add("m.weight_scale", "F8_E4M3", {16, 4}, std::vector<uint8_t>(64));
    CHECK_THAT(error_of(fmt, request("m.weight", WeightRole::Linear, {16, 32}, bad, nullptr), ex),
               Catch::Contains("does not match 'm.weight_scale' [16, 4] (one scale per 16 columns)"));
    bad = nvfp4_source(f, "m", 16, 32, 1.f);
    bad.aux["pre_quant_scale"] = f.f32("m.pre_quant_scale", {32}, std::vector<float>(32, 1.f));
    CHECK(error_of(fmt, request("m.weight", WeightRole::Linear, {16, 32}, bad, nullptr), ex) ==
          "quant_nvfp4: 'm.pre_quant_scale': NVFP4_AWQ activation pre-scales are not supported");
}

TEST_CASE("nvfp4: fused expert parts (gate|up of every expert) stack per expert", "[nvfp4][plan][experts]") {
    FakeTensors f;
    CpuExecutor ex(2);
    nvfp4::Nvfp4Format fmt;
    const int64_t ne = 4, cols = 32;
    WeightSource gate, up;
    for (int e = 0; e < ne; ++e) {
        const float g2 = 0.01f * float(e + 1);  // one per-tensor scale per expert, shared by its gate and up
        gate.experts.push_back(nvfp4_source(f, "x." + std::to_string(e) + ".gate_proj", 16, cols, g2));
        up.experts.push_back(nvfp4_source(f, "x." + std::to_string(e) + ".up_proj", 8, cols, g2));
    }
    WeightSource fused;
    fused.parts = {gate, up};
    auto r = request("x.gate_up", WeightRole::Experts, {ne, 24, cols}, fused, nullptr);
    const WeightPlan p = fmt.plan(r, ex);
    REQUIRE(p.accepted);
    CHECK(p.shape == std::vector<int64_t>{ne, 24, cols});
    CHECK(p.device_bytes == uint64_t(ne * 24 * (cols / 2 + cols / 16) + ne * 4));
    // Expert e's rows: its gate rows, then its up rows.
    std::vector<float> all(size_t(ne * 24 * cols)), g(size_t(16 * cols)), u(size_t(8 * cols));
    fmt.dequantize(fused, 0, ne * 24, all.data());
    for (int64_t e = 0; e < ne; ++e) {
        fmt.dequantize(gate, e * 16, 16, g.data());
        fmt.dequantize(up, e * 8, 8, u.data());
        CHECK(std::equal(g.begin(), g.end(), all.begin() + e * 24 * cols));
        CHECK(std::equal(u.begin(), u.end(), all.begin() + (e * 24 + 16) * cols));
    }
    check_experts(fmt, r, ex);
    // Gate and up of one expert with different per-tensor scales: refused (the engine keeps them apart).
    fused.parts[1].experts[2] = nvfp4_source(f, "x.2.up2", 8, cols, 0.5f);
    CHECK_THAT(fmt.plan(request("x.gate_up", WeightRole::Experts, {ne, 24, cols}, fused, nullptr), ex).reason,
               Catch::Contains("different per-tensor scales"));
}
