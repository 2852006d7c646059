// /v1/chat/completions and /v1/completions: check and tokenize the request, queue it, then relay the scheduler's
// output as one JSON response or as server-sent events. A client that hangs up cancels its request.
#include <ctime>
#include <nlohmann/json.hpp>
#include <random>

#include "serve/http_errors.h"
#include "serve/openai_api.h"

namespace imp::serve {

using json = nlohmann::json;

namespace {

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

json bytes_of(const std::string& s) {
    json b = json::array();
    for (unsigned char c : s) b.push_back(int(c));
    return b;
}

// A token's text; none for an id past the tokenizer's (a padded model's embedding rows may be sampled or listed).
const std::string& text_of(const Tokenizer& tok, int32_t id) {
    static const std::string none;
    return id >= 0 && id < tok.n_vocab() ? tok.token_text(id) : none;
}

// Logprobs of some tokens in the chat format ({"content": [...]}) or the completions format (parallel arrays).
// text_offset: where the first token's text starts in the completion (the texts of the tokens before it); advanced
// past these tokens, whatever part of their text a stream has sent so far (a stop string may hold some back).
json logprobs_json(ApiKind kind, const std::vector<TokenLogprob>& lps, const Tokenizer& tok, int64_t& text_offset) {
    if (kind == ApiKind::Chat) {
        json content = json::array();
        for (const auto& t : lps) {
            const std::string& s = text_of(tok, t.id);
            text_offset += int64_t(s.size());
            json top = json::array();
            for (auto& [id, lp] : t.top)
                top.push_back({{"token", text_of(tok, id)}, {"logprob", lp}, {"bytes", bytes_of(text_of(tok, id))}});
            content.push_back({{"token", s}, {"logprob", t.logprob}, {"bytes", bytes_of(s)}, {"top_logprobs", top}});
        }
        return {{"content", content}};
    }
    json tokens = json::array(), lp = json::array(), top = json::array(), off = json::array();
    for (const auto& t : lps) {
        tokens.push_back(text_of(tok, t.id));
        lp.push_back(t.logprob);
        // The legacy completions API always includes the sampled token (up to logprobs + 1 entries), as OpenAI and
        // vLLM do; chat's top_logprobs are the top n only.
        json alt = json::object();
        for (auto& [id, l] : t.top) alt[text_of(tok, id)] = l;
        if (!alt.contains(text_of(tok, t.id))) alt[text_of(tok, t.id)] = t.logprob;
        top.push_back(alt);
        off.push_back(text_offset);
        text_offset += int64_t(text_of(tok, t.id).size());
    }
    return {{"tokens", tokens}, {"token_logprobs", lp}, {"top_logprobs", top}, {"text_offset", off}};
}

json usage_json(int64_t prompt, int64_t completion, int64_t cached) {
    return {{"prompt_tokens", prompt},
            {"completion_tokens", completion},
            {"total_tokens", prompt + completion},
            {"prompt_tokens_details", {{"cached_tokens", cached}}}};
}

}  // namespace

int Api::generate(ApiKind kind, const HttpRequest& hr, Responder& out) {
    GenRequest r = parse_request(hr.body, kind, opt_.defaults);
    tokenize(r, tok_, opt_.context, sched_.kv_blocks_total());
    if (!r.seed_given) r.sampling.seed = std::random_device{}() * 0x100000000ull + std::random_device{}();
    const bool chat = kind == ApiKind::Chat, stream = r.stream, include_usage = r.include_usage;
    auto job = std::make_shared<Job>(std::move(r));
    // However this ends (finished, the client gone, an exception while answering), a job still running is
    // cancelled, so the scheduler frees its sequence and KV blocks; a finished job ignores it.
    struct CancelAtExit {
        Job& job;
        ~CancelAtExit() { job.cancel(); }
    } cancel_at_exit{*job};
    if (!sched_.submit(job)) {
        if (sched_.stopping()) throw RequestError(503, "", kShuttingDown);
        throw RequestError(429, "", "the server is busy: the queue of waiting requests is full ([server] max_queue); "
                                    "retry later");
    }

    const std::string id = (chat ? "chatcmpl-" : "cmpl-") + std::to_string(next_id_++);
    const int64_t created = int64_t(std::time(nullptr));
    const char* object = chat ? (stream ? "chat.completion.chunk" : "chat.completion") : "text_completion";
    auto chunk = [&](json choice) {
        return json{{"id", id}, {"object", object}, {"created", created}, {"model", opt_.model_name},
                    {"choices", choice.is_null() ? json::array() : json::array({choice})}};
    };
    if (stream) {
        if (!out.start_stream()) return 499;
        if (chat && !out.event(dump(chunk({{"index", 0}, {"delta", {{"role", "assistant"}, {"content", ""}}},
                                           {"logprobs", nullptr}, {"finish_reason", nullptr}}))))
            return 499;
    }

    std::string text;
    std::vector<TokenLogprob> all_lps;
    int64_t lp_offset = 0;  // the streamed logprobs' text offset: their tokens' texts so far
    Event ev;
    // The client is looked at every 50 ms whether tokens flow or not: a whole response has no write until the end
    // that could fail, and a stream's writes succeed into the socket's buffer for a while after the client left.
    constexpr auto kGoneCheck = std::chrono::milliseconds(50);
    auto next_check = Clock::now();
    for (;;) {
        if (Clock::now() >= next_check) {
            if (out.client_gone()) return 499;
            next_check = Clock::now() + kGoneCheck;
        }
        if (!job->next(ev, kGoneCheck)) continue;
        if (!ev.error.empty()) break;
        if (stream && (!ev.text.empty() || !ev.logprobs.empty())) {
            json lp = ev.logprobs.empty() && !job->request().logprobs ? json(nullptr)
                                                                       : logprobs_json(kind, ev.logprobs, tok_, lp_offset);
            json c = chat ? json{{"index", 0}, {"delta", {{"content", ev.text}}}, {"logprobs", lp}, {"finish_reason", nullptr}}
                          : json{{"index", 0}, {"text", ev.text}, {"logprobs", lp}, {"finish_reason", nullptr}};
            if (!out.event(dump(chunk(c)))) return 499;
        }
        text += ev.text;
        all_lps.insert(all_lps.end(), ev.logprobs.begin(), ev.logprobs.end());
        if (!ev.finish.empty()) break;
    }
    if (!ev.error.empty()) {  // the engine failed, or the server is stopping: a stream still ends with [DONE]
        const bool stopping = sched_.stopping();
        const std::string body =
            http_error_body(stopping ? ev.error : "generation failed: " + ev.error, "server_error");
        if (stream) {
            out.event(body);
            out.event("[DONE]");
        } else {
            out.send(stopping ? 503 : 500, "application/json", body);
        }
        return stopping ? 503 : 500;
    }
    const json usage = usage_json(int64_t(job->request().prompt_ids.size()), ev.completion_tokens, ev.cached_tokens);
    if (stream) {
        json c = chat ? json{{"index", 0}, {"delta", json::object()}, {"logprobs", nullptr}, {"finish_reason", ev.finish}}
                      : json{{"index", 0}, {"text", ""}, {"logprobs", nullptr}, {"finish_reason", ev.finish}};
        out.event(dump(chunk(c)));
        if (include_usage) {
            json u = chunk(nullptr);
            u["usage"] = usage;
            out.event(dump(u));
        }
        out.event("[DONE]");
        return 200;
    }
    int64_t offset = 0;
    json lp = job->request().logprobs ? logprobs_json(kind, all_lps, tok_, offset) : json(nullptr);
    json c = chat ? json{{"index", 0}, {"message", {{"role", "assistant"}, {"content", text}}}, {"logprobs", lp},
                         {"finish_reason", ev.finish}}
                  : json{{"index", 0}, {"text", text}, {"logprobs", lp}, {"finish_reason", ev.finish}};
    json res = chunk(c);
    res["usage"] = usage;
    out.send(200, "application/json", dump(res));
    return 200;
}

}  // namespace imp::serve
