// Tokenizer::render_chat / apply_chat_template / encode_chat: the model's Jinja chat template rendered with
// messages, add_generation_prompt, bos_token and eos_token (jinja/). Special-token text inside a message is swapped
// for private-use placeholders while rendering, then put back and marked literal, so that it encodes as text.
#include <algorithm>

#include "imp/error.h"
#include "tokenizer/jinja/jinja.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace imp {

namespace {

// Used when a model has no template but its vocab has <|im_start|>.
const char* const kChatMLTemplate =
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + "
    "'\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

// Placeholders: U+F0000 + k in Supplementary Private Use Area-A stands for the k-th replaced special text.
constexpr uint32_t kPlaceholderBase = 0xF0000, kPlaceholderMax = 0xFFFFD;

json::Value jstr(const std::string& s) {
    json::Value v;
    v.kind = json::Value::Kind::String, v.s = s;
    return v;
}
void put(json::Value& obj, const std::string& k, json::Value v) {
    obj.keys.push_back(k);
    obj.items.push_back(std::move(v));
}

}  // namespace

Tokenizer::ChatPrompt Tokenizer::render_chat(const json::Value& context) const {
    if (!context.is_object()) throw Error("chat prompt: the template context is not a JSON object");
    std::string tmpl = chat_template_;
    if (tmpl.empty()) {
        if (find_token("<|im_start|>") < 0)
            throw Error(source_ + ": the model has no chat template and its vocab has no <|im_start|> (ChatML)");
        tmpl = kChatMLTemplate;
    }
    // Special-token texts found in the strings of `messages` -> placeholders.
    std::vector<std::string> replaced;
    auto protect = [&](const std::string& content) {
        std::string out;
        for (size_t i = 0; i < content.size();) {
            const Special* hit = nullptr;
            // Control tokens only: non-special added tokens (<tool_response>, ...) are matched in any text anyway,
            // and templates inspect them in message contents.
            for (uint32_t idx : special_by_byte_[static_cast<unsigned char>(content[i])])
                if (const Special& sp = specials_[idx];
                    !sp.always && content.compare(i, sp.text.size(), sp.text) == 0) {
                    hit = &sp;
                    break;
                }
            if (!hit) {
                out += content[i++];
                continue;
            }
            if (kPlaceholderBase + replaced.size() > kPlaceholderMax)
                throw Error("chat prompt: too many special-token texts in the messages");
            unicode::append_utf8(out, kPlaceholderBase + uint32_t(replaced.size()));
            replaced.push_back(hit->text);
            i += hit->text.size();
        }
        return out;
    };
    auto walk = [&](auto& self, json::Value& v) -> void {
        if (v.is_string()) v.s = protect(v.s);
        for (json::Value& c : v.items) self(self, c);
    };
    json::Value ctx = context;
    for (size_t k = 0; k < ctx.keys.size(); ++k)
        if (ctx.keys[k] == "messages") walk(walk, ctx.items[k]);
    if (!ctx.get("add_generation_prompt")) {
        json::Value agp;
        agp.kind = json::Value::Kind::Bool;
        put(ctx, "add_generation_prompt", agp);
    }
    if (!ctx.get("bos_token")) put(ctx, "bos_token", jstr(bos_ >= 0 ? tokens_[size_t(bos_)] : ""));
    if (!ctx.get("eos_token")) put(ctx, "eos_token", jstr(eos_ >= 0 ? tokens_[size_t(eos_)] : ""));

    const std::string name = chat_template_source_.empty() ? source_ + ": chat template" : chat_template_source_;
    const std::string rendered = jinja::Template(tmpl, name).render(ctx);
    ChatPrompt p;
    for (size_t i = 0; i < rendered.size();) {
        int len = 1;
        const uint32_t cp = unicode::decode_utf8(rendered, i, &len);
        if (cp >= kPlaceholderBase && cp - kPlaceholderBase < replaced.size()) {
            const std::string& t = replaced[cp - kPlaceholderBase];
            p.literal.emplace_back(p.text.size(), p.text.size() + t.size());
            p.text += t;
        } else {
            p.text.append(rendered, i, size_t(len));
        }
        i += size_t(len);
    }
    return p;
}

Tokenizer::ChatPrompt Tokenizer::render_chat(const std::vector<Message>& msgs, bool add_generation_prompt) const {
    json::Value ctx;
    ctx.kind = json::Value::Kind::Object;
    json::Value list;
    list.kind = json::Value::Kind::Array;
    for (const Message& m : msgs) {
        json::Value o;
        o.kind = json::Value::Kind::Object;
        put(o, "role", jstr(m.role));
        put(o, "content", jstr(m.content));
        list.items.push_back(std::move(o));
    }
    put(ctx, "messages", std::move(list));
    json::Value agp;
    agp.kind = json::Value::Kind::Bool, agp.b = add_generation_prompt;
    put(ctx, "add_generation_prompt", agp);
    return render_chat(ctx);
}

std::string Tokenizer::apply_chat_template(const std::vector<Message>& msgs, bool add_generation_prompt) const {
    return render_chat(msgs, add_generation_prompt).text;
}

std::vector<int32_t> Tokenizer::encode_chat(const std::vector<Message>& msgs, bool add_generation_prompt) const {
    return encode_prompt(render_chat(msgs, add_generation_prompt));
}

std::vector<int32_t> Tokenizer::encode_prompt(const ChatPrompt& p) const {
    std::vector<int32_t> ids = encode(p.text, false, true, p.literal);
    // The template may have written BOS itself (Llama 3: {{ bos_token }}); add it only when it is missing.
    if (add_bos_ && !prefix_.empty() &&
        !(ids.size() >= prefix_.size() && std::equal(prefix_.begin(), prefix_.end(), ids.begin())))
        ids.insert(ids.begin(), prefix_.begin(), prefix_.end());
    return ids;
}

}  // namespace imp
