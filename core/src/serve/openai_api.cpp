// Routing and the small endpoints of the OpenAI API (see openai_api.h); generation is in openai_generate.cpp.
#include "serve/openai_api.h"

#include <ctime>
#include <nlohmann/json.hpp>

#include "serve/http_errors.h"
#include "serve/tokenize_api.h"

namespace imp::serve {

using json = nlohmann::json;

Api::Api(Scheduler& sched, Metrics& metrics, const Tokenizer& tok, ApiOptions opt)
    : sched_(sched), metrics_(metrics), tok_(tok), opt_(std::move(opt)), created_(int64_t(std::time(nullptr))) {}

void Api::handle(const HttpRequest& req, Responder& out) {
    std::string path = req.target.substr(0, req.target.find('?'));
    if (path.size() > 1 && path.back() == '/') path.pop_back();
    const bool get = req.method == "GET", post = req.method == "POST";
    int status = 200;
    try {
        if (path == "/v1/chat/completions" && post) {
            status = generate(ApiKind::Chat, req, out);
        } else if (path == "/v1/completions" && post) {
            status = generate(ApiKind::Completion, req, out);
        } else if (path == "/v1/models" && get) {
            json m = {{"id", opt_.model_name}, {"object", "model"}, {"created", created_}, {"owned_by", "imp"},
                      {"max_model_len", opt_.context}};
            out.send(200, "application/json", json{{"object", "list"}, {"data", json::array({m})}}.dump());
        } else if (path == "/tokenize" && post) {
            out.send(200, "application/json", tokenize_response(req.body, tok_, opt_.context));
        } else if (path == "/detokenize" && post) {
            out.send(200, "application/json", detokenize_response(req.body, tok_, opt_.context));
        } else if (path == "/health" && get) {
            out.send(200, "application/json", R"({"status":"ok"})");
        } else if (path == "/metrics" && get) {
            out.send(200, "text/plain; version=0.0.4; charset=utf-8", metrics_.render());
            return;  // scrapes are not counted as requests
        } else if ((path == "/" || path == "/index.html") && get) {
            out.send(200, "text/html; charset=utf-8", chat_page());
        } else {
            const bool known = path == "/v1/chat/completions" || path == "/v1/completions" || path == "/v1/models" ||
                               path == "/tokenize" || path == "/detokenize" || path == "/health" ||
                               path == "/metrics" || path == "/";
            throw RequestError(known ? 405 : 404, "",
                               known ? "method " + req.method + " is not allowed on " + path
                                     : "no route " + req.method + " " + path);
        }
    } catch (const RequestError& e) {
        status = e.status;
        const char* type = e.status == 429   ? "rate_limit_error"
                           : e.status == 404 ? "not_found_error"
                           : e.status >= 500 ? "server_error"
                                             : "invalid_request_error";
        out.send(e.status, "application/json", http_error_body(e.what(), type, e.param));
    } catch (const std::exception& e) {  // a bug, not the client's fault: answer 500 and keep serving
        status = 500;
        out.send(500, "application/json", http_error_body(std::string("internal error: ") + e.what(), "server_error"));
    }
    metrics_.request_done(status);
}

}  // namespace imp::serve
