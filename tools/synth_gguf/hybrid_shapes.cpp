// synth-gguf: the Gated-DeltaNet hybrid shapes (model_plan.h: HybridShape), by the name of their Shape entry, and
// their per-layer tensors and metadata as llama.cpp's qwen35moe / qwen3next GGUFs hold them (FORMATS §2.5):
//   qwen3.6-35b-a3b:    Qwen3.6-35B-A3B (= Qwen3.5-35B-A3B shapes): 40 layers, every 4th full attention (16/2 heads
//                       x 256, output gate, rotary 64 of 256); GDN 16 key / 32 value heads x 128, conv 4; 256 experts
//                       top-8 of 512 + a shared expert of 512 with its sigmoid gate; vocab 248320
//   qwen3-next-80b-a3b: Qwen3-Next-80B-A3B: 48 layers (12 full), same attention and GDN heads, 512 experts top-10,
//                       expert and shared FFN 512; vocab 151936
//   tiny-qwen35moe:     a CI-sized model of the Qwen3.6 form (4 layers, GDN 2 / 4 heads x 128, 16 experts top-4)
//   tiny-qwen3next:     the same size in the Qwen3-Next form (qwen3next: b|a in one ssm_ba grouped per key head)
// With --mtp (qwen35moe shapes) the multi-token-prediction block follows the trunk as convert_hf_to_gguf.py writes it
// by default: blk.<n_layer>.* a full-attention + MoE block plus nextn.eh_proj / enorm / hnorm / shared_head_norm,
// block_count + 1 and nextn_predict_layers 1 (llama.cpp loads it only for speculative decoding).
// GDN layers: attn_qkv [q; k; v], attn_gate (z), ssm_beta, ssm_alpha (qwen35moe) or ssm_ba (qwen3next) in the
// recipe's base type; ssm_out like attn_output; in F32 ssm_conv1d (values in +-0.5, the range of PyTorch's conv
// init for 4 taps, so the conv output is not small against the projections), ssm_a (< 0: -exp(A_log) for A in
// [1, 16] as the HF init draws it), ssm_dt.bias and ssm_norm. Head sizes stay 128: the CUDA kernels' size.
#include <cmath>

#include "model_plan.h"

