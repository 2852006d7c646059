// tokenizer.json folders (tests/fixtures/tokenizer/hf/, written by tests/tools/make_hf_tokenizer_fixtures.py):
// ids with and without the post-processor's tokens and decoded text equal HF `tokenizers` on a mixed corpus.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include "imp/error.h"
#include "tokenizer/nfc.h"
#include "tokenizer/test_fixtures.h"
#include "tokenizer/tokenizer.h"

using imp::Tokenizer;

namespace {

const Tokenizer& hf_tokenizer(const std::string& name) {
    static std::map<std::string, std::unique_ptr<Tokenizer>> cache;
    auto& t = cache[name];
    if (!t) t = Tokenizer::from_hf(imp::test::fixture_path("hf/" + name));
    return *t;
}

void check_hf(const std::string& name) {
    const Tokenizer& tok = hf_tokenizer(name);
    const imp::test::Json ref = imp::test::load_fixture_json("hf_" + name + ".json");
    REQUIRE(ref["cases"].arr.size() > 100);
    for (const auto& c : ref["cases"].arr) {
        const std::string& text = c["text"].s;
        INFO(name << " text: \"" << text << "\"");
        CHECK(tok.encode(text, false, true) == c["ids"].ints());
        CHECK(tok.encode(text, true, true) == c["ids_special"].ints());
        CHECK(tok.decode(c["ids"].ints()) == c["decoded"].s);
    }
}

std::string tmp_dir(const std::string& name) {
    const auto d = std::filesystem::temp_directory_path() / ("imp_hf_tok_" + name);
    std::filesystem::remove_all(d);
    std::filesystem::create_directories(d);
    return d.string();
}

void write(const std::string& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

std::string load_error(const std::string& dir) {
    try {
        Tokenizer::from_hf(dir);
    } catch (const imp::Error& e) {
        return e.what();
    }
    return "(accepted)";
}

}  // namespace

TEST_CASE("hf tokenizer: SmolLM2 tokenizer.json matches HF tokenizers", "[tokenizer][hf]") { check_hf("smollm2"); }
TEST_CASE("hf tokenizer: Llama-3-style tokenizer.json matches HF tokenizers", "[tokenizer][hf]") { check_hf("llama3"); }
TEST_CASE("hf tokenizer: Qwen2-style (NFC) tokenizer.json matches HF tokenizers", "[tokenizer][hf]") {
    check_hf("qwen2");
}
TEST_CASE("hf tokenizer: Metaspace-normalizer byte-fallback BPE matches HF tokenizers", "[tokenizer][hf]") {
    check_hf("metaspace");
}
TEST_CASE("hf tokenizer: Metaspace pre-tokenizer BPE matches HF tokenizers", "[tokenizer][hf]") {
    check_hf("metaspace_pre");
}

TEST_CASE("hf tokenizer: config files give bos/eos, end-of-generation ids and the chat template", "[tokenizer][hf]") {
    const Tokenizer& l = hf_tokenizer("llama3");
    CHECK(l.bos() == l.find_token("<|begin_of_text|>"));
    CHECK(l.add_bos());
    CHECK(l.is_eog(l.find_token("<|eot_id|>")));
    CHECK_THAT(l.chat_template(), Catch::Contains("<|start_header_id|>"));
    const Tokenizer& q = hf_tokenizer("qwen2");
    CHECK_FALSE(q.add_bos());
    CHECK(q.is_eog(q.find_token("<|im_end|>")));
    CHECK(q.is_eog(q.find_token("<|endoftext|>")));
    // Non-special added tokens split even without parse_special; special ones only with it.
    CHECK(q.encode("a<tool_call>b", false, false).size() == 3);
    CHECK(q.encode("<|im_end|>", false, false).size() > 1);

    const std::string d = tmp_dir("gen");
    std::filesystem::copy(imp::test::fixture_path("hf/qwen2/tokenizer.json"), d + "/tokenizer.json");
    write(d + "/generation_config.json",
          R"({"eos_token_id": [5, 7], "bos_token_id": 3, "temperature": 0.6, "top_k": 20, "top_p": 0.95})");
    write(d + "/chat_template.jinja", "{{ messages[0]['content'] }}");
    auto t = Tokenizer::from_hf(d);
    CHECK(t->is_eog(5));
    CHECK(t->is_eog(7));
    CHECK_FALSE(t->is_eog(6));
    CHECK(t->bos() == 3);
    CHECK(t->sampling_defaults().temperature == 0.6);
    CHECK(t->sampling_defaults().top_k == 20);
    CHECK(t->sampling_defaults().top_p == 0.95);
    CHECK_FALSE(t->sampling_defaults().min_p.has_value());
    CHECK(t->chat_template() == "{{ messages[0]['content'] }}");
}

TEST_CASE("hf tokenizer: unsupported parts give one error naming file, section and type", "[tokenizer][hf]") {
    const std::string base = imp::test::read_file(imp::test::fixture_path("hf/llama3/tokenizer.json"));
    auto with = [&](const std::string& from, const std::string& to) {
        std::string s = base;
        const size_t p = s.find(from);
        REQUIRE(p != std::string::npos);
        s.replace(p, from.size(), to);
        const std::string d = tmp_dir("bad");
        write(d + "/tokenizer.json", s);
        return load_error(d);
    };
    CHECK_THAT(with("\"type\":\"BPE\"", "\"type\":\"Unigram\""),
               Catch::Contains("tokenizer.json: model type 'Unigram' is not supported"));
    CHECK_THAT(with("\"normalizer\":null", "\"normalizer\":{\"type\":\"NFKC\"}"),
               Catch::Contains("tokenizer.json: normalizer: type 'NFKC' is not supported"));
    CHECK_THAT(with("\"behavior\":\"Isolated\"", "\"behavior\":\"Sideways\""),
               Catch::Contains("unknown split behavior 'Sideways'"));
    CHECK_THAT(with("\"Regex\":\"", "\"Regex\":\"(?<"), Catch::Contains("regex /(?<"));
    CHECK_THAT(load_error(tmp_dir("empty")), Catch::Contains("no tokenizer.json"));
}

TEST_CASE("hf tokenizer: NFC", "[tokenizer][hf]") {
    using imp::unicode::nfc;
    CHECK(nfc("plain ascii") == "plain ascii");
    CHECK(nfc("e\xCC\x81") == "\xC3\xA9");                        // e + U+0301 -> é
    CHECK(nfc("\xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8") == "\xEA\xB0\x81");  // jamo -> 각
    CHECK(nfc("a\xCC\xA3\xCC\x87") == "\xE1\xBA\xA1\xCC\x87");   // a + dot below + dot above: ạ̇ (ordering)
    CHECK(nfc("a\xCC\x87\xCC\xA3") == "\xE1\xBA\xA1\xCC\x87");   // marks reordered by combining class first
    CHECK(nfc("\xE2\x84\xAB") == "\xC3\x85");                     // Å ANGSTROM SIGN (singleton) -> Å
    CHECK(nfc("\xCC\x81x") == "\xCC\x81x");                       // a leading mark stays
}

TEST_CASE("hf tokenizer: the 256-byte vocab of the tiny test models matches HF tokenizers", "[tokenizer][hf]") {
    check_hf("bytes256");
}

TEST_CASE("hf tokenizer: config keys of the wrong type name the file and the key", "[tokenizer][hf]") {
    auto with = [](const char* file, const std::string& text) {
        const std::string d = tmp_dir("types");
        std::filesystem::copy(imp::test::fixture_path("hf/bytes256/tokenizer.json"), d + "/tokenizer.json");
        write(d + "/" + file, text);
        const std::string err = load_error(d);
        CHECK_THAT(err, Catch::StartsWith(d + "/" + file + ": "));
        return err;
    };
    const char* tc = "tokenizer_config.json";
    const char* gc = "generation_config.json";
    CHECK_THAT(with(tc, R"({"chat_template": 5})"),
               Catch::EndsWith("key 'chat_template' is int, expected a string or a list of {\"name\", \"template\"}"));
    CHECK_THAT(with(tc, R"({"chat_template": [{"name": "default"}]})"),
               Catch::EndsWith("key 'chat_template' is json, expected a string or a list of {\"name\", \"template\"}"));
    CHECK_THAT(with(tc, R"({"add_bos_token": "yes"})"), Catch::EndsWith("key 'add_bos_token' is str, expected a bool"));
    CHECK_THAT(with(tc, R"({"eos_token": 2})"),
               Catch::EndsWith("key 'eos_token' is int, expected a string or {\"content\": string}"));
    CHECK_THAT(with(gc, R"({"eos_token_id": "x"})"),
               Catch::EndsWith("key 'eos_token_id' is str, expected a token id or a list of them"));
    CHECK_THAT(with(gc, R"({"bos_token_id": 1.5})"),
               Catch::EndsWith("key 'bos_token_id' is float, expected a token id"));
    CHECK_THAT(with(gc, R"({"temperature": "hot"})"), Catch::EndsWith("key 'temperature' is str, expected a number"));
    CHECK_THAT(with(gc, R"({"do_sample": 0})"), Catch::EndsWith("key 'do_sample' is int, expected a bool"));
    // null is absent, as transformers writes it
    const std::string d = tmp_dir("nulls");
    std::filesystem::copy(imp::test::fixture_path("hf/bytes256/tokenizer.json"), d + "/tokenizer.json");
    write(d + "/tokenizer_config.json", R"({"chat_template": null, "add_bos_token": null, "eos_token": null})");
    write(d + "/generation_config.json", R"({"eos_token_id": null, "bos_token_id": null, "temperature": null})");
    CHECK(load_error(d) == "(accepted)");
}

TEST_CASE("hf tokenizer: a chat template error names the file the template came from", "[tokenizer][hf]") {
    const std::string d = tmp_dir("tmpl");
    std::filesystem::copy(imp::test::fixture_path("hf/bytes256/tokenizer.json"), d + "/tokenizer.json");
    write(d + "/tokenizer_config.json", R"({"chat_template": "{% if %}"})");
    const std::vector<Tokenizer::Message> msgs{{"user", "hi"}};
    CHECK_THROWS_WITH(Tokenizer::from_hf(d)->apply_chat_template(msgs, true),
                      Catch::StartsWith(d + "/tokenizer_config.json: chat template:1: "));
    write(d + "/chat_template.jinja", "x\n{% if %}");  // wins over tokenizer_config.json's
    CHECK_THROWS_WITH(Tokenizer::from_hf(d)->apply_chat_template(msgs, true),
                      Catch::StartsWith(d + "/chat_template.jinja:2: "));
}

TEST_CASE("hf tokenizer: a vocabulary larger than the model's is refused naming both sizes", "[tokenizer][hf]") {
    const Tokenizer& t = hf_tokenizer("smollm2");
    CHECK_NOTHROW(t.check_fits(t.n_vocab(), "model"));
    CHECK_NOTHROW(t.check_fits(t.n_vocab() + 64, "model"));  // padded embedding rows
    CHECK_THROWS_WITH(t.check_fits(320, "rows of tensor 'model.embed_tokens.weight' in DIR"),
                      t.source() + ": 49152 tokens, more than the model's vocabulary of 320 (rows of tensor "
                                   "'model.embed_tokens.weight' in DIR)");
}

TEST_CASE("hf tokenizer: added tokens decode through the decoder, strip Unicode spaces, a repeated merge keeps its "
          "last rank", "[tokenizer][hf]") {
    // The Llama-2-style Metaspace fixture with "▁▁▁▁" as a non-special added token (as Gemma's are) and "<s>" with
    // lstrip + rstrip (as Phi-3's chat tokens): tokenizers decodes the added token to four spaces and strips any
    // Unicode whitespace around "<s>".
    std::string j = imp::test::read_file(imp::test::fixture_path("hf/metaspace/tokenizer.json"));
    const std::string s_tok = R"("content":"<s>","single_word":false,"lstrip":false,"rstrip":false)";
    const size_t at = j.find(s_tok);
    REQUIRE(at != std::string::npos);
    j.replace(at, s_tok.size(), R"("content":"<s>","single_word":false,"lstrip":true,"rstrip":true)");
    const auto base = Tokenizer::from_hf(imp::test::fixture_path("hf/metaspace"));
    const int32_t quad = base->find_token("\xE2\x96\x81\xE2\x96\x81\xE2\x96\x81\xE2\x96\x81");
    REQUIRE(quad >= 0);
    const size_t added = j.find("\"added_tokens\":[");
    REQUIRE(added != std::string::npos);
    j.insert(added + 16, "{\"id\": " + std::to_string(quad) +
                             R"(, "content": "▁▁▁▁", "single_word": false, "lstrip": false, "rstrip": false, )"
                             R"("normalized": false, "special": false}, )");
    const std::string d = tmp_dir("added");
    std::filesystem::copy(imp::test::fixture_path("hf/metaspace"), d, std::filesystem::copy_options::recursive |
                                                                         std::filesystem::copy_options::overwrite_existing);
    write(d + "/tokenizer.json", j);
    const auto tok = Tokenizer::from_hf(d);
    const int32_t x = tok->find_token("x");
    REQUIRE(x >= 0);
    CHECK(tok->decode({x, quad, x}) == "x    x");
    CHECK(tok->encode("a\xC2\xA0<s>\xE3\x80\x80" "b", false, true) == tok->encode("a<s>b", false, true));
    CHECK(tok->encode("a\xE2\x80\x83<s>\n b", false, true) == tok->encode("a<s>b", false, true));

    // merges "a b", "b c", "a b": tokenizers keeps the last rank of a pair (2), so "b c" (1) merges first.
    const std::string m = tmp_dir("merges");
    write(m + "/tokenizer.json", R"({"version": "1.0", "added_tokens": [], "normalizer": null, "pre_tokenizer": null,
        "post_processor": null, "decoder": null, "model": {"type": "BPE", "dropout": null, "unk_token": null,
        "fuse_unk": false, "byte_fallback": false, "vocab": {"a": 0, "b": 1, "c": 2, "ab": 3, "bc": 4},
        "merges": ["a b", "b c", "a b"]}})");
    CHECK(Tokenizer::from_hf(m)->encode("abc", false, false) == std::vector<int32_t>{0, 4});
}
