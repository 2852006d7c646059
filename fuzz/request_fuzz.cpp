// Fuzz target: an OpenAI request body (bytes) as imp serve reads it: parse_request for /v1/chat/completions and
// /v1/completions, then tokenize with the SmolLM2 vocabulary and chat template at a context of 512 (and a KV pool as
// large). A bad body must be a RequestError (HTTP 400, or 404/429 never here) naming a field or none; an accepted
// one must hold values in the documented ranges: sampling parameters finite and in range, 1..16 non-empty stop
// strings at most, a prompt of 1..511 ids inside the vocabulary, 1 <= max_tokens <= 512 - prompt. The body also goes
// to POST /tokenize and /detokenize: a 400, or a JSON object of valid UTF-8.
#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "imp/error.h"
#include "model/display_text.h"
#include "serve/request.h"
#include "serve/tokenize_api.h"
#include "smollm2.h"

namespace {
void require(bool ok) {
    if (!ok) __builtin_trap();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view body(reinterpret_cast<const char*>(data), size);
    imp::SamplingParams defaults;
    defaults.temperature = 0.7f;
    defaults.top_k = 40;
    for (auto kind : {imp::serve::ApiKind::Chat, imp::serve::ApiKind::Completion}) {
        try {
            imp::serve::GenRequest r = imp::serve::parse_request(body, kind, defaults);
            const imp::SamplingParams& s = r.sampling;
            require(std::isfinite(s.temperature) && s.temperature >= 0.f && s.temperature <= 100.f);
            require(std::isfinite(s.top_p) && s.top_p > 0.f && s.top_p <= 1.f);
            require(std::isfinite(s.min_p) && s.min_p >= 0.f && s.min_p <= 1.f);
            require(std::isfinite(s.repeat_penalty) && s.repeat_penalty > 0.f && s.repeat_penalty <= 100.f);
            require(s.top_k >= 0);
            require(r.stop.size() <= 16);
            for (const auto& st : r.stop) require(!st.empty());
            require(r.top_logprobs >= 0 && r.top_logprobs <= 20);
            require(r.max_tokens == -1 || r.max_tokens >= 1);
            require(!r.include_usage || r.stream);
            imp::serve::tokenize(r, imp::fuzz::smollm2(), 512, imp::kv_blocks_for(512));
            const int64_t n = int64_t(r.prompt_ids.size());
            require(n >= 1 && n < 512);
            for (int32_t id : r.prompt_ids) require(id >= 0 && id < imp::fuzz::smollm2().n_vocab());
            require(r.max_tokens >= 1 && n + r.max_tokens <= 512);
        } catch (const imp::serve::RequestError& e) {
            require(e.status == 400);
        }
    }
    // The same body as a POST /tokenize and /detokenize: a 400, or a JSON object whose text is valid UTF-8.
    for (int route = 0; route < 2; ++route) {
        try {
            const std::string out = route == 0 ? imp::serve::tokenize_response(body, imp::fuzz::smollm2(), 512)
                                               : imp::serve::detokenize_response(body, imp::fuzz::smollm2(), 512);
            require(imp::utf8_valid_prefix(out) == out.size());
            require(nlohmann::json::parse(out).is_object());
        } catch (const imp::serve::RequestError& e) {
            require(e.status == 400);
        }
    }
    return 0;
}
