// imp SDK blocks: the pre-norm mixture-of-experts FFN block shared by the arch plugins (Qwen3-MoE, the MoE layers of
// Qwen3-Next / Qwen3.5 / Qwen3.6), built from a typed spec:
//
//   xn = RMSNorm(x; ffn_norm)                        weight (offset + w) when norm_offset != 0 (imp/blocks/norm.h)
//   p = softmax(W_router xn) over n_expert, fp32     (router W_router [n_expert, n_embd], no bias)
//   S = the top_k experts by p (ties: the lower expert id first)
//   w_j = p_j / sum_{S} p   when norm_topk (else p_j);   w_j *= weights_scale
//   x = x + sum_{j in S} w_j * Wdown_j (silu(Wgate_j xn) * Wup_j xn)
//   shared expert (n_ff_shared > 0): x += g * Wdown_s (silu(Wgate_s xn) * Wup_s xn), g = sigmoid(w_sg . xn) when
//   shared_gate, else 1
//
// The layout is transformers' Qwen3MoeSparseMoeBlock (models/qwen3_moe/modeling_qwen3_moe.py) and, for the shared
// expert, Qwen3NextSparseMoeBlock; llama.cpp's build_moe_ffn (softmax gating, norm_w, w_scale) computes the same.
// Layers a model keeps dense (HF mlp_only_layers / decoder_sparse_step) are the SwiGLU FFN block (imp/blocks/ffn.h):
// the arch decides per layer (is_moe_layer below).
//
// The router is one registered op, "blocks.moe_router" (CPU reference and CUDA kernel, register_moe_ops): the
// block's RMSNorm, the router GEMV, softmax, top-k, renormalization, scale and the shared-expert gate in one launch; expert ids and weights stay
// on the device, so a decode step through this block captures into one CUDA graph. The experts are ExpertWeights
// (imp/experts.h): gate|up in one grouped matmul (the file's fused 3-D tensor, or the per-expert stack of the gate and
// up experts the core builds: WeightSpec::concat, weight "<prefix>ffn_gate_up_exps.fused"), the down projection with
// the routing weights and the residual add in one grouped matmul.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "imp/blocks/export.h"
#include "imp/blocks/names.h"
#include "imp/layer.h"
#include "imp/metadata.h"
#include "imp/model.h"
#include "imp/registry.h"

