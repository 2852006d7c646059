// Pre-tokenizer, Unicode table and UTF-8 helper tests. Expected splits were checked against the Hugging Face
// `tokenizers` Split/ByteLevel pre-tokenizers with the same regexes.
#include <catch2/catch.hpp>

#include "imp/error.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/unicode.h"

using imp::pretok::Kind;
using V = std::vector<std::string>;

namespace {

V pieces(Kind kind, const std::string& text) {
    std::vector<imp::pretok::Piece> ps;
    imp::pretok::split(kind, text, ps);
    V out;
    for (const auto& p : ps) out.push_back(text.substr(p.begin, p.end - p.begin));
    return out;
}

}  // namespace

TEST_CASE("tokenizer: GPT-2 pre-tokenizer", "[tokenizer][pretok]") {
    CHECK(pieces(Kind::Gpt2, "I'M 12345 x  \n\n  y!!\n\n") ==
          V{"I", "'", "M", " 12345", " x", "  \n\n ", " y", "!!", "\n\n"});
    CHECK(pieces(Kind::Gpt2, "a\tb  c\u3000d") == V{"a", "\t", "b", " ", " c", "\u3000", "d"});
    CHECK(pieces(Kind::Gpt2, "it's we'll they've") == V{"it", "'s", " we", "'ll", " they", "'ve"});
    CHECK(pieces(Kind::Gpt2, "caf\u00e9 e\u0301x") == V{"caf\u00e9", " e", "\u0301", "x"});
    CHECK(pieces(Kind::Gpt2, "end   ") == V{"end", "   "});
    CHECK(pieces(Kind::Gpt2, "").empty());
}

TEST_CASE("tokenizer: Llama-3 pre-tokenizer", "[tokenizer][pretok]") {
    CHECK(pieces(Kind::Llama3, " \n\n  foo\n \n x") == V{" \n\n", " ", " foo", "\n \n", " x"});
    CHECK(pieces(Kind::Llama3, "12345 (hello") == V{"123", "45", " (", "hello"});
    CHECK(pieces(Kind::Llama3, "a\u3000\u3000b") == V{"a", "\u3000", "\u3000b"});
    CHECK(pieces(Kind::Llama3, "a\x1c\x1c" "b") == V{"a", "\x1c\x1c", "b"});
    CHECK(pieces(Kind::Llama3, "it\u2019s 'S I'M DON'T") == V{"it", "\u2019s", " '", "S", " I", "'M", " DON", "'T"});
    CHECK(pieces(Kind::Llama3, "x!!\n\ny") == V{"x", "!!\n\n", "y"});
    CHECK(pieces(Kind::Llama3, "\tb") == V{"\tb"});
}

TEST_CASE("tokenizer: Qwen2 and Qwen3.5 pre-tokenizers", "[tokenizer][pretok]") {
    const std::string s = "caf\u00e9 e\u0301x \u0301\u0301" "a";
    CHECK(pieces(Kind::Qwen2, s) == V{"caf\u00e9", " e", "\u0301x", " \u0301\u0301", "a"});
    CHECK(pieces(Kind::Qwen35, s) == V{"caf\u00e9", " e\u0301x", " \u0301\u0301" "a"});
    CHECK(pieces(Kind::Qwen2, "I'M 12345 x  \n\n  y!!\n\n") ==
          V{"I", "'M", " ", "1", "2", "3", "4", "5", " x", "  \n\n", " ", " y", "!!\n\n"});
    CHECK(pieces(Kind::Qwen35, "a\tb  c\u3000d") == V{"a", "\tb", " ", " c", "\u3000d"});
}

TEST_CASE("tokenizer: SmolLM and default pre-tokenizers", "[tokenizer][pretok]") {
    CHECK(pieces(Kind::Smollm, "x 123ab 4") == V{"x", " ", "1", "2", "3", "ab", " ", "4"});
    CHECK(pieces(Kind::Default, "Hello, world! 12345") == V{"Hello", ",", " world", "!", " ", "123", "45"});
    CHECK(pieces(Kind::Default, "a+=b") == V{"a", "+=", "b"});
}

