// POST /tokenize and /detokenize: the model's tokenizer over HTTP, in the request and response shapes of both vLLM
// and llama.cpp's server, so their clients work unchanged:
//   /tokenize   {"prompt" | "content": text} or {"messages": [...]} (the chat template, with the generation prompt
//               unless "add_generation_prompt": false; its special tokens and BOS as /v1/chat/completions bills
//               them, whatever the BOS flags say); "add_special_tokens" (vLLM) / "add_special" (llama.cpp): BOS as
//               the model adds it to text (default true for "prompt", as /v1/completions bills it; false for
//               "content", llama.cpp's default); "with_pieces": tokens as {"id", "piece"} objects (texts of at
//               most the context).
//               -> {"tokens": [...], "count": n, "max_model_len": context}
//   /detokenize {"tokens": [ids], at most the context} -> {"prompt": text, "content": text}
// Special-token text stays text, as /v1/chat/completions and /v1/completions encode it (so "count" is what a request
// bills); "parse_special": true (llama.cpp's flag) makes it special tokens in "prompt"/"content". A bad body is a
// RequestError (400) naming the field.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

#include "tokenizer/tokenizer.h"

namespace imp::serve {

std::string tokenize_response(std::string_view body, const Tokenizer& tok, int64_t context);
std::string detokenize_response(std::string_view body, const Tokenizer& tok, int64_t context);

}  // namespace imp::serve
