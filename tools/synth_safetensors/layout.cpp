// synth-safetensors: the checkpoint layouts (see layout.h). Shapes from the public configs:
//   llama3.1-8b-nvfp4       ModelOpt NVFP4 (nvidia/Llama-3.1-8B-Instruct-FP4 layout), lm_head excluded (BF16)
//   llama3.1-8b-fp8         ModelOpt FP8 per tensor, the same layout otherwise
//   qwen3.6-35b-a3b-nvfp4   ModelOpt MIXED_PRECISION as nvidia/Qwen3.6-35B-A3B-NVFP4: routed experts, shared expert
//                           and lm_head W4A16_NVFP4; attention and Gated-DeltaNet in_proj_qkv / in_proj_z / out_proj
//                           FP8 per tensor; router, shared gate, conv1d, in_proj_a/b, norms, embeddings BF16; names
//                           under model.language_model., config.json with text_config (no vision / MTP tensors)
//   qwen3-30b-a3b-nvfp4-ct  compressed-tensors nvfp4-pack-quantized (RedHatAI style: ignore lm_head, re:.*mlp.gate$)
// and tiny-* twins with the same layout at toy sizes (CI).
#include <stdexcept>

#include "layout.h"
#include "layout_util.h"

namespace synth_st {

uint64_t Tensor::bytes() const {
    uint64_t n = 1;
    for (auto d : shape) n *= uint64_t(d);
    return n * (dtype == "F32" ? 4 : dtype == "BF16" ? 2 : 1);
}

namespace {

std::string join(const std::vector<std::string>& v) {
    std::string r;
    for (const auto& s : v) r += (r.empty() ? "" : ", ") + s;
    return r;
}
std::string q(const std::string& s) { return "\"" + s + "\""; }

struct Dense {
    int64_t vocab, hidden, inter, layers, heads, kv_heads, head_dim;
};

// fp8: ModelOpt FP8 per tensor instead of NVFP4 (quant_algo FP8).
Checkpoint llama_modelopt(const Dense& d, bool fp8) {
    Checkpoint c;
    auto quantized = [&](std::vector<Tensor>& ts, const std::string& m, int64_t rows, int64_t cols) {
        if (fp8) modelopt_fp8(ts, m, rows, cols);
        else modelopt_nvfp4(ts, m, rows, cols);
    };
    auto& ts = c.tensors;
    bf16_weight(ts, "model.embed_tokens.weight", {d.vocab, d.hidden});
    for (int64_t l = 0; l < d.layers; ++l) {
        const std::string p = "model.layers." + std::to_string(l) + ".";
        bf16_norm(ts, p + "input_layernorm.weight", d.hidden);
        bf16_norm(ts, p + "post_attention_layernorm.weight", d.hidden);
        quantized(ts, p + "self_attn.q_proj", d.heads * d.head_dim, d.hidden);
        quantized(ts, p + "self_attn.k_proj", d.kv_heads * d.head_dim, d.hidden);
        quantized(ts, p + "self_attn.v_proj", d.kv_heads * d.head_dim, d.hidden);
        quantized(ts, p + "self_attn.o_proj", d.hidden, d.heads * d.head_dim);
        quantized(ts, p + "mlp.gate_proj", d.inter, d.hidden);
        quantized(ts, p + "mlp.up_proj", d.inter, d.hidden);
        quantized(ts, p + "mlp.down_proj", d.hidden, d.inter);
    }
    bf16_norm(ts, "model.norm.weight", d.hidden);
    bf16_weight(ts, "lm_head.weight", {d.vocab, d.hidden});
    const int64_t bos = d.vocab < 128256 ? d.vocab - 2 : 128000, eos = d.vocab < 128256 ? d.vocab - 1 : 128009;
    const std::string algo = fp8 ? "FP8" : "NVFP4", bits = fp8 ? "8" : "4";
    const std::string group = fp8 ? "" : ", \"group_size\": 16";
    const std::string quant = "{\"quant_algo\": \"" + algo + "\", \"kv_cache_quant_algo\": null" + group +
                              ", \"exclude_modules\": [\"lm_head\"]}";
    c.hf_quant_json = R"({"producer": {"name": "modelopt", "version": "0.47.0"}, "quantization": )" + quant + "}";
    c.config_json = "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", \"vocab_size\": " +
                    std::to_string(d.vocab) + ", \"hidden_size\": " + std::to_string(d.hidden) +
                    ", \"intermediate_size\": " + std::to_string(d.inter) + ", \"num_hidden_layers\": " +
                    std::to_string(d.layers) + ", \"num_attention_heads\": " + std::to_string(d.heads) +
                    ", \"num_key_value_heads\": " + std::to_string(d.kv_heads) + ", \"head_dim\": " +
                    std::to_string(d.head_dim) +
                    ", \"max_position_embeddings\": 131072, \"rms_norm_eps\": 1e-05, \"rope_theta\": 500000.0, "
                    "\"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8.0, \"low_freq_factor\": 1.0, "
                    "\"high_freq_factor\": 4.0, \"original_max_position_embeddings\": 8192}, "
                    "\"hidden_act\": \"silu\", \"tie_word_embeddings\": false, \"bos_token_id\": " + std::to_string(bos) +
                    ", \"eos_token_id\": " + std::to_string(eos) + ", \"torch_dtype\": \"bfloat16\", \"quantization_config\": "
                    "{\"quant_method\": \"modelopt\", \"quant_algo\": \"" + algo + "\", \"ignore\": [\"lm_head\"], "
                    "\"config_groups\": {\"group_0\": {\"weights\": {\"dynamic\": false, \"num_bits\": " + bits +
                    ", \"type\": \"float\"" + group + "}, \"input_activations\": {\"dynamic\": false, \"num_bits\": " +
                    bits + ", \"type\": \"float\"" + group + "}, \"targets\": [\"Linear\"]}}}}";
    c.tokenizer_vocab = bos;
    c.special_tokens = {{bos, "<|begin_of_text|>"}, {eos, "<|eot_id|>"}};
    return c;
}

struct Hybrid {  // Qwen3.5 / 3.6 MoE with Gated DeltaNet
    int64_t vocab, hidden, layers, heads, kv_heads, head_dim, lk_heads, lv_heads, lhead, experts, top_k, moe_inter,
        shared_inter;
};

Checkpoint qwen36_mixed(const Hybrid& d) {
    Checkpoint c;
    auto& ts = c.tensors;
    std::vector<std::string> layers_json, types;
    auto entry = [&](const std::string& m, bool nvfp4) {
        layers_json.push_back(q(m) + (nvfp4 ? R"(: {"quant_algo": "W4A16_NVFP4", "group_size": 16})"
                                            : R"(: {"quant_algo": "FP8"})"));
    };
    const std::string lm = "model.language_model.";
    bf16_weight(ts, lm + "embed_tokens.weight", {d.vocab, d.hidden});
    for (int64_t l = 0; l < d.layers; ++l) {
        const std::string p = lm + "layers." + std::to_string(l) + ".";
        const bool full = l % 4 == 3;
        types.push_back(full ? "\"full_attention\"" : "\"linear_attention\"");
        bf16_norm(ts, p + "input_layernorm.weight", d.hidden);
        bf16_norm(ts, p + "post_attention_layernorm.weight", d.hidden);
        if (full) {
            const std::string a = p + "self_attn.";
            modelopt_fp8(ts, a + "q_proj", 2 * d.heads * d.head_dim, d.hidden);  // q | gate per head
            modelopt_fp8(ts, a + "k_proj", d.kv_heads * d.head_dim, d.hidden);
            modelopt_fp8(ts, a + "v_proj", d.kv_heads * d.head_dim, d.hidden);
            modelopt_fp8(ts, a + "o_proj", d.hidden, d.heads * d.head_dim);
            bf16_norm(ts, a + "q_norm.weight", d.head_dim);
            bf16_norm(ts, a + "k_norm.weight", d.head_dim);
            for (const char* m : {"q_proj", "k_proj", "v_proj", "o_proj"}) entry(a + m, false);
        } else {
            const std::string a = p + "linear_attn.";
            const int64_t qkv = 2 * d.lk_heads * d.lhead + d.lv_heads * d.lhead, v = d.lv_heads * d.lhead;
            modelopt_fp8(ts, a + "in_proj_qkv", qkv, d.hidden);
            modelopt_fp8(ts, a + "in_proj_z", v, d.hidden);
            bf16_weight(ts, a + "in_proj_a.weight", {d.lv_heads, d.hidden});
            bf16_weight(ts, a + "in_proj_b.weight", {d.lv_heads, d.hidden});
            bf16_weight(ts, a + "conv1d.weight", {qkv, 1, 4});
            ts.push_back({a + "A_log", "F32", {d.lv_heads}, Fill::F32Uniform, 2.7f});
            bf16_norm(ts, a + "dt_bias", d.lv_heads);
            bf16_norm(ts, a + "norm.weight", d.lhead);
            modelopt_fp8(ts, a + "out_proj", d.hidden, v);
            for (const char* m : {"in_proj_qkv", "in_proj_z", "out_proj"}) entry(a + m, false);
        }
        const std::string m = p + "mlp.";
        bf16_weight(ts, m + "gate.weight", {d.experts, d.hidden});
        bf16_weight(ts, m + "shared_expert_gate.weight", {1, d.hidden});
        for (int64_t e = 0; e < d.experts; ++e) {
            const std::string x = m + "experts." + std::to_string(e) + ".";
            modelopt_nvfp4(ts, x + "gate_proj", d.moe_inter, d.hidden);
            modelopt_nvfp4(ts, x + "up_proj", d.moe_inter, d.hidden);
            modelopt_nvfp4(ts, x + "down_proj", d.hidden, d.moe_inter);
        }
        entry(m + "experts", true);
        modelopt_nvfp4(ts, m + "shared_expert.gate_proj", d.shared_inter, d.hidden);
        modelopt_nvfp4(ts, m + "shared_expert.up_proj", d.shared_inter, d.hidden);
        modelopt_nvfp4(ts, m + "shared_expert.down_proj", d.hidden, d.shared_inter);
        for (const char* s : {"gate_proj", "up_proj", "down_proj"}) entry(m + "shared_expert." + s, true);
    }
    bf16_norm(ts, lm + "norm.weight", d.hidden);
    modelopt_nvfp4(ts, "lm_head", d.vocab, d.hidden);
    entry("lm_head", true);
    const std::string exclude =
        R"(["*mlp.gate", "*shared_expert_gate*", "*linear_attn.conv1d*", "*linear_attn.in_proj_a*", )"
        R"("*linear_attn.in_proj_b*", "*visual*", "mtp*"])";
    const std::string quant = "{\"quant_algo\": \"MIXED_PRECISION\", \"kv_cache_quant_algo\": \"FP8\", "
                              "\"exclude_modules\": " + exclude + ", \"quantized_layers\": {" + join(layers_json) + "}}";
    c.hf_quant_json = R"({"producer": {"name": "modelopt", "version": "0.44.0"}, "quantization": )" + quant + "}";
    const std::string S = std::to_string(d.vocab);
    c.config_json =
        "{\"architectures\": [\"Qwen3_5MoeForConditionalGeneration\"], \"model_type\": \"qwen3_5_moe\", "
        "\"tie_word_embeddings\": false, \"text_config\": {\"model_type\": \"qwen3_5_moe_text\", \"vocab_size\": " + S +
        ", \"hidden_size\": " + std::to_string(d.hidden) + ", \"num_hidden_layers\": " + std::to_string(d.layers) +
        ", \"layer_types\": [" + join(types) + "], \"full_attention_interval\": 4, \"num_attention_heads\": " +
        std::to_string(d.heads) + ", \"num_key_value_heads\": " + std::to_string(d.kv_heads) + ", \"head_dim\": " +
        std::to_string(d.head_dim) + ", \"attn_output_gate\": true, \"attention_bias\": false, "
        "\"linear_num_key_heads\": " + std::to_string(d.lk_heads) + ", \"linear_num_value_heads\": " +
        std::to_string(d.lv_heads) + ", \"linear_key_head_dim\": " + std::to_string(d.lhead) +
        ", \"linear_value_head_dim\": " + std::to_string(d.lhead) + ", \"linear_conv_kernel_dim\": 4, "
        "\"mamba_ssm_dtype\": \"float32\", \"num_experts\": " + std::to_string(d.experts) +
        ", \"num_experts_per_tok\": " + std::to_string(d.top_k) + ", \"moe_intermediate_size\": " +
        std::to_string(d.moe_inter) + ", \"shared_expert_intermediate_size\": " + std::to_string(d.shared_inter) +
        ", \"router_aux_loss_coef\": 0.001, \"rms_norm_eps\": 1e-06, \"hidden_act\": \"silu\", "
        "\"max_position_embeddings\": 262144, \"partial_rotary_factor\": 0.25, \"rope_parameters\": {\"rope_type\": "
        "\"default\", \"rope_theta\": 10000000, \"partial_rotary_factor\": 0.25, \"mrope_interleaved\": true, "
        "\"mrope_section\": [11, 11, 10]}, \"mtp_num_hidden_layers\": 1, \"mtp_use_dedicated_embeddings\": false, "
        "\"tie_word_embeddings\": false, \"bos_token_id\": " + std::to_string(d.vocab - 276) + ", \"eos_token_id\": " +
        std::to_string(d.vocab - 274) + "}, \"vision_config\": {\"model_type\": \"qwen3_5_moe_vision\", \"depth\": 27, "
        "\"hidden_size\": 1152}, \"quantization_config\": {\"quant_method\": \"modelopt\", \"quant_algo\": "
        "\"MIXED_PRECISION\", \"quantized_layers\": {" + join(layers_json) + "}, \"ignore\": " + exclude + "}}";
    c.tokenizer_vocab = d.vocab - 280;
    c.special_tokens = {{d.vocab - 276, "<|endoftext|>"}, {d.vocab - 275, "<|im_start|>"}, {d.vocab - 274, "<|im_end|>"}};
    return c;
}

struct Moe {
    int64_t vocab, hidden, layers, heads, kv_heads, head_dim, experts, top_k, moe_inter;
};

Checkpoint qwen3moe_ct(const Moe& d) {
    Checkpoint c;
    auto& ts = c.tensors;
    bf16_weight(ts, "model.embed_tokens.weight", {d.vocab, d.hidden});
    for (int64_t l = 0; l < d.layers; ++l) {
        const std::string p = "model.layers." + std::to_string(l) + ".";
        bf16_norm(ts, p + "input_layernorm.weight", d.hidden);
        bf16_norm(ts, p + "post_attention_layernorm.weight", d.hidden);
        ct_nvfp4(ts, p + "self_attn.q_proj", d.heads * d.head_dim, d.hidden);
        ct_nvfp4(ts, p + "self_attn.k_proj", d.kv_heads * d.head_dim, d.hidden);
        ct_nvfp4(ts, p + "self_attn.v_proj", d.kv_heads * d.head_dim, d.hidden);
        ct_nvfp4(ts, p + "self_attn.o_proj", d.hidden, d.heads * d.head_dim);
        bf16_norm(ts, p + "self_attn.q_norm.weight", d.head_dim);
        bf16_norm(ts, p + "self_attn.k_norm.weight", d.head_dim);
        bf16_weight(ts, p + "mlp.gate.weight", {d.experts, d.hidden});
        for (int64_t e = 0; e < d.experts; ++e) {
            const std::string x = p + "mlp.experts." + std::to_string(e) + ".";
            ct_nvfp4(ts, x + "gate_proj", d.moe_inter, d.hidden);
            ct_nvfp4(ts, x + "up_proj", d.moe_inter, d.hidden);
            ct_nvfp4(ts, x + "down_proj", d.hidden, d.moe_inter);
        }
    }
    bf16_norm(ts, "model.norm.weight", d.hidden);
    bf16_weight(ts, "lm_head.weight", {d.vocab, d.hidden});
    const std::string args = R"({"num_bits": 4, "type": "float", "strategy": "tensor_group", "group_size": 16, )"
                             R"("symmetric": true, "dynamic": false, "scale_dtype": "torch.float8_e4m3fn"})";
    const std::string act = R"({"num_bits": 4, "type": "float", "strategy": "tensor_group", "group_size": 16, )"
                            R"("symmetric": true, "dynamic": "local"})";
    c.config_json =
        "{\"architectures\": [\"Qwen3MoeForCausalLM\"], \"model_type\": \"qwen3_moe\", \"vocab_size\": " +
        std::to_string(d.vocab) + ", \"hidden_size\": " + std::to_string(d.hidden) + ", \"num_hidden_layers\": " +
        std::to_string(d.layers) + ", \"num_attention_heads\": " + std::to_string(d.heads) +
        ", \"num_key_value_heads\": " + std::to_string(d.kv_heads) + ", \"head_dim\": " + std::to_string(d.head_dim) +
        ", \"num_experts\": " + std::to_string(d.experts) + ", \"num_experts_per_tok\": " + std::to_string(d.top_k) +
        ", \"moe_intermediate_size\": " + std::to_string(d.moe_inter) + ", \"intermediate_size\": " +
        std::to_string(d.moe_inter * 8) + ", \"decoder_sparse_step\": 1, \"mlp_only_layers\": [], "
        "\"norm_topk_prob\": true, \"rms_norm_eps\": 1e-06, \"rope_theta\": 1000000.0, \"hidden_act\": \"silu\", "
        "\"max_position_embeddings\": 40960, \"tie_word_embeddings\": false, \"bos_token_id\": " +
        std::to_string(d.vocab - 293) + ", \"eos_token_id\": " + std::to_string(d.vocab - 291) +
        ", \"torch_dtype\": \"bfloat16\", \"quantization_config\": {\"quant_method\": \"compressed-tensors\", "
        "\"format\": \"nvfp4-pack-quantized\", \"quantization_status\": \"compressed\", \"config_groups\": "
        "{\"group_0\": {\"targets\": [\"Linear\"], \"weights\": " + args + ", \"input_activations\": " + act +
        ", \"format\": \"nvfp4-pack-quantized\"}}, \"ignore\": [\"lm_head\", \"re:.*mlp.gate$\"]}}";
    c.tokenizer_vocab = d.vocab - 300;
    c.special_tokens = {{d.vocab - 293, "<|endoftext|>"}, {d.vocab - 292, "<|im_start|>"}, {d.vocab - 291, "<|im_end|>"}};
    return c;
}

}  // namespace

std::vector<std::string> shape_names() {
    return {"llama3.1-8b-nvfp4", "llama3.1-8b-fp8", "qwen3.6-35b-a3b-nvfp4", "qwen3-30b-a3b-nvfp4-ct",
            "tiny-llama-nvfp4",  "tiny-llama-fp8",  "tiny-qwen3.6-nvfp4",    "tiny-qwen3-moe-nvfp4-ct"};
}

Checkpoint make_checkpoint(const std::string& s) {
    const Dense l8b{128256, 4096, 14336, 32, 32, 8, 128}, tiny{1024, 64, 128, 2, 4, 2, 16};
    if (s == "llama3.1-8b-nvfp4") return llama_modelopt(l8b, false);
    if (s == "llama3.1-8b-fp8") return llama_modelopt(l8b, true);
    if (s == "tiny-llama-nvfp4") return llama_modelopt(tiny, false);
    if (s == "tiny-llama-fp8") return llama_modelopt(tiny, true);
    if (s == "qwen3.6-35b-a3b-nvfp4") return qwen36_mixed({248320, 2048, 40, 16, 2, 256, 16, 32, 128, 256, 8, 512, 512});
    // linear-attention heads of 128 (the real size): the CUDA Gated-DeltaNet kernels are built for it
    if (s == "tiny-qwen3.6-nvfp4") return qwen36_mixed({1024, 64, 4, 2, 1, 32, 2, 4, 128, 8, 2, 32, 32});
    if (s == "qwen3-30b-a3b-nvfp4-ct") return qwen3moe_ct({151936, 2048, 48, 32, 4, 128, 128, 8, 768});
    if (s == "tiny-qwen3-moe-nvfp4-ct") return qwen3moe_ct({1024, 64, 2, 4, 2, 16, 8, 2, 32});
    std::string all;
    for (const auto& n : shape_names()) all += (all.empty() ? "" : ", ") + n;
    throw std::runtime_error("unknown shape '" + s + "' (shapes: " + all + ")");
}

}  // namespace synth_st
