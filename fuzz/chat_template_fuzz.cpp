// Fuzz target: chat templates. The input is a Jinja template, a user message and a system message, separated by
// "\n--8<--\n" lines. The template is parsed and rendered with those messages (an imp::Error is the only allowed
// failure); then the two messages go through SmolLM2's own template and tokenizer, where special-token text inside
// them must stay text: the ids hold exactly one <|im_start|> per turn (system, user, assistant prompt) and one
// <|im_end|> per message.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "fuzz_util.h"
#include "imp/error.h"
#include "model/json.h"
#include "tokenizer/jinja/jinja.h"
#include "smollm2.h"
#include "tokenizer/tokenizer.h"

namespace {
using imp::fuzz::smollm2;
imp::json::Value str(const std::string& s) {
    imp::json::Value v;
    v.kind = imp::json::Value::Kind::String;
    v.s = s;
    return v;
}
// {"role": role, "content": content}
imp::json::Value message(const std::string& role, const std::string& content) {
    imp::json::Value m;
    m.kind = imp::json::Value::Kind::Object;
    m.keys = {"role", "content"};
    m.items = {str(role), str(content)};
    return m;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const auto parts = imp::fuzz::split(data, size, 3);
    const std::string& user = parts[1];
    const std::string& system = parts[2];
    try {
        imp::jinja::Template t(parts[0], "fuzz.jinja");
        imp::json::Value ctx = imp::json::parse(
            R"({"messages":[],"add_generation_prompt":true,"bos_token":"<s>","eos_token":"</s>"})", "fuzz");
        ctx.items[0].items = {message("system", system), message("user", user), message("assistant", user)};
        (void)t.render(ctx);
    } catch (const imp::Error&) {
    }
    const imp::Tokenizer& tok = smollm2();
    std::vector<imp::Tokenizer::Message> msgs;
    if (!system.empty()) msgs.push_back({"system", system});
    msgs.push_back({"user", user});
    const std::vector<int32_t> ids = tok.encode_chat(msgs, true);
    const int32_t start = tok.find_token("<|im_start|>"), end = tok.find_token("<|im_end|>");
    // SmolLM2's template adds a default system turn when the messages have none.
    if (std::count(ids.begin(), ids.end(), start) != 3 || std::count(ids.begin(), ids.end(), end) != 2)
        __builtin_trap();
    return 0;
}
