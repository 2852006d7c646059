// Field-by-field reading of OpenAI request bodies (see request.h). Null counts as absent, as in the OpenAI API.
#include "serve/request.h"

#include <algorithm>

#include "runtime/engine.h"  // kMinRepeatPenalty
#include "serve/body_fields.h"

namespace imp::serve {

using json = nlohmann::json;

namespace {

using namespace body;

// Message content: a string, or an array of {"type": "text", "text": ...} parts (joined).
std::string content_text(const json& c, const std::string& where) {
    if (c.is_string()) return c.get<std::string>();
    if (!c.is_array()) bad(where, "'" + where + "' must be a string or an array of text parts, got " + type_of(c));
    std::string out;
    for (size_t i = 0; i < c.size(); ++i) {
        const json& p = c[i];
        const std::string pw = where + "[" + std::to_string(i) + "]";
        if (!p.is_object() || !p.contains("type") || p["type"] != "text" || !p.contains("text") || !p["text"].is_string())
            bad(pw, "'" + pw + "' must be {\"type\": \"text\", \"text\": string} (only text parts are supported)");
        out += p["text"].get<std::string>();
    }
    return out;
}

void read_messages(const json& o, GenRequest& r) {
    const json* m = field(o, "messages");
    if (!m) bad("messages", "'messages' is required");
    if (!m->is_array()) bad("messages", std::string("'messages' must be an array, got ") + type_of(*m));
    if (m->empty()) bad("messages", "'messages' must not be empty");
    for (size_t i = 0; i < m->size(); ++i) {
        const json& e = (*m)[i];
        const std::string w = "messages[" + std::to_string(i) + "]";
        if (!e.is_object()) bad(w, "'" + w + "' must be an object, got " + type_of(e));
        const json* role = field(e, "role");
        if (!role || !role->is_string()) bad(w + ".role", "'" + w + ".role' must be a string");
        std::string rs = role->get<std::string>();
        if (rs == "developer") rs = "system";
        if (rs != "system" && rs != "user" && rs != "assistant")
            bad(w + ".role", "'" + w + ".role' is '" + role->get<std::string>() +
                                 "', must be system, developer, user or assistant");
        const json* c = field(e, "content");
        if (!c) bad(w + ".content", "'" + w + ".content' is required");
        r.messages.push_back({rs, content_text(*c, w + ".content")});
    }
}

void read_prompt(const json& o, GenRequest& r) {
    const json* p = field(o, "prompt");
    if (!p) bad("prompt", "'prompt' is required");
    if (p->is_string()) {
        r.prompt = p->get<std::string>();
        return;
    }
    if (p->is_array() && p->size() == 1 && (*p)[0].is_string()) {
        r.prompt = (*p)[0].get<std::string>();
        return;
    }
    if (p->is_array() && !p->empty() && (*p)[0].is_number()) {  // token ids: tokenize() checks the vocabulary
        for (size_t i = 0; i < p->size(); ++i) {
            const json& t = (*p)[i];
            const std::string w = "'prompt[" + std::to_string(i) + "]'";
            if (!t.is_number_integer())
                bad("prompt", w + " must be an integer token id, got " + (t.is_number() ? t.dump() : type_of(t)));
            if (t.is_number_unsigned() && t.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max()))
                bad("prompt", w + " = " + t.dump() + " is too large for a token id");
            r.prompt_given_ids.push_back(t.get<int64_t>());
        }
        return;
    }
    bad("prompt", std::string("'prompt' must be a string, one string in an array, or an array of token ids, got ") +
                      type_of(*p));
}

void read_stop(const json& o, GenRequest& r) {
    const json* s = field(o, "stop");
    if (!s) return;
    auto add = [&](const json& v) {
        if (!v.is_string()) bad("stop", std::string("'stop' must be a string or an array of strings, got ") + type_of(v));
        if (v.get<std::string>().empty()) bad("stop", "'stop' strings must not be empty");
        r.stop.push_back(v.get<std::string>());
    };
    if (s->is_array()) {
        if (s->size() > 16) bad("stop", "'stop' has " + std::to_string(s->size()) + " strings, at most 16");
        for (const json& v : *s) add(v);
    } else {
        add(*s);
    }
}

// OpenAI fields imp does not implement: a value that asks for their effect is refused rather than ignored (a client
// asking for JSON output or tool calls must not get plain text with a 200); their neutral values pass.
void refuse_unsupported(const json& o) {
    for (const char* name : {"presence_penalty", "frequency_penalty"})
        if (number(o, name, 0, -2, false, 2) != 0)
            bad(name, std::string("'") + name + "' is not supported (only 0); 'repetition_penalty' is");
    if (const json* lb = field(o, "logit_bias"); lb && !(lb->is_object() && lb->empty()))
        bad("logit_bias", "'logit_bias' is not supported");
    if (const json* rf = field(o, "response_format")) {
        const json* ty = rf->is_object() ? field(*rf, "type") : nullptr;
        if (!ty || !ty->is_string() || ty->get<std::string>() != "text")
            bad("response_format", "'response_format' other than {\"type\": \"text\"} is not supported: imp has no "
                                   "constrained decoding (JSON mode, JSON schema)");
    }
    for (const char* name : {"tools", "functions"})
        if (const json* t = field(o, name); t && !(t->is_array() && t->empty()))
            bad(name, std::string("'") + name + "' is not supported: imp does not parse tool calls");
    if (boolean(o, "echo", false)) bad("echo", "'echo' is not supported");
    if (const json* sf = field(o, "suffix"); sf && !(sf->is_string() && sf->get<std::string>().empty()))
        bad("suffix", "'suffix' is not supported");
    if (integer(o, "best_of", 1, 1, 1 << 20) != 1) bad("best_of", "'best_of' must be 1");
}

}  // namespace

