// The built plugin loads through the core's loader (descriptor checks, Boost.DLL aliases) and registers the
// "ggml" format, which then serves a GGUF Q4_1 tensor and a safetensors BF16 one.
#include <catch2/catch.hpp>

#include <string>

#include "imp/quant_format.h"
#include "imp/registry.h"
#include "plugin/loader.h"

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

    imp::TensorInfo gguf_q41;
    gguf_q41.name = "blk.0.attn_q.weight";
    gguf_q41.type = "Q4_1";
    gguf_q41.ggml_type = 3;
    imp::TensorInfo st_bf16;
    st_bf16.name = "model.layers.0.mlp.up_proj.weight";
    st_bf16.type = "BF16";
    imp::TensorInfo st_fp8 = st_bf16;
    st_fp8.type = "F8_E4M3";
    imp::WeightSource a, b, c;
    a.main = &gguf_q41;
    b.main = &st_bf16;
    c.main = &st_fp8;
    CHECK(reg.find_format(a) == f);
    CHECK(reg.find_format(b) == f);
    CHECK(reg.find_format(c) == nullptr);
}
