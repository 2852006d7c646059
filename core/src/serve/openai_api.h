// The OpenAI-compatible routes: POST /v1/chat/completions and /v1/completions (whole responses, or server-sent
// events ending with "data: [DONE]"), GET /v1/models, /health, /metrics (Prometheus text) and / (the chat page),
// POST /tokenize and /detokenize (tokenize_api.h).
// Errors are OpenAI-style JSON: 400 naming the field, 404/405 for unknown routes, 429 when the queue is full.
#pragma once
#include <atomic>
#include <cstdint>
#include <string>

#include "serve/http_server.h"
#include "serve/metrics.h"
#include "serve/request.h"
#include "serve/scheduler.h"

namespace imp::serve {

struct ApiOptions {
    std::string model_name;       // id in /v1/models and in responses
    int64_t context = 0;          // positions per sequence (runtime.max_seq_len in effect)
    SamplingParams defaults;      // fields a request leaves out (the profile's [sampling])
};

class Api {
public:
    Api(Scheduler& sched, Metrics& metrics, const Tokenizer& tok, ApiOptions opt);
    void handle(const HttpRequest& req, Responder& out);

private:
    int generate(ApiKind kind, const HttpRequest& req, Responder& out);  // returns the HTTP status

    Scheduler& sched_;
    Metrics& metrics_;
    const Tokenizer& tok_;
    ApiOptions opt_;
    int64_t created_;
    std::atomic<uint64_t> next_id_{1};
};

// The chat page (web/index.html, compiled in).
const std::string& chat_page();

}  // namespace imp::serve
