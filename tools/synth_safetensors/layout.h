// synth-safetensors: the tensors and side files of one synthetic checkpoint (real names, shapes, dtypes and
// quantization layout of a public model; values drawn at write time by fill.h).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace synth_st {

// How a tensor's bytes are drawn.
enum class Fill {
    Bf16Uniform,  // BF16 uniform in [-a, a]
    Bf16Near,     // BF16 uniform in [a * 0.9, a * 1.1] (norm weights)
    F32Uniform,   // F32 uniform in [0, a]
    F32Const,     // F32, every value a
    Fp4Codes,     // U8, two random E2M1 codes per byte
    E4m3Scales,   // F8_E4M3 block scales in [0.5, 1]
    Fp8Codes,     // F8_E4M3 values of magnitude in [2^-3, 1.875], random sign
};

struct Tensor {
    std::string name, dtype;  // safetensors dtype: BF16, F32, U8, F8_E4M3
    std::vector<int64_t> shape;
    Fill fill = Fill::Bf16Uniform;
    float a = 0.f;
    uint64_t bytes() const;
};

struct Checkpoint {
    std::vector<Tensor> tensors;
    std::string config_json;        // config.json
    std::string hf_quant_json;      // hf_quant_config.json ("" when none)
    int64_t tokenizer_vocab = 0;    // tokenizer.json covers ids [0, tokenizer_vocab)
    std::vector<std::pair<int64_t, std::string>> special_tokens;  // id, content
};

// The shapes: llama3.1-8b-nvfp4, qwen3.6-35b-a3b-nvfp4, qwen3-30b-a3b-nvfp4-ct and their tiny-* twins.
std::vector<std::string> shape_names();
// Throws std::runtime_error for an unknown name.
Checkpoint make_checkpoint(const std::string& shape);

}  // namespace synth_st
