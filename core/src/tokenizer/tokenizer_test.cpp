// Tokenizer tests against reference ids from the Hugging Face `tokenizers` package (tests/fixtures/tokenizer/,
// written by tests/tools/make_tokenizer_fixtures.py), plus decoding, streaming, special tokens and errors.
#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>
#include <memory>

#include "imp/error.h"
#include "imp/model.h"
#include "tokenizer/test_fixtures.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

using imp::Tokenizer;

namespace {

const Tokenizer& fixture_tokenizer(const std::string& name) {
    static std::map<std::string, std::unique_ptr<Tokenizer>> cache;
    auto& t = cache[name];
    if (!t) t = Tokenizer::from_metadata(imp::test::load_fixture_metadata(name + ".gguf"));
    return *t;
}

bool valid_utf8(const std::string& s) {
    for (size_t i = 0; i < s.size();) {
        int len = 1;
        if (imp::unicode::decode_utf8(s, i, &len) == imp::unicode::kReplacement && s.compare(i, 3, "\xEF\xBF\xBD"))
            return false;
        i += size_t(len);
    }
    return true;
}

void check_reference(const std::string& name) {
    const Tokenizer& tok = fixture_tokenizer(name);
    const imp::test::Json ref = imp::test::load_fixture_json(name + ".json");
    REQUIRE(ref["cases"].arr.size() > 40);
    for (const auto& c : ref["cases"].arr) {
        const std::string& text = c["text"].s;
        INFO(name << " text: \"" << text << "\"");
        const std::vector<int32_t> ids = c["ids"].ints(), plain = c["ids_plain"].ints();
        CHECK(tok.encode(text, false, true) == ids);
        CHECK(tok.encode(text, false, false) == plain);
        CHECK(tok.decode(ids) == text);
        CHECK(tok.decode(plain) == text);
        imp::StreamDecoder sd(tok);
        std::string streamed;
        for (int32_t id : ids) {
            const std::string chunk = sd.push(id);
            CHECK(valid_utf8(chunk));
            streamed += chunk;
        }
        streamed += sd.flush();
        CHECK(streamed == text);
    }
}

imp::Metadata with_key(imp::Metadata md, const std::string& key, imp::MetaValue v) {
    md.set(key, std::move(v));
    return md;
}

}  // namespace

TEST_CASE("tokenizer: SmolLM2 vocab matches HF tokenizers ids", "[tokenizer]") { check_reference("smollm2"); }

TEST_CASE("tokenizer: Llama-3-style vocab matches HF tokenizers ids", "[tokenizer]") { check_reference("llama3"); }

TEST_CASE("tokenizer: Qwen2-style vocab matches HF tokenizers ids", "[tokenizer]") { check_reference("qwen2"); }

TEST_CASE("tokenizer: every pre-tokenizer family matches HF tokenizers on random text", "[tokenizer]") {
    const imp::test::Json ref = imp::test::load_fixture_json("pretokenizers.json");
    const imp::Metadata md = imp::test::load_fixture_metadata("qwen2.gguf");
    REQUIRE(ref.obj.size() == 6);
    for (const auto& [pre, cases] : ref.obj) {
        const auto tok = Tokenizer::from_metadata(with_key(md, "tokenizer.ggml.pre", {pre, "str"}));
        REQUIRE(cases.arr.size() >= 100);
        for (const auto& c : cases.arr) {
            INFO(pre << " text: \"" << c["text"].s << "\"");
            CHECK(tok->encode(c["text"].s, false, true) == c["ids"].ints());
        }
    }
}

TEST_CASE("tokenizer: SmolLM2 tokenizer properties", "[tokenizer]") {
    const Tokenizer& tok = fixture_tokenizer("smollm2");
    CHECK(tok.n_vocab() == 49152);
    CHECK(tok.bos() == 1);
    CHECK(tok.eos() == 2);
    CHECK_FALSE(tok.add_bos());
    CHECK(tok.pre_kind() == imp::pretok::Kind::Smollm);
    CHECK(tok.is_eog(2));  // <|im_end|>
    CHECK(tok.is_eog(0));  // <|endoftext|>
    CHECK_FALSE(tok.is_eog(1));
    CHECK_FALSE(tok.is_eog(100));
    CHECK(tok.token_text(1) == "<|im_start|>");
    CHECK(tok.token_text(tok.encode(" the", false, false).at(0)) == " the");
    CHECK(tok.encode("hi", true, false).front() == 1);
    CHECK_THROWS_AS(tok.token_text(49152), imp::Error);
    CHECK_THROWS_AS(tok.token_text(-1), imp::Error);
    CHECK(tok.decode({19556, 49152, 70000}) == "Hello");  // ids past the vocab (padded embeddings) have no text
    imp::StreamDecoder sd(tok);
    CHECK(sd.push(49152).empty());
}

