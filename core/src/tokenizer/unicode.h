// UTF-8 coding, Unicode category flags (generated tables) and the GPT-2 byte <-> code point mapping.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "imp/export.h"

namespace imp::unicode {

// Category flags of a code point (see tests/tools/gen_unicode_tables.py).
enum : uint8_t {
    kLetter = 1,       // \p{L}
    kNumber = 2,       // \p{N}
    kMark = 4,         // \p{M}
    kPunct = 8,        // \p{P}
    kWhitespace = 16,  // \s (Unicode White_Space)
};

extern const char* const kUnicodeVersion;
extern const uint32_t kRangeCount;
extern const uint32_t kRanges[];

IMP_API uint8_t flags(uint32_t cp);  // 0 for code points beyond U+10FFFF

constexpr uint32_t kReplacement = 0xFFFD;

// Decodes the code point starting at s[i]. Sets *len to its byte length (1..4). A malformed or truncated sequence,
// an overlong form, a surrogate or a value above U+10FFFF decodes as U+FFFD with *len = 1 (one bad byte).
IMP_API uint32_t decode_utf8(std::string_view s, size_t i, int* len);
IMP_API void append_utf8(std::string& out, uint32_t cp);

// `s` with each maximal ill-formed subsequence (a bad byte, or the valid start of a truncated sequence) replaced by
// one U+FFFD, as Python's and Rust's lossy UTF-8 decoders do.
IMP_API std::string valid_utf8(std::string_view s);

// Length of the longest prefix of `s` that does not end inside an incomplete (but so far valid) UTF-8 sequence.
IMP_API size_t complete_utf8_prefix(std::string_view s);

// GPT-2 byte-level mapping: each byte value maps to a printable code point; the inverse is -1 for others.
IMP_API uint32_t byte_to_cp(uint8_t b);
IMP_API int cp_to_byte(uint32_t cp);

}  // namespace imp::unicode