GenRequest parse_request(std::string_view body, ApiKind kind, const SamplingParams& defaults) {
    const json o = parse_object(body);
    GenRequest r;
    r.kind = kind;
    if (kind == ApiKind::Chat) read_messages(o, r);
    else read_prompt(o, r);
    if (const json* m = field(o, "model"); m && !m->is_string())
        bad("model", std::string("'model' must be a string, got ") + type_of(*m));

    constexpr int64_t kMaxTok = int64_t(1) << 30;
    r.max_tokens = integer(o, "max_tokens", -1, 1, kMaxTok);
    if (kind == ApiKind::Chat) r.max_tokens = integer(o, "max_completion_tokens", r.max_tokens, 1, kMaxTok);
    if (integer(o, "n", 1, 1, 1) != 1) bad("n", "'n' must be 1");
    refuse_unsupported(o);

    SamplingParams& sp = r.sampling;
    sp = defaults;
    sp.temperature = float(number(o, "temperature", defaults.temperature, 0, false, 100));
    sp.top_p = float(number(o, "top_p", defaults.top_p, 0, true, 1));
    sp.min_p = float(number(o, "min_p", defaults.min_p, 0, false, 1));
    const int64_t k = integer(o, "top_k", defaults.top_k, -1, std::numeric_limits<int32_t>::max());
    sp.top_k = int32_t(k < 0 ? 0 : k);  // -1 (vLLM's "off") = 0
    sp.repeat_penalty = float(number(o, "repetition_penalty", defaults.repeat_penalty, kMinRepeatPenalty, false, 100));
    if (const json* s = field(o, "seed")) {
        if (!s->is_number_integer()) bad("seed", std::string("'seed' must be an integer, got ") + type_of(*s));
        sp.seed = s->is_number_unsigned() ? s->get<uint64_t>() : uint64_t(s->get<int64_t>());
        r.seed_given = true;
    }
    read_stop(o, r);

    r.ignore_eos = boolean(o, "ignore_eos", false);
    if (const json* cs = field(o, "cache_salt")) {
        if (!cs->is_string() || cs->get<std::string>().empty())
            bad("cache_salt", std::string("'cache_salt' must be a non-empty string, got ") +
                                  (cs->is_string() ? "an empty string" : type_of(*cs)));
        r.cache_salt = cs->get<std::string>();
    }
    r.stream = boolean(o, "stream", false);
    if (const json* so = field(o, "stream_options")) {
        if (!so->is_object()) bad("stream_options", std::string("'stream_options' must be an object, got ") + type_of(*so));
        if (!r.stream) bad("stream_options", "'stream_options' is only allowed with 'stream': true");
        r.include_usage = boolean(*so, "include_usage", false, "stream_options");
    }
    if (kind == ApiKind::Chat) {
        r.logprobs = boolean(o, "logprobs", false);
        r.top_logprobs = int(integer(o, "top_logprobs", 0, 0, 20));
        if (r.top_logprobs > 0 && !r.logprobs) bad("top_logprobs", "'top_logprobs' needs 'logprobs': true");
    } else {
        const json* lp = field(o, "logprobs");
        if (lp && lp->is_boolean()) bad("logprobs", "'logprobs' must be an integer (0 to 20) for /v1/completions");
        const int64_t n = integer(o, "logprobs", -1, 0, 20);
        r.logprobs = n >= 0;
        r.top_logprobs = int(n < 0 ? 0 : n);
    }
    return r;
}