TEST_CASE("tokenizer: Llama-3 vocab: BOS, end-of-turn ids, ignore_merges", "[tokenizer]") {
    const Tokenizer& tok = fixture_tokenizer("llama3");
    CHECK(tok.add_bos());
    CHECK(tok.pre_kind() == imp::pretok::Kind::Llama3);
    const int32_t eot = tok.find_token("<|eot_id|>"), eom = tok.find_token("<|eom_id|>");
    REQUIRE(eot >= 0);
    CHECK(tok.is_eog(eot));
    CHECK(tok.is_eog(eom));
    CHECK(tok.is_eog(tok.eos()));
    CHECK_FALSE(tok.is_eog(tok.bos()));
    const auto ids = tok.encode("Hello", true, true);
    CHECK(ids.front() == tok.bos());
    // " quokka" is a vocab entry no merge chain produces: only ignore_merges yields it as one token.
    const int32_t quokka = tok.find_token(" quokka");
    REQUIRE(quokka >= 0);
    CHECK(tok.encode(" quokka", false, false) == std::vector<int32_t>{quokka});
}

TEST_CASE("tokenizer: Qwen2 vocab: user-defined tokens split even without parse_special", "[tokenizer]") {
    const Tokenizer& tok = fixture_tokenizer("qwen2");
    const int32_t tc = tok.find_token("<tool_call>"), im_end = tok.find_token("<|im_end|>");
    REQUIRE(tc >= 0);
    REQUIRE(im_end >= 0);
    CHECK(tok.token_type(tc) == Tokenizer::kUserDefined);
    CHECK(tok.encode("<tool_call>", false, false) == std::vector<int32_t>{tc});
    CHECK(tok.encode("<|im_end|>", false, true) == std::vector<int32_t>{im_end});
    CHECK(tok.encode("<|im_end|>", false, false).size() > 1);
    CHECK_FALSE(tok.add_bos());
    CHECK(tok.is_eog(im_end));
    CHECK(tok.is_eog(tok.find_token("<|endoftext|>")));
}

TEST_CASE("tokenizer: invalid UTF-8 input: each bad byte is encoded as U+FFFD", "[tokenizer]") {
    const std::string fffd = "\xEF\xBF\xBD";
    for (const char* name : {"smollm2", "llama3", "qwen2"}) {
        const Tokenizer& tok = fixture_tokenizer(name);
        INFO(name);
        CHECK(tok.decode(tok.encode("\xff\xfe abc \xe4\xbd", false, true)) == fffd + fffd + " abc " + fffd + fffd);
        CHECK(tok.decode(tok.encode("a\xc0\x80z", false, true)) == "a" + fffd + fffd + "z");
        CHECK(tok.encode("a\xc0z", false, true) == tok.encode("a" + fffd + "z", false, true));
        CHECK(tok.decode(tok.encode("\xed\xa0\x80 x \xf4\x90\x80\x80<|im_end|>", false, true)) ==
              fffd + fffd + fffd + " x " + fffd + fffd + fffd + fffd + "<|im_end|>");
        CHECK(tok.decode(tok.encode(std::string("ok\0zero", 7), false, true)) == std::string("ok\0zero", 7));
        CHECK(tok.decode(tok.encode("valid \xEF\xBF\xBD stays", false, true)) == "valid \xEF\xBF\xBD stays");
    }
}

