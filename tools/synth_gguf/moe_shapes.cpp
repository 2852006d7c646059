// synth-gguf: the mixture-of-experts shapes (model_plan.h: MoeShape), by the name of their Shape entry.
//   qwen3-30b-a3b: Qwen3-30B-A3B (48 layers, hidden 2048, 32/4 heads x 128, 128 experts top-8, expert FFN 768,
//                  vocab 151936; HF config of Qwen/Qwen3-30B-A3B)
//   tiny-qwen3moe: a CI-sized model of the same form (16 experts top-4, expert FFN 256: one Q4_K block per row)
// Random routers spread tokens: the F32 router rows are uniform in [-0.04, 0.04] (blocks.cpp), so for a normalized
// hidden state the logits have a standard deviation of ~0.023 * sqrt(n_embd) (~1.0 at 2048): softmax over them
// routes different tokens to different experts (the arch_qwen_moe test checks the histogram of the tiny shape).
#include "model_plan.h"

namespace synth {

const MoeShape* find_moe(const std::string& shape_name) {
    static const std::vector<MoeShape> table = {
        {"tiny-qwen3moe", 16, 4, 256},
        {"qwen3-30b-a3b", 128, 8, 768},
    };
    for (const auto& m : table)
        if (m.name == shape_name) return &m;
    return nullptr;
}

}  // namespace synth
