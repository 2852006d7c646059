// imp SDK blocks: the pre-norm attention block shared by the arch plugins (Llama, Qwen3, Qwen3-MoE, the full-attention
// layers of Qwen3-Next / Qwen3.5 / Qwen3.6), built from a typed spec:
//
//   xn = RMSNorm(x; attn_norm)                       weight (offset + w) when norm_offset != 0 (imp/blocks/norm.h)
//   q = Wq xn, k = Wk xn, v = Wv xn                   one matmul over q|k|v when the format can fuse the rows
//   output_gate: Wq xn is [n_head, 2 * head_dim] per token, per head [query (head_dim) | gate (head_dim)]
//   qk_norm: q, k = per-head RMSNorm(q; attn_q_norm), RMSNorm(k; attn_k_norm)  (same offset as attn_norm)
//   q, k = RoPE(q), RoPE(k) on the first rope.n_rot dims of each head (partial rotary when < head_dim)
//   k, v -> the KV cache;  a = causal GQA attention(q, K, V) * scale  (query head h reads KV head h / group)
//   output_gate: a = a * sigmoid(gate)  (element-wise over [n_head * head_dim])
//   x = x + Wo a                                      the residual add fused into the o_proj matmul
//
// The output-gate layout is transformers' Qwen3NextAttention.forward (models/qwen3_next/modeling_qwen3_next.py;
// Qwen3_5Attention subclasses it unchanged): q_proj has n_head * head_dim * 2 outputs,
//   query_states, gate = torch.chunk(q_proj(x).view(*input_shape, -1, head_dim * 2), 2, dim=-1)
// i.e. interleaved per head — rows [h * 2hd, h * 2hd + hd) of q_proj are head h's query, the next hd rows its gate
// — and attn_output = attn_output * torch.sigmoid(gate) before o_proj (llama.cpp's qwen3next GGUF keeps that order).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "imp/blocks/export.h"
#include "imp/blocks/names.h"
#include "imp/layer.h"
#include "imp/metadata.h"
#include "imp/model.h"

namespace imp::blocks {

// Rotary embedding of a block (the executor's RopeParams without device pointers).
struct RopeSpec {
    int n_rot = 0;            // rotated dims at the start of each head (even); 0 = head_dim; < head_dim: partial
    float base = 10000.f;     // theta base
    bool neox = true;         // true: pairs (i, i + n_rot/2) (HF rotate-half, qwen GGUFs); false: pairs (2i, 2i + 1)
    float freq_scale = 1.f;   // linear position scaling (1 / factor)
    std::string freqs_name;   // optional Vector weight of n_rot/2 angle divisors (Llama-3 "rope_freqs.weight")
    std::vector<float> freq_factors;  // optional: the divisors' values when the arch computed them; then they are
                                      // uploaded under freqs_name (WeightSpec::values) instead of read from the file
};

struct IMP_API AttentionSpec {
    std::string kind = "blocks.attention";  // Layer::kind() of the built layer (messages, plans)
    int layer = 0;                          // layer index: {L} of the name patterns
    int64_t n_embd = 0;
    int n_head = 0, n_kv_head = 0, head_dim = 0;  // n_kv_head divides n_head (GQA)
    RopeSpec rope;
    bool qk_norm = false;       // per-head RMSNorm of q and k before RoPE (Qwen3 and later)
    bool output_gate = false;   // sigmoid output gate from q_proj (Qwen3-Next / 3.5 / 3.6; layout above)
    float norm_offset = 0.f;    // 1 for zero-centred norms (HF Qwen3-Next / 3.5): weights attn_norm, q/k norms + 1
    float eps = 1e-6f;          // epsilon of every RMSNorm of the block
    float scale = 0.f;          // softmax scale; 0 = 1 / sqrt(head_dim)
    NameMap names;              // roles attn_norm, attn_q, attn_k, attn_v, attn_output [, attn_q_norm, attn_k_norm]
    // Read while the block is built, not kept: needed when norm_offset != 0 (the norm weights, imp/blocks/norm.h);
    // when given, the q, k, v storage types also choose the fusion (q|k|v, or q|k with v apart when only v differs).
    const ModelSource* source = nullptr;

    // The adapter for hyper-parameters under these keys (what arch_llama writes into ModelDesc::hparams; another
    // arch may build "llama.attention" layers by name by writing the same keys). Names: prefix + name.<role>.
    //   n_embd int | n_head int | n_head_kv int | head_dim int | norm_eps float
    //   rope.n_rot int | rope.base float | rope.neox bool | rope.freq_scale float (1)
    //   rope.freqs str (optional) | rope.freq_factors arr (optional, needs rope.freqs)
    //   attn.scale float (1/sqrt(head_dim)) | attn.qk_norm bool (false) | attn.output_gate bool (false)
    //   name.attn_norm, name.attn_q, name.attn_k, name.attn_v, name.attn_output [, name.attn_q_norm, name.attn_k_norm]
    // Throws imp::Error naming hp.source and the key when one is missing or invalid.
    static AttentionSpec from_hparams(const Metadata& hp, const std::string& prefix);
};

// Builds the attention layer. Throws imp::Error naming the kind, the layer and the field when the spec is invalid
// (non-positive sizes, n_head not a multiple of n_kv_head, n_rot odd or > head_dim, a missing name role,
// freq_factors of the wrong size, norm_offset without a source) or a norm tensor cannot be read.
// Weights (WeightSpec names): the roles' tensors, and "<prefix>attn_qkv.fused" (the q|k|v rows; the core builds it
// when the format can, else the block runs three matmuls). KV state: n_kv_head heads of head_dim.
IMP_API std::unique_ptr<Layer> make_attention(const AttentionSpec& spec);

}  // namespace imp::blocks