TEST_CASE("tokenizer: StreamDecoder holds back split multi-byte characters", "[tokenizer]") {
    const Tokenizer& tok = fixture_tokenizer("smollm2");
    // Single-byte tokens for the three bytes of U+20AC (E2 82 AC).
    std::vector<int32_t> bytes;
    for (const char* b : {"\xE2", "\x82", "\xAC"}) {
        bytes.push_back(tok.find_token(b));
        REQUIRE(bytes.back() >= 0);
        CHECK(tok.token_text(bytes.back()) == b);
    }
    imp::StreamDecoder sd(tok);
    CHECK(sd.push(bytes[0]).empty());
    CHECK(sd.push(bytes[1]).empty());
    CHECK(sd.push(bytes[2]) == "\xE2\x82\xAC");
    CHECK(sd.flush().empty());
    // An incomplete sequence followed by ASCII can never complete: it becomes U+FFFD; so does one left at flush().
    CHECK(sd.push(bytes[0]).empty());
    CHECK(sd.push(tok.encode("a", false, false)[0]) == "\xEF\xBF\xBD" "a");
    CHECK(sd.push(bytes[0]).empty());
    CHECK(sd.push(bytes[1]).empty());
    CHECK(sd.flush() == "\xEF\xBF\xBD");  // E2 82: one replacement character for the truncated sequence
    CHECK(sd.push(bytes[1]) == "\xEF\xBF\xBD");  // a lone continuation byte
    // Emoji and CJK text: every chunk is whole UTF-8, and the chunks add up to the text.
    const std::string text = "😀👍🏽 你好，世界 🇺🇸 👨‍👩‍👧‍👦 ok";
    imp::StreamDecoder sd2(tok);
    std::string out;
    int held = 0;
    for (int32_t id : tok.encode(text, false, false)) {
        const std::string chunk = sd2.push(id);
        if (chunk.empty()) ++held;
        CHECK(valid_utf8(chunk));
        out += chunk;
    }
    out += sd2.flush();
    CHECK(out == text);
    CHECK(held > 0);  // some token ended inside a character
}

TEST_CASE("tokenizer: special tokens: longest match first, parse_special off encodes them as text", "[tokenizer]") {
    const Tokenizer& tok = fixture_tokenizer("smollm2");
    const auto ids = tok.encode("<|im_start|>user<|im_end|><|endoftext|>", false, true);
    CHECK(ids == std::vector<int32_t>{1, 4093, 2, 0});
    const auto plain = tok.encode("<|im_start|>", false, false);
    CHECK(plain.size() > 1);
    CHECK(std::find(plain.begin(), plain.end(), 1) == plain.end());
    CHECK(tok.encode("<repo_name><reponame>", false, true) == std::vector<int32_t>{3, 4});
}

TEST_CASE("tokenizer: from_metadata rejects unsupported vocabularies with one-line errors", "[tokenizer]") {
    const imp::Metadata md = imp::test::load_fixture_metadata("llama3.gguf");
    CHECK_THROWS_WITH(Tokenizer::from_metadata(with_key(md, "tokenizer.ggml.model", {std::string("bert"), "str"})),
                      Catch::Contains("'bert'"));
    CHECK_THROWS_WITH(Tokenizer::from_metadata(with_key(md, "tokenizer.ggml.pre", {std::string("bogus-pre"), "str"})),
                      Catch::Contains("'bogus-pre'"));
    CHECK_THROWS_WITH(Tokenizer::from_metadata(with_key(md, "tokenizer.ggml.bos_token_id", {uint64_t(999999), "u32"})),
                      Catch::Contains("bos_token_id"));
    imp::Metadata no_merges;
    no_merges.source = "x.gguf";
    for (const auto& [k, v] : md.all())
        if (k != "tokenizer.ggml.merges") no_merges.set(k, v);
    CHECK_THROWS_WITH(Tokenizer::from_metadata(no_merges), Catch::Contains("merges") && Catch::Contains("x.gguf"));
    // A missing pre-tokenizer means the default one, which still tokenizes losslessly.
    imp::Metadata no_pre;
    for (const auto& [k, v] : md.all())
        if (k != "tokenizer.ggml.pre") no_pre.set(k, v);
    const auto tok = Tokenizer::from_metadata(no_pre);
    CHECK(tok->pre_kind() == imp::pretok::Kind::Default);
    CHECK(tok->decode(tok->encode("Hello, world! 12345 <|eot_id|>", false, true)) == "Hello, world! 12345 <|eot_id|>");
}

