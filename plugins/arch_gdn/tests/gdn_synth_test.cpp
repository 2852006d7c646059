// The synthetic hybrid models load and run on the CPU executor: synth-gguf's tiny-qwen35moe (the CI form of the
// qwen3.6-35b-a3b shape) in Q4_K_M and Q8_0, and synth-safetensors' tiny-qwen3.6-nvfp4 (ModelOpt MIXED_PRECISION:
// NVFP4 experts / shared expert / LM head, FP8 attention and GDN in_proj_qkv / in_proj_z / out_proj, BF16 rest),
// whose GDN projections fuse per storage type (qkv|z in FP8, b|a in BF16).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <unistd.h>
#include <vector>

#include "exec/cpu/cpu_executor.h"
#include "gdn_fixture.h"
#include "imp/model.h"
#include "runtime/engine.h"

using namespace imp;
using namespace imp::test;

namespace {

std::string synth(const std::string& tool, const std::string& shape, const std::string& quant,
                  const std::string& extra = "") {
    const std::string out = (std::filesystem::temp_directory_path() /
                             ("imp-gdn-test-" + std::to_string(::getpid()) + "." + shape + (extra.empty() ? "" : ".x") +
                              (quant.empty() ? "" : "." + quant + ".gguf")))
                                .string();
    std::filesystem::remove_all(out);
    const std::string cmd = std::string(IMP_BINARY_DIR) + "/bin/" + tool + " --shape " + shape +
                            (quant.empty() ? "" : " --quant " + quant) + " " + extra + " --out " + out + " > /dev/null";
    REQUIRE(std::system(cmd.c_str()) == 0);
    return out;
}

void run_finite(Engine& eng) {
    std::vector<int32_t> toks(40);
    for (size_t i = 0; i < toks.size(); ++i) toks[i] = int32_t((i * 37 + 3) % 500);
    std::vector<float> lg(size_t(eng.desc().n_vocab));
    eng.forward(toks.data(), int64_t(toks.size()), lg.data());
    for (float v : lg) REQUIRE(std::isfinite(v));
    int32_t next = 9;
    eng.forward(&next, 1, lg.data());
    for (float v : lg) REQUIRE(std::isfinite(v));
}

}  // namespace

TEST_CASE("synthetic tiny-qwen35moe GGUF loads and runs (Q4_K_M, Q8_0)", "[arch_gdn][synth]") {
    for (const std::string quant : {"q4_k_m", "q8_0"}) {
        INFO(quant);
        const std::string path = synth("synth-gguf", "tiny-qwen35moe", quant);
        auto src = open_model(path);
        CpuExecutor ex(2);
        EngineOptions opt;
        opt.max_seq_len = 64;
        Engine eng(*src, gdn_registry(), ex, opt);
        const ModelDesc& d = eng.desc();
        REQUIRE(d.layers.size() == 8);  // layers 0-2 GDN, 3 full attention (every 4th), each + MoE
        CHECK(d.layers[0]->kind() == "gdn.linear_attention");
        CHECK(d.layers[6]->kind() == "gdn.attention");
        CHECK(d.layers[7]->kind() == "gdn.moe");
        CHECK(d.hparams->get_bool("gdn.tiled"));  // a qwen35moe GGUF with fewer key than value heads
        run_finite(eng);
        std::filesystem::remove(path);
    }
}

TEST_CASE("a tiny-qwen35moe GGUF with llama.cpp's MTP block (--mtp) gives the logits of the file without it",
          "[arch_gdn][synth]") {
    std::vector<float> logits[2];
    for (const int mtp : {0, 1}) {
        const std::string path = synth("synth-gguf", "tiny-qwen35moe", "q8_0", mtp ? "--mtp" : "");
        auto src = open_model(path);
        REQUIRE((src->find("blk.4.nextn.eh_proj.weight") != nullptr) == (mtp == 1));
        CpuExecutor ex(2);
        EngineOptions opt;
        opt.max_seq_len = 64;
        Engine eng(*src, gdn_registry(), ex, opt);
        REQUIRE(eng.desc().layers.size() == 8);  // the 4 trunk layers; blk.4 (nextn_predict_layers 1) is not read
        std::vector<int32_t> toks = {5, 77, 300, 12, 9, 410, 33};
        logits[mtp].resize(size_t(eng.desc().n_vocab));
        eng.forward(toks.data(), int64_t(toks.size()), logits[mtp].data());
        std::filesystem::remove(path);
    }
    CHECK(logits[0] == logits[1]);  // the trunk's tensors are the same data in both files
}

TEST_CASE("synthetic tiny-qwen3.6-nvfp4 (ModelOpt MIXED_PRECISION) loads and runs, GDN projections fused per type",
          "[arch_gdn][synth]") {
    const std::string dir = synth("synth-safetensors", "tiny-qwen3.6-nvfp4", "");
    auto src = open_model(dir);
    CpuExecutor ex(2);
    EngineOptions opt;
    opt.max_seq_len = 64;
    Engine eng(*src, registry_with({"arch_gdn", "quant_ggml", "quant_nvfp4", "quant_fp8"}), ex, opt);
    CHECK(eng.desc().layers.size() == 8);
    // 3 GDN layers x (qkv|z FP8, b|a BF16) + 1 attention layer q|k|v (FP8) + 4 shared experts gate|up (NVFP4)
    // + 4 expert stacks gate|up (NVFP4 per expert)
    CHECK(eng.plan().fused == 15);
    run_finite(eng);
    std::filesystem::remove_all(dir);
}
