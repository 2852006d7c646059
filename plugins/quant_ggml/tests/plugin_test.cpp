// The built plugin loads through the core's loader (descriptor checks, Boost.DLL aliases) and registers the
// "ggml" format (found by name), which plans a GGUF Q4_1 tensor and a safetensors BF16 one and refuses FP8.
#include <catch2/catch.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "exec/cpu/cpu_executor.h"
#include "imp/quant_format.h"
#include "imp/registry.h"
#include "plugin/loader.h"
#include "request_util.h"

TEST_CASE("quant_ggml: the plugin loads and registers the ggml format", "[quant_ggml][plugin]") {
    imp::Registry reg;
    imp::PluginLoader loader(reg, {std::string(IMP_BINARY_DIR) + "/lib/imp/plugins"});
    const auto& info = loader.load("quant_ggml");
    CHECK(info.kind == imp::PluginKind::Quant);
    CHECK(info.version == "0.1.0");
    CHECK(info.provides.find("format:F32,F16,BF16,Q4_0,Q4_1") == 0);
    REQUIRE(reg.formats().size() == 1);
    const imp::QuantFormat* f = reg.formats()[0];
    CHECK(f->name() == "ggml");

    CHECK(reg.find_format("ggml") == f);
    CHECK(reg.find_format("nvfp4") == nullptr);

    // It plans a GGUF Q4_1 tensor and a safetensors BF16 one, and refuses an FP8 one with the reason.
    imp::CpuExecutor ex(1);
    const std::vector<uint8_t> bytes(8 * 64 * 2, 0);
    imp::TensorInfo gguf_q41;
    gguf_q41.name = "blk.0.attn_q.weight";
    gguf_q41.type = "Q4_1";
    gguf_q41.ggml_type = 3;
    gguf_q41.shape = {8, 64};
    gguf_q41.data = bytes.data();
    gguf_q41.nbytes = 8 * 2 * 20;
    imp::TensorInfo st_bf16 = gguf_q41;
    st_bf16.name = "model.layers.0.mlp.up_proj.weight";
    st_bf16.type = "BF16";
    st_bf16.ggml_type = UINT32_MAX;
    st_bf16.nbytes = 8 * 64 * 2;
    imp::TensorInfo st_fp8 = st_bf16;
    st_fp8.type = "F8_E4M3";
    st_fp8.nbytes = 8 * 64;
    imp::WeightSource a, b, c;
    a.main = &gguf_q41;
    b.main = &st_bf16;
    c.main = &st_fp8;
    const imp::WeightPlan pa = f->plan(imp::ggml::test::request_for(a), ex);
    CHECK(pa.accepted);
    CHECK(pa.type == "Q4_1");
    CHECK(pa.shape == std::vector<int64_t>{8, 64});
    CHECK(pa.device_bytes == 8 * 2 * 20);
    CHECK(pa.consumed == std::vector<const imp::TensorInfo*>{&gguf_q41});
    CHECK(f->plan(imp::ggml::test::request_for(b), ex).accepted);
    const imp::WeightPlan pc = f->plan(imp::ggml::test::request_for(c), ex);
    CHECK_FALSE(pc.accepted);
    CHECK(pc.reason == "type F8_E4M3 is not a ggml type");
}
