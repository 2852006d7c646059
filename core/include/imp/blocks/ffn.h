// imp SDK blocks: the pre-norm SwiGLU feed-forward block shared by the arch plugins (Llama, Qwen3, the dense layers
// of the Qwen3.5 family), built from a typed spec:
//
//   xn = RMSNorm(x; ffn_norm)          weight (offset + w) when norm_offset != 0 (imp/blocks/norm.h)
//   g = Wgate xn, u = Wup xn           one matmul over gate|up when the format can fuse the rows
//   x = x + Wdown (silu(g) * u)        the residual add fused into the down matmul
#pragma once
#include <memory>
#include <string>

#include "imp/blocks/export.h"
#include "imp/blocks/names.h"
#include "imp/layer.h"
#include "imp/metadata.h"
#include "imp/model.h"

namespace imp::blocks {

struct IMP_API FfnSpec {
    std::string kind = "blocks.swiglu_ffn";  // Layer::kind() of the built layer
    int layer = 0;                           // layer index: {L} of the name patterns
    int64_t n_embd = 0, n_ff = 0;
    float eps = 1e-6f;         // RMSNorm epsilon
    float norm_offset = 0.f;   // 1 for zero-centred norms (HF Qwen3-Next / 3.5): weight ffn_norm + 1
    NameMap names;             // roles ffn_norm, ffn_gate, ffn_up, ffn_down
    const ModelSource* source = nullptr;  // needed when norm_offset != 0 (imp/blocks/norm.h); not kept

    // The adapter for hyper-parameters under these keys (arch_llama's ModelDesc::hparams):
    //   n_embd int | n_ff int | norm_eps float | name.ffn_norm, name.ffn_gate, name.ffn_up, name.ffn_down (str)
    // Names are prefix + name.<role>. Throws imp::Error naming hp.source and the key.
    static FfnSpec from_hparams(const Metadata& hp, const std::string& prefix);
};

// Builds the SwiGLU FFN layer. Throws imp::Error naming the kind, the layer and the field when the spec is invalid.
// Weights: the roles' tensors and "<prefix>ffn_gate_up.fused" (gate|up rows, built by the core when it can).
IMP_API std::unique_ptr<Layer> make_swiglu_ffn(const FfnSpec& spec);

}  // namespace imp::blocks
