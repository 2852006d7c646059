// An OpenAI request body (/v1/chat/completions or /v1/completions) read into a GenRequest: every field imp uses
// is type- and range-checked, unknown fields are ignored, and a bad one is a RequestError naming it (HTTP 400).
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "imp/executor.h"
#include "runtime/kv_block.h"  // kKvBlockTokens, kv_blocks_for
#include "tokenizer/tokenizer.h"

namespace imp::serve {

// An HTTP error with an OpenAI-style body: {"error": {"message", "type", "param", "code"}}.
struct RequestError : std::runtime_error {
    RequestError(int status, std::string param, const std::string& msg)
        : std::runtime_error(msg), status(status), param(std::move(param)) {}
    int status;         // 400, 404, 429, ...
    std::string param;  // the field at fault ("" when none)
};

enum class ApiKind { Chat, Completion };

struct GenRequest {
    ApiKind kind = ApiKind::Chat;
    std::vector<Tokenizer::Message> messages;  // chat
    std::string prompt;                        // completion, as text
    std::vector<int64_t> prompt_given_ids;     // completion given as token ids, as sent (tokenize() checks them)
    std::vector<int32_t> prompt_ids;           // the prompt's tokens (filled by tokenize())
    int64_t max_tokens = -1;                   // -1: until the context (or the KV pool) is full
    SamplingParams sampling;
    bool seed_given = false;
    std::vector<std::string> stop;
    bool stream = false, include_usage = false;
    bool logprobs = false;
    int top_logprobs = 0;                      // alternatives per token (0..20)
    bool ignore_eos = false;                   // generate max_tokens even past end-of-generation tokens (benchmarks)
    std::string cache_salt;                    // prefix caching: only requests with the same salt share KV blocks
};

// Parses and checks `body`; fields not given take `defaults` (the profile's [sampling]). Throws RequestError(400).
GenRequest parse_request(std::string_view body, ApiKind kind, const SamplingParams& defaults);

// Fills prompt_ids (chat template for chat requests) and checks them against the vocabulary, the context and the
// KV pool of `kv_blocks` blocks (a request holds the blocks of its prompt + max_tokens): a prompt that leaves no
// room, or a max_tokens given past the context or the pool, is a RequestError naming the field. Resolves
// max_tokens = -1 (left out) to the room left in both, as vLLM does for the context.
void tokenize(GenRequest& r, const Tokenizer& tok, int64_t context, int64_t kv_blocks);

}  // namespace imp::serve
