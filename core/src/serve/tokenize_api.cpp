// See tokenize_api.h.
#include "serve/tokenize_api.h"

#include "serve/body_fields.h"

namespace imp::serve {

namespace {

using namespace body;

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

}  // namespace

std::string tokenize_response(std::string_view body, const Tokenizer& tok, int64_t context) {
    const json o = parse_object(body);
    const json* prompt = field(o, "prompt");
    const json* content = field(o, "content");
    const bool chat = field(o, "messages") != nullptr;
    if (int(prompt != nullptr) + int(content != nullptr) + int(chat) != 1)
        bad("prompt", "give exactly one of 'prompt' (vLLM), 'content' (llama.cpp) or 'messages'");
    // BOS flags (also for messages, where the template decides and they only get checked); pieces; parsing.
    const bool add_special_tokens = boolean(o, "add_special_tokens", true);
    const bool add_special = boolean(o, "add_special", prompt != nullptr);
    const bool special = field(o, "add_special_tokens") ? add_special_tokens : add_special;
    const bool pieces = boolean(o, "with_pieces", false), parse = boolean(o, "parse_special", false);
    std::vector<int32_t> ids;
    if (chat) {
        // The messages as a chat completion reads them; the template writes the special tokens.
        const GenRequest r = parse_request(body, ApiKind::Chat, SamplingParams{});
        try {
            ids = tok.encode_chat(r.messages, boolean(o, "add_generation_prompt", true));
        } catch (const RequestError&) {
            throw;
        } catch (const std::exception& e) {
            bad("messages", std::string("the model's chat template cannot format these messages: ") + e.what());
        }
    } else {
        const json& t = prompt ? *prompt : *content;
        const char* name = prompt ? "prompt" : "content";
        if (!t.is_string()) bad(name, std::string("'") + name + "' must be a string");
        // As /v1/completions encodes a text prompt: special-token text stays text unless "parse_special" asks.
        ids = tok.encode(t.get<std::string>(), special && tok.add_bos(), parse);
    }
    if (pieces && int64_t(ids.size()) > context)  // the pieces of a long text would be a large answer
        bad("with_pieces", "pieces are given for at most the context (" + std::to_string(context) + " tokens); this "
                           "text is " + std::to_string(ids.size()) + " tokens");
    json tokens = json::array();
    if (pieces)
        for (int32_t id : ids) tokens.push_back({{"id", id}, {"piece", tok.token_text(id)}});
    else
        tokens = ids;
    return dump({{"tokens", tokens}, {"count", ids.size()}, {"max_model_len", context}});
}

std::string detokenize_response(std::string_view body, const Tokenizer& tok, int64_t context) {
    const json o = parse_object(body);
    const json* t = field(o, "tokens");
    if (!t || !t->is_array()) bad("tokens", "'tokens' must be an array of token ids");
    if (int64_t(t->size()) > context)
        bad("tokens", "'tokens' holds " + std::to_string(t->size()) + " ids, more than the context of " +
                          std::to_string(context));
    std::vector<int32_t> ids;
    ids.reserve(t->size());
    for (const json& v : *t) {
        if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() >= tok.n_vocab())
            bad("tokens", "'tokens' holds ids in [0, " + std::to_string(tok.n_vocab()) + "), got " + v.dump());
        ids.push_back(int32_t(v.get<int64_t>()));
    }
    const std::string text = tok.decode(ids);
    return dump({{"prompt", text}, {"content", text}});
}

}  // namespace imp::serve
