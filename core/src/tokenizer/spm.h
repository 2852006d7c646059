// SentencePiece BPE (GGUF tokenizer.ggml.model = "llama"): adjacent symbols merge when their concatenation is in the
// vocab, highest score first (leftmost on ties), as llama.cpp's SPM tokenizer and sentencepiece do. A character
// outside the vocab becomes its <0xXX> byte tokens, else the unknown token.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace imp {

class Spm {
public:
    Spm(const std::vector<std::string>& tokens, const std::vector<float>& scores, int32_t unk_id);
    // Encodes text already in the vocab's form (spaces as U+2581) and appends its ids.
    void encode(std::string_view text, std::vector<int32_t>& out) const;

private:
    int32_t find(std::string_view s) const;
    std::unordered_map<std::string_view, int32_t> ids_;  // views into tokens_
    std::vector<std::string> tokens_;
    std::vector<float> scores_;
    std::array<int32_t, 256> byte_id_{};
    int32_t unk_ = -1;
};

}  // namespace imp