namespace imp::blocks {

// The fused router. Per token t (row t of x), when norm_w is not null first the block's RMSNorm, written to xn:
//   xn[t, c] = x[t, c] / sqrt(mean_c(x[t, c]^2) + eps) * norm_w[c]   (else xn = x, nothing written)
//   l_e = sum_c xn[t, c] * w[e, c] (fp32);  p = softmax(l);  ids[t, 0..top_k) = the top_k experts by p, descending,
//   ties to the lower id;  weights[t, j] = p_ids / (norm_topk ? sum of the top_k p : 1) * scale;
//   shared_gate[t] = sigmoid(sum_c xn[t, c] * shared_gate_w[c])  when shared_gate_w is not null.
struct MoeRouter {
    static constexpr const char* name = "blocks.moe_router";
    struct Args {
        const float* x = nullptr;
        int64_t x_stride = 0;  // floats between rows of x
        const float* w = nullptr;  // [n_expert, n_embd]
        int64_t n_tokens = 0, n_embd = 0;
        int n_expert = 0, top_k = 0;  // 1 <= top_k <= n_expert
        bool norm_topk = true;
        float scale = 1.f;
        const float* shared_gate_w = nullptr;  // [n_embd] or null
        int32_t* ids = nullptr;                // [n_tokens, top_k]
        float* weights = nullptr;              // [n_tokens, top_k]
        float* shared_gate = nullptr;          // [n_tokens], written when shared_gate_w is not null
        const float* norm_w = nullptr;         // [n_embd] RMSNorm weight, or null (x is already normalized)
        float eps = 1e-6f;
        float* xn = nullptr;                   // [n_tokens, n_embd] (contiguous), written when norm_w is not null
    };
};

// x[t, c] *= s[t] for t < n_rows, c < n (row stride `stride` floats).
struct RowScale {
    static constexpr const char* name = "blocks.row_scale";
    struct Args {
        float* x = nullptr;
        int64_t stride = 0;
        const float* s = nullptr;
        int64_t n_rows = 0, n = 0;
    };
};

// Registers the MoE block's ops (CPU reference, CUDA kernel for cc >= 90, conformance checks) unless the registry
// has them already: every plugin that builds MoE blocks calls it from its register function.
IMP_API void register_moe_ops(Registry& reg);

struct IMP_API MoeSpec {
    std::string kind = "blocks.moe";  // Layer::kind() of the built layer
    int layer = 0;                    // layer index: {L} of the name patterns
    int64_t n_embd = 0;
    int n_expert = 0, top_k = 0;      // 1 <= top_k <= n_expert
    int64_t n_ff_exp = 0;             // each routed expert's FFN width
    bool norm_topk = true;            // renormalize the top-k weights (HF norm_topk_prob; llama.cpp always)
    float weights_scale = 1.f;        // expert_weights_scale
    int64_t n_ff_shared = 0;          // shared expert FFN width; 0 = no shared expert
    bool shared_gate = false;         // the shared expert is scaled by sigmoid(w_sg . xn)
    std::vector<int64_t> shared_gate_shape;  // file shape of the w_sg vector: {n_embd} (GGUF) or {1, n_embd} (HF);
                                             // empty = {n_embd}
    float eps = 1e-6f;
    float norm_offset = 0.f;          // 1 for zero-centred norms (HF Qwen3-Next / 3.5)
    // Roles: ffn_norm, ffn_gate_inp (router), ffn_gate_exps, ffn_up_exps, ffn_down_exps (expert weights, each the 3-D
    // tensor's name), optional ffn_gate_up_exps (the fused [n_expert, 2 n_ff_exp, n_embd] tensor: gate rows then up
    // rows), optional per-expert patterns ffn_gate_exps.e, ffn_up_exps.e, ffn_down_exps.e ("{e}" = expert index), and
    // with a shared expert ffn_gate_shexp, ffn_up_shexp, ffn_down_shexp [, ffn_gate_inp_shexp].
    NameMap names;
    const ModelSource* source = nullptr;  // needed when norm_offset != 0 (imp/blocks/norm.h); not kept
    const Registry* registry = nullptr;   // resolves the ops (register_moe_ops must have run on it)

    // The adapter for hyper-parameters under these keys (what arch_qwen_moe writes into ModelDesc::hparams):
    //   n_embd int | norm_eps float | moe.n_expert int | moe.top_k int | moe.n_ff_exp int | moe.norm_topk bool (true)
    //   moe.weights_scale float (1) | moe.n_ff_shared int (0) | moe.shared_gate bool (false)
    //   name.<role> str for the roles above (prefix + name.<role>)
    // Throws imp::Error naming hp.source and the key.
    static MoeSpec from_hparams(const Metadata& hp, const std::string& prefix);
};

// Adds the MoE roles to a name map: GGUF (llama.cpp) names "ffn_gate_inp.weight", "ffn_gate_exps.weight",
// "ffn_up_exps.weight", "ffn_down_exps.weight", "ffn_gate_shexp.weight", ... ; HF names "mlp.gate.weight",
// "mlp.experts.gate_up_proj" (fused 3-D), "mlp.experts.gate_proj" / "mlp.experts.{e}.gate_proj.weight" (per expert),
// ..., "mlp.shared_expert.gate_proj.weight", "mlp.shared_expert_gate.weight".
IMP_API void add_moe_gguf_names(NameMap& m);
IMP_API void add_moe_hf_names(NameMap& m);

// HF rule for which layers are MoE: not in mlp_only_layers and (layer + 1) % decoder_sparse_step == 0.
IMP_API bool is_moe_layer(int layer, const std::vector<int64_t>& mlp_only_layers, int64_t decoder_sparse_step);

// Builds the MoE layer. Throws imp::Error naming the kind, the layer and the field when the spec is invalid
// (non-positive sizes, top_k outside [1, n_expert], a missing role, no registry, ops not registered). bind() throws
// when neither the fused gate|up experts nor both gate and up experts were loaded.
// Weights: the roles' tensors, plus "<prefix>ffn_gate_up_shexp.fused" (the shared expert's gate|up rows).
IMP_API std::unique_ptr<Layer> make_moe(const MoeSpec& spec);

}  // namespace imp::blocks
