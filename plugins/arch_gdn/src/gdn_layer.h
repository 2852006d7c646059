// arch_gdn: the Gated DeltaNet mixer layer (Qwen3-Next / Qwen3.5 / Qwen3.6 linear-attention layers), pre-norm with
// its own residual add:
//   xn = RMSNorm(x; attn_norm)                        (norm_offset folded in, imp/blocks/norm.h)
//   p = W_in xn -> q|k|v (conv_dim) | z (value_dim) | b (Hv) | a (Hv)
//       the projection parts in that column order, adjacent parts of one storage type fused into one matmul
//       (WeightSpec::concat); Qwen3-Next's grouped in_proj_qkvz / in_proj_ba (or GGUF ssm_in / ssm_ba) gathered
//       into that order by gdn.regroup
//   gdn.conv: causal depthwise conv + SiLU with a rolling state, q/k L2 norm, gates g, beta
//   gdn.rule_decode (every sequence one row) or gdn.rule_chunked: the gated delta rule with an fp32 state
//   gdn.gated_norm: RMSNorm per v-head (plain weight) * silu(z) (on decode steps inside gdn.rule_decode)
//   x = x + W_out o                                   (the residual add fused into the out_proj matmul)
// Per-sequence state: components "conv" [K-1, conv_dim] and "ssm" [Hv, dv, dk] (F32) in the engine's state slots.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "gdn_ops.h"
#include "imp/blocks/names.h"
#include "imp/layer.h"
#include "imp/model.h"
#include "imp/registry.h"

namespace imp::gdn_arch {

struct GdnSpec {
    std::string kind = "gdn.linear_attention";
    int layer = 0;
    int64_t n_embd = 0;
    gdn::Dims dims;
    int conv_kernel = 4;
    std::vector<int64_t> conv_shape;  // file shape of the conv weight ({C, K} or {C, 1, K})
    bool a_is_log = true;             // gdn_A holds A_log (HF) or -exp(A_log) (GGUF ssm_a)
    float eps = 1e-6f;                // attn_norm and gated-norm epsilon
    float norm_offset = 0.f;          // attn_norm offset (1 for HF zero-centred norms)
    // Roles: attn_norm, gdn_conv, gdn_A, gdn_dt, gdn_norm, gdn_out, and either gdn_qkv + gdn_z or gdn_qkvz (grouped),
    // either gdn_b + gdn_a or gdn_ba (grouped).
    blocks::NameMap names;
    const ModelSource* source = nullptr;  // read at build: norm offset, the parts' storage types (fusion groups)
    const Registry* registry = nullptr;   // resolves the gdn.* ops
    // Kernel variants ([plugin.arch_gdn] settings): decode steps apply the gated RMSNorm inside gdn.rule_decode (one
    // launch less) or run gdn.gated_norm after it; gdn.rule_chunked's CUDA variant (RuleArgs::variant: 0 auto,
    // 1 fused single kernel without workspace, 2 / 3 split with 64 / 32 value columns per block, 4 split 32 with
    // the prep kernel on mma.sync, 5 / 6 both kernels on mma.sync with 32 / 64 columns) — the layer gives
    // the split variants their workspace from its scratch.
    bool decode_fused_norm = true;
    int decode_norm_warps = 8;  // gdn.rule_decode's warps per v-head with the fused norm (RuleArgs::variant)
    int decode_norm_ctas = 1;   // ... and its CTAs per v-head (RuleArgs::decode_ctas: 1, or a cluster of 2, 4, 8)
    bool decode_conv_fused = false;  // with decode_fused_norm: gdn.decode_step (conv + rule + norm, one op)
    bool warp_kernels = true;  // gdn.conv / gdn.gated_norm variant 0 (the 16-byte warp kernels) or 1 (block kernels)
    int rule_variant = 0;
    // Extra weights this layer declares for the model (the arch's computed output-norm weight rides here: the
    // engine takes the first declaration of a name); not bound by the layer.
    std::vector<WeightSpec> extra_specs;
};

std::unique_ptr<Layer> make_gdn_layer(const GdnSpec& spec);

}  // namespace imp::gdn_arch
