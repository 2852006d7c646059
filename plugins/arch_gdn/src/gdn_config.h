// arch_gdn: the hyper-parameters and tensor names of a Gated-DeltaNet hybrid (Qwen3-Next, Qwen3.5, Qwen3.6) read
// from a GGUF (qwen3next, qwen35, qwen35moe) or a Hugging Face folder (qwen3_next; qwen3_5_moe / qwen3_5 with the
// multimodal wrapper's text_config and model.language_model.* names, or the text-only *_text configs).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "imp/blocks/names.h"
#include "imp/model.h"

namespace imp::gdn_arch {

struct GdnConfig {
    std::string arch;  // GGUF general.architecture / HF model_type
    bool gguf = false;
    int64_t n_embd = 0, n_layer = 0, n_vocab = 0, n_ctx = 0;
    double eps = 1e-6;
    // full attention (gated, partial rotary, q/k norms)
    int64_t n_head = 0, n_kv = 0, head_dim = 0, n_rot = 0;
    double rope_base = 10000.0, freq_scale = 1.0;
    std::string conv_key;   // where conv_kernel was read (for messages)
    double attn_scale = 0;  // GGUF {arch}.attention.scale (llama.cpp's kq_scale); 0: 1 / sqrt(head_dim)
    // Gated DeltaNet
    int64_t gdn_hk = 0, gdn_hv = 0, gdn_dk = 0, gdn_dv = 0, conv_kernel = 4;
    bool tiled = false;   // qwen35 GGUF v-head order (v-head j reads k-head j % Hk)
    bool a_is_log = true; // HF A_log; GGUF ssm_a stores -exp(A_log)
    std::vector<int64_t> conv_shape;  // file shape of the conv weight: {C, K} (GGUF) or {C, 1, K} (HF)
    // FFN: MoE with a shared expert, or dense SwiGLU (qwen35 / qwen3_5)
    int64_t n_expert = 0, top_k = 0, n_ff_exp = 0, n_ff_shared = 0, n_ff = 0;
    bool norm_topk = true;
    std::vector<bool> full_attn;  // per layer: full attention (else Gated DeltaNet)
    std::vector<bool> moe;        // per layer: MoE FFN (else dense SwiGLU)
    float norm_offset = 0.f;      // 1 for HF (zero-centred norms stored as w); GGUF stores 1 + w
    std::string tok_embd, output_norm, output;
    blocks::NameMap names;        // attention, FFN, MoE and GDN roles (gdn_* roles: gdn_names below)
    std::vector<std::string> skipped;  // tensor-name prefixes the text model does not read (vision tower, MTP)
};

// Reads the config; throws imp::Error naming the file and the key that is missing or invalid.
GdnConfig read_config(const ModelSource& src);

// Architecture strings served.
std::vector<std::string> gdn_architectures();

}  // namespace imp::gdn_arch