void tokenize(GenRequest& r, const Tokenizer& tok, int64_t context, int64_t kv_blocks) {
    const char* pf = r.kind == ApiKind::Chat ? "messages" : "prompt";
    if (r.kind == ApiKind::Chat) {
        // Special tokens of the template only: special-token text inside a message stays text (no injected turns).
        try {
            r.prompt_ids = tok.encode_chat(r.messages, true);
        } catch (const std::exception& e) {
            bad("messages", std::string("the model's chat template cannot format these messages: ") + e.what());
        }
    } else if (r.prompt_given_ids.empty()) {
        r.prompt_ids = tok.encode(r.prompt, tok.add_bos(), /*parse_special=*/false);
    } else {
        r.prompt_ids.clear();
        for (size_t i = 0; i < r.prompt_given_ids.size(); ++i) {
            const int64_t id = r.prompt_given_ids[i];
            if (id < 0 || id >= tok.n_vocab())
                bad(pf, "'prompt[" + std::to_string(i) + "]' = " + std::to_string(id) +
                            " is outside the vocabulary [0, " + std::to_string(tok.n_vocab()) + ")");
            r.prompt_ids.push_back(int32_t(id));
        }
    }
    const int64_t n = int64_t(r.prompt_ids.size());
    if (n == 0) bad(pf, std::string("'") + pf + "' is empty");
    if (n >= context)
        bad(pf, "the prompt is " + std::to_string(n) + " tokens; the context is " + std::to_string(context) +
                    " tokens, which leaves no room to generate");
    const std::string pool = "; the pool has " + std::to_string(kv_blocks) + " (runtime.kv_blocks)";
    if (kv_blocks_for(n + 1) > kv_blocks)
        bad(pf, "the prompt (" + std::to_string(n) + " tokens) and one generated token need " +
                    std::to_string(kv_blocks_for(n + 1)) + " KV blocks" + pool);
    if (r.max_tokens < 0) {
        r.max_tokens = std::min(context, kv_blocks * kKvBlockTokens) - n;
        return;
    }
    const std::string asked =
        "the prompt (" + std::to_string(n) + " tokens) plus max_tokens (" + std::to_string(r.max_tokens) + ")";
    if (n + r.max_tokens > context)
        bad("max_tokens", asked + " is more than the context of " + std::to_string(context) + " tokens");
    if (kv_blocks_for(n + r.max_tokens) > kv_blocks)
        bad("max_tokens", asked + " needs " + std::to_string(kv_blocks_for(n + r.max_tokens)) + " KV blocks" + pool);
}

}  // namespace imp::serve