TEST_CASE("tokenizer: pre-tokenizer names", "[tokenizer][pretok]") {
    CHECK(imp::pretok::lookup("llama-bpe", "m").kind == Kind::Llama3);
    CHECK(imp::pretok::lookup("llama-bpe", "m").ignore_merges);
    CHECK(imp::pretok::lookup("llama3", "m").add_bos);
    CHECK(imp::pretok::lookup("deepseek-r1-qwen", "m").kind == Kind::Qwen2);
    CHECK(imp::pretok::lookup("qwen35", "m").kind == Kind::Qwen35);
    CHECK(imp::pretok::lookup("starcoder", "m").kind == Kind::Smollm);
    CHECK(imp::pretok::lookup("gpt-2", "m").kind == Kind::Gpt2);
    CHECK(imp::pretok::lookup("", "m").kind == Kind::Default);
    CHECK_FALSE(imp::pretok::lookup("qwen2", "m").add_bos);
    CHECK_THROWS_WITH(imp::pretok::lookup("nope", "m.gguf"), Catch::Contains("'nope'") && Catch::Contains("m.gguf"));
}

TEST_CASE("tokenizer: pieces cover malformed UTF-8 byte for byte", "[tokenizer][pretok]") {
    const std::string s = "ab\xff\xfe  \xe4\xbd x\xc3";
    for (Kind k : {Kind::Default, Kind::Llama3, Kind::Qwen2, Kind::Qwen35, Kind::Smollm, Kind::Gpt2}) {
        std::string joined;
        for (const auto& p : pieces(k, s)) {
            CHECK_FALSE(p.empty());
            joined += p;
        }
        CHECK(joined == s);
    }
}

TEST_CASE("tokenizer: Unicode category flags", "[tokenizer][unicode]") {
    using namespace imp::unicode;
    CHECK(flags('a') == kLetter);
    CHECK(flags('5') == kNumber);
    CHECK(flags(',') == kPunct);
    CHECK(flags('$') == 0);
    CHECK(flags(' ') == kWhitespace);
    CHECK(flags(0x85) == kWhitespace);
    CHECK(flags(0xA0) == kWhitespace);
    CHECK(flags(0x1C) == 0);
    CHECK(flags(0x301) == kMark);
    CHECK(flags(0x3000) == kWhitespace);
    CHECK(flags(0x2028) == kWhitespace);
    CHECK(flags(0x4E2D) == kLetter);    // 中
    CHECK(flags(0xD55C) == kLetter);    // 한
    CHECK(flags(0x00BD) == kNumber);    // ½
    CHECK(flags(0x0967) == kNumber);    // Devanagari one
    CHECK(flags(0x1F600) == 0);         // emoji (So)
    CHECK(flags(0x10FFFF) == 0);
    CHECK(flags(0x110000) == 0);
    CHECK(flags(0xE0100) == kMark);     // variation selector 17
}

TEST_CASE("tokenizer: UTF-8 decoding and the complete prefix", "[tokenizer][unicode]") {
    using namespace imp::unicode;
    int len = 0;
    CHECK(decode_utf8("\xF0\x9F\x98\x80", 0, &len) == 0x1F600);
    CHECK(len == 4);
    CHECK(decode_utf8("\xC0\x80", 0, &len) == kReplacement);  // overlong
    CHECK(len == 1);
    CHECK(decode_utf8("\xED\xA0\x80", 0, &len) == kReplacement);  // surrogate
    CHECK(decode_utf8("\xF4\x90\x80\x80", 0, &len) == kReplacement);  // above U+10FFFF
    CHECK(decode_utf8("\xE4\xBD", 0, &len) == kReplacement);  // truncated
    CHECK(len == 1);
    CHECK(complete_utf8_prefix("ab\xE4\xBD") == 2);
    CHECK(complete_utf8_prefix("ab\xE4\xBD\xA0") == 5);
    CHECK(complete_utf8_prefix("ab\xE0") == 2);             // E0 needs A0..BF next: still possible
    CHECK(complete_utf8_prefix("ab\xE0\x80") == 4);         // overlong: can never complete
    CHECK(complete_utf8_prefix("\xF0\x9F\x98") == 0);
    CHECK(complete_utf8_prefix("\x80\x80") == 2);
    CHECK(complete_utf8_prefix("\xFF") == 1);
    std::string s;
    append_utf8(s, 0x1F600);
    append_utf8(s, 0xE9);
    CHECK(s == "\xF0\x9F\x98\x80\xC3\xA9");
    CHECK(byte_to_cp(' ') == 0x120);  // Ġ
    CHECK(byte_to_cp('\n') == 0x10A);  // Ċ
    CHECK(byte_to_cp('a') == 'a');
    for (int b = 0; b < 256; ++b) CHECK(cp_to_byte(byte_to_cp(uint8_t(b))) == b);
}
