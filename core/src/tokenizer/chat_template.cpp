// Tokenizer::apply_chat_template: recognises the two prompt formats in use (ChatML and Llama-3 headers) from the
// model's Jinja template text without running Jinja, and reads a literal default system prompt out of it.
#include "imp/error.h"
#include "tokenizer/tokenizer.h"

namespace imp {

namespace {

struct Style {
    const char* turn_start;  // before the role
    const char* role_end;    // between role and content
    const char* turn_end;    // after the content
    const char* marker;      // what identifies the style in a template
};

const Style kChatML = {"<|im_start|>", "\n", "<|im_end|>\n", "<|im_start|>"};
const Style kLlama3 = {"<|start_header_id|>", "<|end_header_id|>\n\n", "<|eot_id|>", "<|start_header_id|>"};

// Reads template text from `pos` as the inside of a Jinja string literal (undoing \n, \t, \\ and quote escapes)
// until `end`; false if the literal closes (an unescaped quote) or a Jinja tag starts before `end` is reached.
bool literal_until(const std::string& t, size_t pos, const std::string& end, std::string* content) {
    content->clear();
    for (size_t i = pos; i < t.size();) {
        if (t.compare(i, end.size(), end) == 0) return true;
        const char c = t[i];
        if (c == '\'' || c == '"') return false;
        if (c == '{' && i + 1 < t.size() && (t[i + 1] == '{' || t[i + 1] == '%')) return false;
        if (c == '\\' && i + 1 < t.size()) {
            const char e = t[i + 1];
            *content += e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e;
            i += 2;
            continue;
        }
        *content += c;
        ++i;
    }
    return false;
}

// A system turn written out in full inside one string literal, e.g. SmolLM2's
// '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n'.
bool default_system(const std::string& t, const Style& st, std::string* out) {
    const std::string head = std::string(st.turn_start) + "system";
    std::string end = st.turn_end;
    end = end.substr(0, end.find('\n'));  // the end marker itself, without its trailing newline
    const std::string sep = st.role_end;
    for (size_t p = t.find(head); p != std::string::npos; p = t.find(head, p + 1)) {
        std::string content;
        if (!literal_until(t, p + head.size(), end, &content)) continue;
        if (content.compare(0, sep.size(), sep) != 0) continue;
        *out = content.substr(sep.size());
        return true;
    }
    return false;
}

std::string trim(const std::string& s) {
    const char* ws = " \t\n\r\f\v";
    const size_t b = s.find_first_not_of(ws);
    if (b == std::string::npos) return "";
    return s.substr(b, s.find_last_not_of(ws) - b + 1);
}

}  // namespace

std::string Tokenizer::apply_chat_template(const std::vector<Message>& msgs, bool add_generation_prompt) const {
    const std::string& t = chat_template_;
    const Style* st = nullptr;
    if (t.find(kChatML.marker) != std::string::npos) st = &kChatML;
    else if (t.find(kLlama3.marker) != std::string::npos) st = &kLlama3;
    else if (find_token("<|im_start|>") >= 0) st = &kChatML;
    else throw Error(source_ + ": chat template is neither ChatML nor Llama-3 style and the vocab has no <|im_start|>");
    const bool trim_content = st == &kLlama3 && (t.find("| trim") != std::string::npos ||
                                                 t.find("|trim") != std::string::npos);

    std::string out;
    auto turn = [&](const std::string& role, const std::string& content) {
        out += st->turn_start;
        out += role;
        out += st->role_end;
        out += trim_content ? trim(content) : content;
        out += st->turn_end;
    };
    std::string sys;
    if ((msgs.empty() || msgs[0].role != "system") && default_system(t, *st, &sys)) turn("system", sys);
    for (const Message& m : msgs) turn(m.role, m.content);
    if (add_generation_prompt) {
        out += st->turn_start;
        out += "assistant";
        out += st->role_end;
    }
    return out;
}

}  // namespace imp
