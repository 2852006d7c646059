// synth-safetensors: a synthetic byte-level BPE tokenizer.json (GPT-2 byte alphabet, merges that build lower-case
// words letter by letter, the checkpoint's special tokens at their ids), loadable by HF tokenizers and imp.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace synth_st {

// vocab >= 256 regular tokens (256 bytes + merges), then the special tokens with their own ids.
std::string tokenizer_json(int64_t vocab, const std::vector<std::pair<int64_t, std::string>>& special);

}  // namespace synth_st
