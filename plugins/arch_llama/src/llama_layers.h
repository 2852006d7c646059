// arch_llama's layer kinds: "llama.attention" and "llama.ffn" (pre-norm residual blocks of Llama and Qwen3).
//
// Normalized hyper-parameters the layers read from LayerParams::hparams (written by the llama Arch from GGUF keys
// or config.json; another arch may build these layers by writing the same keys):
//   n_embd            int    hidden size
//   n_head            int    query heads
//   n_head_kv         int    key/value heads (divides n_head)
//   head_dim          int    dims per head (q, k and v)
//   n_ff              int    FFN inner size (llama.ffn)
//   norm_eps          float  epsilon of every RMSNorm in the layer (attn/ffn norm, q/k norm)
//   rope.n_rot        int    rotated dims at the start of each head (even, <= head_dim)
//   rope.base         float  theta base
//   rope.neox         bool   true: pairs (i, i + n_rot/2) (HF rotate-half, qwen GGUF); false: pairs (2i, 2i+1)
//   rope.freq_scale   float  linear position scaling (1 / factor), 1 when unscaled
//   rope.freqs        str    optional: name of the n_rot/2 frequency divisors (Llama-3 "rope_freqs.weight")
//   rope.freq_factors arr    optional: the divisors' values when computed by the arch (HF rope_scaling llama3);
//                            then rope.freqs is a synthetic name and the values are uploaded under it
//   attn.scale        float  softmax scale (1/sqrt(head_dim) normally)
//   attn.qk_norm      bool   per-head RMSNorm of q and k before RoPE (Qwen3)
//   name.<w>          str    tensor-name suffix appended to the layer prefix, for <w> in attn_norm, attn_q, attn_k,
//                            attn_v, attn_output, attn_q_norm, attn_k_norm (when qk_norm), ffn_norm, ffn_gate,
//                            ffn_up, ffn_down; e.g. prefix "blk.3." + "attn_q.weight"
#pragma once
#include <memory>

#include "imp/layer.h"

namespace imp::llama {

std::unique_ptr<Layer> make_attention(const LayerParams& p);
std::unique_ptr<Layer> make_ffn(const LayerParams& p);

}  // namespace imp::llama
