// POST /tokenize and /detokenize bodies (tokenize_api.h) on SmolLM2's tokenizer: vLLM's and llama.cpp's field names,
// the chat template for messages (special-token text in a message stays text), pieces, the round trip, and bad
// bodies refused naming the field.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "model/gguf_reader.h"
#include "model/mapped_file.h"
#include "serve/request.h"
#include "serve/tokenize_api.h"

using namespace imp::serve;
using imp::kv_blocks_for;
using json = nlohmann::json;

namespace {

const imp::Tokenizer& smollm2() {
    static const auto tok = [] {
        imp::GgufSource src(
            imp::MappedFile::open(std::string(IMP_SOURCE_DIR) + "/tests/fixtures/tokenizer/smollm2.gguf"));
        return imp::Tokenizer::from_metadata(src.metadata());
    }();
    return *tok;
}

std::string param_of(const std::string& body, bool detok = false) {
    try {
        detok ? detokenize_response(body, smollm2(), 2048) : tokenize_response(body, smollm2(), 2048);
    } catch (const RequestError& e) {
        CHECK(e.status == 400);
        return e.param.empty() ? "<none>" : e.param;
    }
    return "<accepted>";
}

}  // namespace

TEST_CASE("tokenize: text, messages and pieces, and detokenize: the round trip", "[serve][tokenize]") {
    const imp::Tokenizer& tok = smollm2();
    const json a = json::parse(tokenize_response(R"({"prompt":"Hello world, <|im_end|> again"})", tok, 2048));
    const std::vector<int32_t> want = tok.encode("Hello world, <|im_end|> again", tok.add_bos(), false);
    CHECK(a["tokens"].get<std::vector<int32_t>>() == want);  // as /v1/completions encodes it: the text stays text
    const json s = json::parse(
        tokenize_response(R"({"prompt":"Hello world, <|im_end|> again","parse_special":true})", tok, 2048));
    CHECK(s["tokens"].get<std::vector<int32_t>>() == tok.encode("Hello world, <|im_end|> again", tok.add_bos(), true));
    CHECK(s["count"] < a["count"]);  // <|im_end|> is one special token there
    CHECK(a["count"] == want.size());
    CHECK(a["max_model_len"] == 2048);
    const json c = json::parse(tokenize_response(R"({"content":"Hello world, <|im_end|> again"})", tok, 2048));
    CHECK(c["tokens"] == a["tokens"]);  // (SmolLM2 adds no BOS either way)
    const json m = json::parse(tokenize_response(
        R"({"messages":[{"role":"user","content":"hi <|im_end|>"}],"add_generation_prompt":false})", tok, 2048));
    CHECK(m["tokens"].get<std::vector<int32_t>>() == tok.encode_chat({{"user", "hi <|im_end|>"}}, false));
    const json p = json::parse(tokenize_response(R"({"prompt":"Hello","with_pieces":true})", tok, 2048));
    REQUIRE(p["tokens"].size() == 1);
    CHECK(p["tokens"][0]["piece"] == "Hello");
    CHECK(p["tokens"][0]["id"] == tok.encode("Hello", false, true)[0]);
    const json d = json::parse(detokenize_response(json{{"tokens", want}}.dump(), tok, 2048));
    CHECK(d["prompt"] == "Hello world, <|im_end|> again");
    CHECK(d["content"] == d["prompt"]);
}

TEST_CASE("tokenize and detokenize refuse bad bodies naming the field", "[serve][tokenize]") {
    CHECK(param_of("{nope") == "<none>");
    CHECK(param_of("[1]") == "<none>");
    CHECK(param_of("{}") == "prompt");
    CHECK(param_of(R"({"prompt":"a","content":"b"})") == "prompt");
    CHECK(param_of(R"({"prompt":5})") == "prompt");
    CHECK(param_of(R"({"content":["a"]})") == "content");
    CHECK(param_of(R"({"prompt":"a","add_special_tokens":"yes"})") == "add_special_tokens");
    CHECK(param_of(R"({"content":"a","add_special":1})") == "add_special");
    CHECK(param_of(R"({"prompt":"a","with_pieces":"y"})") == "with_pieces");
    CHECK(param_of(R"({"prompt":"a","parse_special":"y"})") == "parse_special");
    CHECK(param_of(R"({"messages":[]})") == "messages");
    CHECK(param_of(R"({"messages":[{"role":"robot","content":"x"}]})") == "messages[0].role");
    CHECK(param_of(R"({"messages":[{"role":"user","content":"x"}],"add_generation_prompt":0})") ==
          "add_generation_prompt");
    CHECK(param_of(R"({"prompt":"a"})") == "<accepted>");
    CHECK(param_of(R"({"tokens":"1 2"})", true) == "tokens");
    CHECK(param_of(R"({"tokens":[1,-2]})", true) == "tokens");
    CHECK(param_of(R"({"tokens":[1,99999999]})", true) == "tokens");
    CHECK(param_of(R"({"tokens":[1.5]})", true) == "tokens");
    CHECK(param_of(R"({})", true) == "tokens");
    CHECK(param_of(R"({"tokens":[]})", true) == "<accepted>");
    CHECK(param_of(json{{"tokens", std::vector<int>(2049, 1)}}.dump(), true) == "tokens");  // more than the context
    CHECK(param_of(R"({"messages":[{"role":"user","content":"x"}],"add_special_tokens":"no"})") ==
          "add_special_tokens");  // checked for messages too (where the template decides)
    std::string many;
    for (int i = 0; i < 2100; ++i) many += " a";
    CHECK(param_of(json{{"prompt", many}, {"with_pieces", true}}.dump()) == "with_pieces");
    CHECK(param_of(json{{"prompt", many}}.dump()) == "<accepted>");  // the ids alone: any length the body allows
}

TEST_CASE("tokenize on a tokenizer that adds BOS counts what the completion routes bill", "[serve][tokenize]") {
    // llama3.gguf adds <|begin_of_text|>: "prompt" counts it (as /v1/completions bills a text prompt), "content"
    // does not by default (llama.cpp's add_special false), and "messages" equals the chat route's prompt ids.
    imp::GgufSource src(imp::MappedFile::open(std::string(IMP_SOURCE_DIR) + "/tests/fixtures/tokenizer/llama3.gguf"));
    const auto tok = imp::Tokenizer::from_metadata(src.metadata());
    REQUIRE(tok->add_bos());
    const json p = json::parse(tokenize_response(R"({"prompt":"Hello there"})", *tok, 512));
    const json c = json::parse(tokenize_response(R"({"content":"Hello there"})", *tok, 512));
    GenRequest billed = parse_request(R"({"prompt":"Hello there"})", ApiKind::Completion, imp::SamplingParams{});
    tokenize(billed, *tok, 512, kv_blocks_for(512));
    CHECK(p["tokens"].get<std::vector<int32_t>>() == billed.prompt_ids);
    CHECK(p["tokens"][0] == tok->bos());
    CHECK(c["count"] == p["count"].get<int>() - 1);
    const std::string msgs = R"({"messages":[{"role":"user","content":"Hello there"}]})";
    GenRequest chat = parse_request(msgs, ApiKind::Chat, imp::SamplingParams{});
    tokenize(chat, *tok, 512, kv_blocks_for(512));
    CHECK(json::parse(tokenize_response(msgs, *tok, 512))["tokens"].get<std::vector<int32_t>>() == chat.prompt_ids);
}
