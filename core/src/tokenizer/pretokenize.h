// Pre-tokenizers: split text into the pieces that BPE encodes one by one. Each kind implements the regexes of one
// `tokenizer.ggml.pre` family by hand, over Unicode code points (see FORMATS.md 2.6 for the regexes).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "imp/export.h"

namespace imp::pretok {

enum class Kind {
    Default,  // missing or "default": [\p{P}$+<=>^~|]+, then GPT-2, then \p{N}+, then [0-9]{3}
    Llama3,   // llama3 / llama-bpe ...: Llama-3 regex (digits in runs of up to 3)
    Qwen2,    // qwen2 / deepseek-r1-qwen ...: Llama-3 regex with single digits
    Qwen35,   // qwen35: as Qwen2, letters include \p{M}
    Smollm,   // smollm / starcoder ...: \p{N} (each digit alone), then GPT-2
    Gpt2,     // gpt-2 ...: the GPT-2 regex
};

struct Info {
    Kind kind = Kind::Default;
    bool ignore_merges = false;  // a whole piece found in the vocab is emitted as one token
    bool add_bos = false;        // default for tokenizer.ggml.add_bos_token
};

// Maps a tokenizer.ggml.pre value ("" = missing) to its kind; throws imp::Error naming an unknown one.
IMP_API Info lookup(const std::string& name, const std::string& source);
IMP_API const char* kind_name(Kind kind);

struct Piece {
    uint32_t begin, end;  // byte offsets into the text
};

// Appends the pieces of `text` to `out`. The pieces are non-empty and cover `text` in order. Malformed UTF-8
// bytes count as U+FFFD (a symbol), one byte each, so every input byte lands in exactly one piece.
IMP_API void split(Kind kind, std::string_view text, std::vector<Piece>& out);

}  // namespace imp::pretok
