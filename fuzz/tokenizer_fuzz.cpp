// Fuzz target: the SmolLM2 tokenizer (tests/fixtures/tokenizer/smollm2.gguf, the vocabulary of the default model) on
// arbitrary bytes: encode with and without special tokens, decode of the ids (must give valid UTF-8), decode of the
// input read as token ids (ids outside the vocabulary give no text), and the streaming decoder.
#include <array>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "imp/error.h"
#include "model/display_text.h"
#include "smollm2.h"
#include "tokenizer/tokenizer.h"

namespace {
using imp::fuzz::smollm2;
// Bytes with no token whose text is that byte (SmolLM2's vocabulary lacks the byte-level characters of a few, e.g.
// 0x04 and 0xf1): encode drops them, as HF tokenizers and llama.cpp do.
const std::array<bool, 256>& dropped_bytes() {
    static const std::array<bool, 256> d = [] {
        std::array<bool, 256> r{};
        for (int b = 0; b < 256; ++b) r[size_t(b)] = smollm2().find_token(std::string(1, char(b))) < 0;
        return r;
    }();
    return d;
}
void require_utf8(const std::string& s) {
    if (imp::utf8_valid_prefix(s) != s.size()) __builtin_trap();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const imp::Tokenizer& tok = smollm2();
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    for (bool special : {false, true}) {
        const std::vector<int32_t> ids = tok.encode(text, special, special);  // BOS with the specials
        for (int32_t id : ids)
            if (id < 0 || id >= tok.n_vocab()) __builtin_trap();
        require_utf8(tok.decode(ids));
        // Without special tokens, byte-level BPE is lossless on valid UTF-8 text, but for bytes the vocab lacks.
        if (!special && imp::utf8_valid_prefix(text) == text.size()) {
            std::string back, kept;
            for (int32_t id : ids) back += tok.token_text(id);
            for (char c : text)
                if (!dropped_bytes()[static_cast<unsigned char>(c)]) kept += c;
            if (back != kept) __builtin_trap();
        }
    }
    std::vector<int32_t> raw(size / 4);
    if (!raw.empty()) std::memcpy(raw.data(), data, raw.size() * 4);
    require_utf8(tok.decode(raw));
    imp::StreamDecoder dec(tok);
    std::string streamed;
    for (int32_t id : raw) {
        try {
            streamed += dec.push(id);
        } catch (const imp::Error&) {  // an id outside the vocabulary
        }
    }
    streamed += dec.flush();
    require_utf8(streamed);
    return 0;
}