TEST_CASE("tokenizer: token types outside llama.cpp's 0..6 and merges without a space are refused", "[tokenizer]") {
    imp::Metadata md = imp::test::load_fixture_metadata("smollm2.gguf");
    md.source = "v.gguf";
    auto edited = [&](const char* key, size_t i, imp::MetaValue v) {
        auto a = std::make_shared<imp::MetaArray>(md.get_array(key));
        (*a)[i] = std::move(v);
        return with_key(md, key, {a, md.find(key)->type});
    };
    const std::string types = " is not a token type (0 undefined, 1 normal, 2 unknown, 3 control, 4 user-defined, "
                              "5 unused, 6 byte)";
    CHECK_THROWS_WITH(Tokenizer::from_metadata(edited("tokenizer.ggml.token_type", 300, {int64_t(99), "i32"})),
                      "v.gguf: tokenizer.ggml.token_type[300] = 99" + types);
    CHECK_THROWS_WITH(Tokenizer::from_metadata(edited("tokenizer.ggml.token_type", 7, {int64_t(-1), "i32"})),
                      "v.gguf: tokenizer.ggml.token_type[7] = -1" + types);
    CHECK_THROWS_WITH(Tokenizer::from_metadata(edited("tokenizer.ggml.token_type", 7, {std::string("x"), "str"})),
                      "v.gguf: metadata key 'tokenizer.ggml.token_type' is str, expected an integer");
    CHECK_NOTHROW(Tokenizer::from_metadata(edited("tokenizer.ggml.token_type", 300, {int64_t(0), "i32"})));
    CHECK_THROWS_WITH(Tokenizer::from_metadata(edited("tokenizer.ggml.merges", 2, {std::string("in"), "str"})),
                      "v.gguf: tokenizer.ggml.merges[2] = 'in' is not two tokens separated by a space");
    CHECK_THROWS_WITH(Tokenizer::from_metadata(edited("tokenizer.ggml.merges", 0, {std::string("\xC4\xA0 "), "str"})),
                      "v.gguf: tokenizer.ggml.merges[0] = '\xC4\xA0 ' is not two tokens separated by a space");
}

TEST_CASE("tokenizer: SmolLM2 round-trips a long mixed text", "[tokenizer]") {
    // Timing lives in benchmarks, not here; this checks a long input is encoded losslessly in one call.
    const Tokenizer& tok = fixture_tokenizer("smollm2");
    const imp::test::Json ref = imp::test::load_fixture_json("smollm2.json");
    std::string corpus;
    for (const auto& c : ref["cases"].arr) corpus += c["text"].s + "\n";
    std::string text;
    while (text.size() < (256u << 10)) text += corpus;
    const auto ids = tok.encode(text, false, true);
    CHECK(ids.size() > text.size() / 8);
    CHECK(tok.decode(ids) == text);
}

TEST_CASE("tokenizer: the real SmolLM2 model file gives the fixture's ids", "[tokenizer]") {
    const std::string path = std::string(IMP_SOURCE_DIR) + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
    {
        INFO(path << " is fetched by scripts/fetch-model (scripts/test runs it first)");
        REQUIRE(std::ifstream(path).good());
    }
    const auto tok = Tokenizer::from_metadata(imp::open_model(path)->metadata());
    const imp::test::Json ref = imp::test::load_fixture_json("smollm2.json");
    for (const auto& c : ref["cases"].arr) {
        INFO("text: \"" << c["text"].s << "\"");
        CHECK(tok->encode(c["text"].s, false, true) == c["ids"].ints());
    }
    CHECK(tok->apply_chat_template({{"user", "Hi"}}, true) ==
          fixture_tokenizer("smollm2").apply_chat_template({{"user", "Hi"}}, true));
}

TEST_CASE("tokenizer: generation stopping at every byte offset gives valid UTF-8", "[tokenizer][utf8]") {
    const Tokenizer& tok = fixture_tokenizer("smollm2");
    const std::string text = "a한국어 עברית é😀👨‍👩‍👧 z";
    std::vector<int32_t> ids;  // one token per byte, so that generation can stop after any byte
    for (char c : text) {
        ids.push_back(tok.find_token(std::string(1, c)));
        REQUIRE(ids.back() >= 0);
    }
    for (size_t stop = 0; stop <= ids.size(); ++stop) {
        INFO("stop after " << stop << " bytes");
        imp::StreamDecoder sd(tok);
        std::string out;
        for (size_t k = 0; k < stop; ++k) {
            const std::string chunk = sd.push(ids[k]);
            CHECK(valid_utf8(chunk));
            out += chunk;
        }
        out += sd.flush();
        CHECK(valid_utf8(out));
        const std::string prefix = text.substr(0, stop);
        const size_t whole = imp::unicode::complete_utf8_prefix(prefix);
        // The complete characters come out as they are; a cut character becomes one U+FFFD.
        CHECK(out == prefix.substr(0, whole) + (whole < stop ? "\xEF\xBF\xBD" : ""));
        CHECK(tok.decode(std::vector<int32_t>(ids.begin(), ids.begin() + long(stop))) == out);
    }
}