namespace synth {

const HybridShape* find_hybrid(const std::string& shape_name) {
    static const std::vector<HybridShape> table = {
        // name, Hk, Hv, dk, dv, conv, full every, n_rot, experts, used, ff_exp, ff_shared, rope sections
        // (Qwen3.5 / 3.6: mrope_section [11, 11, 10] padded to 4 as convert_hf_to_gguf.py writes it; the tiny shape
        // the same proportions of its 16 rotary dims)
        {"tiny-qwen35moe", 2, 4, 128, 128, 4, 4, 16, 16, 4, 256, 256, {3, 3, 2, 0}},
        {"tiny-qwen3next", 2, 4, 128, 128, 4, 4, 16, 16, 4, 256, 256, {0, 0, 0, 0}},
        {"qwen3.6-35b-a3b", 16, 32, 128, 128, 4, 4, 64, 256, 8, 512, 512, {11, 11, 10, 0}},
        {"qwen3-next-80b-a3b", 16, 32, 128, 128, 4, 4, 64, 512, 10, 512, 512, {0, 0, 0, 0}},
    };
    for (const auto& h : table)
        if (h.name == shape_name) return &h;
    return nullptr;
}

bool hybrid_full_attention(const HybridShape& h, int64_t i) { return (i + 1) % h.full_every == 0; }

void plan_hybrid_layer(const Shape& s, const HybridShape& h, int64_t i, uint32_t base, uint32_t more,
                       std::vector<TensorPlan>& t, bool mtp) {
    const std::string p = "blk." + std::to_string(i) + ".";
    auto matrix = [&](const std::string& name, int64_t rows, int64_t cols, uint32_t type) {
        t.push_back(TensorPlan{p + name, {cols, rows}, type, TensorPlan::Fill::Weight, {}, 0, 0});
    };
    auto f32 = [&](const std::string& name, std::vector<int64_t> ne, TensorPlan::Fill fill, std::vector<float> v) {
        t.push_back(TensorPlan{p + name, std::move(ne), kF32, fill, std::move(v), 0, 0});
    };
    const int64_t q_dim = s.n_head * s.head_dim, kv_dim = s.n_kv * s.head_dim;
    const int64_t key_dim = h.n_k_heads * h.head_k_dim, value_dim = h.n_v_heads * h.head_v_dim;
    f32("attn_norm.weight", {s.n_embd}, TensorPlan::Fill::Norm, {});
    if (mtp || hybrid_full_attention(h, i)) {
        matrix("attn_q.weight", 2 * q_dim, s.n_embd, base);  // [query | gate] per head
        matrix("attn_k.weight", kv_dim, s.n_embd, base);
        matrix("attn_v.weight", kv_dim, s.n_embd, more);
        matrix("attn_output.weight", s.n_embd, q_dim, base);
        f32("attn_q_norm.weight", {s.head_dim}, TensorPlan::Fill::Norm, {});
        f32("attn_k_norm.weight", {s.head_dim}, TensorPlan::Fill::Norm, {});
    } else {
        matrix("attn_qkv.weight", 2 * key_dim + value_dim, s.n_embd, base);
        matrix("attn_gate.weight", value_dim, s.n_embd, base);
        if (s.arch == "qwen3next") {
            matrix("ssm_ba.weight", 2 * h.n_v_heads, s.n_embd, base);
        } else {
            matrix("ssm_beta.weight", h.n_v_heads, s.n_embd, base);
            matrix("ssm_alpha.weight", h.n_v_heads, s.n_embd, base);
        }
        std::vector<float> conv(size_t(h.conv_kernel * (2 * key_dim + value_dim)));
        for (size_t k = 0; k < conv.size(); ++k) conv[k] = 0.5f * std::sin(0.7f * float(k) + 0.3f);
        f32("ssm_conv1d.weight", {h.conv_kernel, 2 * key_dim + value_dim}, TensorPlan::Fill::Values, conv);
        std::vector<float> a(size_t(h.n_v_heads)), dt(size_t(h.n_v_heads));
        for (int64_t j = 0; j < h.n_v_heads; ++j) {
            a[size_t(j)] = -float(1.0 + 15.0 * double(j) / double(h.n_v_heads));
            dt[size_t(j)] = float(std::log(std::expm1(0.01 + 0.09 * double(j) / double(h.n_v_heads))));
        }
        f32("ssm_a", {h.n_v_heads}, TensorPlan::Fill::Values, a);
        f32("ssm_dt.bias", {h.n_v_heads}, TensorPlan::Fill::Values, dt);
        f32("ssm_norm.weight", {h.head_v_dim}, TensorPlan::Fill::Norm, {});
        matrix("ssm_out.weight", s.n_embd, value_dim, base);
    }
    f32("post_attention_norm.weight", {s.n_embd}, TensorPlan::Fill::Norm, {});
    f32("ffn_gate_inp.weight", {s.n_embd, h.n_expert}, TensorPlan::Fill::Weight, {});
    matrix("ffn_gate_exps.weight", h.n_ff_exp, s.n_embd, base);
    t.back().ne.push_back(h.n_expert);
    matrix("ffn_up_exps.weight", h.n_ff_exp, s.n_embd, base);
    t.back().ne.push_back(h.n_expert);
    matrix("ffn_down_exps.weight", s.n_embd, h.n_ff_exp, more);
    t.back().ne.push_back(h.n_expert);
    f32("ffn_gate_inp_shexp.weight", {s.n_embd}, TensorPlan::Fill::Weight, {});
    matrix("ffn_gate_shexp.weight", h.n_ff_shared, s.n_embd, base);
    matrix("ffn_up_shexp.weight", h.n_ff_shared, s.n_embd, base);
    matrix("ffn_down_shexp.weight", s.n_embd, h.n_ff_shared, more);
    if (mtp) {  // the MTP head's own tensors (HF mtp.fc, mtp.pre_fc_norm_embedding / _hidden, mtp.norm)
        matrix("nextn.eh_proj.weight", s.n_embd, 2 * s.n_embd, base);
        f32("nextn.enorm.weight", {s.n_embd}, TensorPlan::Fill::Norm, {});
        f32("nextn.hnorm.weight", {s.n_embd}, TensorPlan::Fill::Norm, {});
        f32("nextn.shared_head_norm.weight", {s.n_embd}, TensorPlan::Fill::Norm, {});
    }
}

}  // namespace synth
