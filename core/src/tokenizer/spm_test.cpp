// SentencePiece vocabularies from GGUF (tokenizer.ggml.model = "llama"): ids equal the sentencepiece library on the
// mixed corpus (tests/fixtures/tokenizer/spm.{gguf,json}, written by tests/tools/make_spm_fixtures.py), and equal
// transformers' HF conversion; where those two disagree, imp equals one of them.
#include <catch2/catch.hpp>

#include "tokenizer/test_fixtures.h"
#include "tokenizer/tokenizer.h"

using imp::Tokenizer;

TEST_CASE("spm: GGUF SentencePiece vocab matches sentencepiece and its HF conversion", "[tokenizer][spm]") {
    const auto tok = Tokenizer::from_metadata(imp::test::load_fixture_metadata("spm.gguf"));
    CHECK(tok->describe() == "llama (SentencePiece)");
    CHECK(tok->add_bos());
    const imp::test::Json ref = imp::test::load_fixture_json("spm.json");
    REQUIRE(ref["cases"].arr.size() > 80);
    size_t same_as_hf = 0, hf_agrees = 0;
    for (const auto& c : ref["cases"].arr) {
        const std::string& text = c["text"].s;
        INFO("text: \"" << text << "\"");
        const std::vector<int32_t> ids = tok->encode(text, false, true);
        const std::vector<int32_t> sp = c["ids"].ints(), hf = c["hf_ids"].ints();
        // Where the two references disagree (a leading space run; a text opening with an added token, which
        // sentencepiece gives a lone "▁" and HF and llama.cpp do not), imp must equal one of them. Around an added
        // token it equals HF's legacy conversion and llama.cpp: the text after it gets the "▁" prefix too, which
        // the sentencepiece library (which sees one text) does not give.
        CHECK((ids == sp || ids == hf));
        if (text.find("<tool_call>") != std::string::npos) CHECK(ids == hf);
        if (sp == hf) {
            ++hf_agrees;
            CHECK(ids == sp);
            CHECK(tok->decode(ids) == c["decoded"].s);
            same_as_hf += ids == hf;
        }
    }
    CHECK(hf_agrees > 75);
    CHECK(same_as_hf == hf_agrees);
    // BOS, byte fallback for characters outside the vocab, user-defined tokens split out without parse_special.
    const auto with_bos = tok->encode("hi", true, false);
    CHECK(with_bos.front() == 1);
    const auto emoji = tok->encode("🦀", false, false);
    CHECK(emoji.size() >= 4);
    CHECK(tok->decode(emoji) == "🦀");
    const int32_t tc = tok->find_token("<tool_call>");
    REQUIRE(tc >= 0);
    const auto split = tok->encode("a<tool_call>b", false, false);
    CHECK(std::count(split.begin(), split.end(), tc) == 1);
    // A chat template's "<s>[INST] Hi [/INST]": the text after the BOS text is encoded as a text of its own, as
    // Meta's reference encoder (BOS id, then sp.encode of "[INST] ...") and llama.cpp do: "▁[", not "[".
    const auto inst = tok->encode("<s>[INST] Hi [/INST]", false, true);
    std::vector<int32_t> want = {1};
    for (int32_t id : tok->encode("[INST] Hi [/INST]", false, false)) want.push_back(id);
    CHECK(inst == want);
    CHECK(tok->token_piece(inst.at(1)).rfind("\xE2\x96\x81", 0) == 0);
}
