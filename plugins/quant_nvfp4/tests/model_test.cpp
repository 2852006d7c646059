// Tiny NVFP4 checkpoints (ModelOpt NVFP4 with input_scale, compressed-tensors nvfp4-pack-quantized W4A4 with an
// NVFP4 LM head, ModelOpt MIXED_PRECISION with FP8 attention and quantized_layers under model.language_model.)
// give transformers' logits on the producers' dequantized weights on the CPU (model_check.h).
#include "model_check.h"

TEST_CASE("nvfp4: tiny quantized Llama / Qwen3 logits equal transformers' on the dequantized weights",
          "[nvfp4][model]") {
    const std::string root = std::string(IMP_SOURCE_DIR) + "/plugins/quant_nvfp4/tests/fixtures/models/";
    for (const char* name : {"qwen3_nvfp4_modelopt", "llama_nvfp4_ct", "qwen3_mixed_modelopt"})
        for (bool fuse : {true, false}) imp::quant_test::check_model(root + name, fuse);
}

// A tiny Qwen3-MoE, ModelOpt NVFP4 on attention and every expert (per-expert tensors), through the
// mixture-of-experts architecture when the build has it (arch_qwen_moe); without it there is nothing to run.
TEST_CASE("nvfp4: tiny Qwen3-MoE logits equal transformers' on the dequantized weights", "[nvfp4][model][moe]") {
    imp::Registry* reg = imp::quant_test::moe_registry();
    if (!reg) {
        WARN("arch_qwen_moe is not built: the NVFP4 Qwen3-MoE fixture is not run");
        return;
    }
    const std::string dir =
        std::string(IMP_SOURCE_DIR) + "/plugins/quant_nvfp4/tests/fixtures/models/qwen3moe_nvfp4_modelopt";
    for (bool fuse : {true, false}) imp::quant_test::check_model(dir, fuse, *reg);
}
