// Tiny FP8 checkpoints (ModelOpt FP8 per tensor with input_scale, q/k/v of different scales fused per row;
// compressed-tensors float-quantized per channel with BF16 scales) give transformers' logits on the producers'
// dequantized weights on the CPU (model_check.h).
#include "model_check.h"

TEST_CASE("fp8: tiny quantized Llama / Qwen3 logits equal transformers' on the dequantized weights", "[fp8][model]") {
    const std::string root = std::string(IMP_SOURCE_DIR) + "/plugins/quant_fp8/tests/fixtures/models/";
    for (const char* name : {"qwen3_fp8_modelopt", "llama_fp8_ct"})
        for (bool fuse : {true, false}) imp::quant_test::check_model(root + name, fuse);
}
