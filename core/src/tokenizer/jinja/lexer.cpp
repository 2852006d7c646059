#include "tokenizer/jinja/lexer.h"

#include <algorithm>
#include <cctype>

#include "imp/error.h"

namespace imp::jinja {

namespace {

class Splitter {
public:
    Splitter(const std::string& src, const std::string& name) : src_(src), name_(name) {}
    std::vector<Chunk> run() {
        split();
        return std::move(chunks_);
    }

private:
    [[noreturn]] void fail(int line, const std::string& what) const {
        throw Error(name_ + ":" + std::to_string(line) + ": " + what);
    }

    void split() {
        size_t i = 0;
        int line = 1;
        std::string text;
        int text_line = 1;
        bool trim_next = false;  // '-' on the previous tag's end, or trim_blocks newline
        bool trim_nl = false;
        auto line_at = [&](size_t a, size_t b) {
            for (size_t k = a; k < b; ++k) line += src_[k] == '\n';
        };
        while (i < src_.size()) {
            size_t open = src_.find('{', i);
            while (open != std::string::npos && open + 1 < src_.size() && src_[open + 1] != '{' &&
                   src_[open + 1] != '%' && src_[open + 1] != '#')
                open = src_.find('{', open + 1);
            if (open == std::string::npos || open + 1 >= src_.size()) open = src_.size();
            std::string t = src_.substr(i, open - i);
            if (trim_next) {
                size_t k = 0;
                while (k < t.size() && std::isspace(static_cast<unsigned char>(t[k]))) ++k;
                t.erase(0, k);
            } else if (trim_nl && !t.empty() && t[0] == '\n') {
                t.erase(0, 1);
            } else if (trim_nl && t.size() > 1 && t[0] == '\r' && t[1] == '\n') {
                t.erase(0, 2);
            }
            line_at(i, open);
            if (open >= src_.size()) {
                push_text(t, text_line);
                break;
            }
            const char kind = src_[open + 1];
            const bool minus = open + 2 < src_.size() && src_[open + 2] == '-';
            const bool plus = open + 2 < src_.size() && src_[open + 2] == '+';
            if (minus) {
                size_t e = t.size();
                while (e > 0 && std::isspace(static_cast<unsigned char>(t[e - 1]))) --e;
                t.erase(e);
            } else if (kind != '{' && !plus) {  // lstrip_blocks: blanks from the line start (in the source) to a tag
                size_t b = open;
                while (b > 0 && (src_[b - 1] == ' ' || src_[b - 1] == '\t')) --b;
                if (b == 0 || src_[b - 1] == '\n') {
                    size_t e = t.size();
                    while (e > 0 && (t[e - 1] == ' ' || t[e - 1] == '\t')) --e;
                    t.erase(e);
                }
            }
            push_text(t, text_line);
            const std::string close = kind == '{' ? "}}" : kind == '%' ? "%}" : "#}";
            const size_t start = open + 2 + (minus || plus ? 1 : 0);
            size_t end = kind == '#' ? src_.find(close, start) : find_close(start, close);
            if (end == std::string::npos) fail(line, std::string("unclosed '{") + kind + "'");
            const bool rminus = end > start && src_[end - 1] == '-';
            const std::string inner = src_.substr(start, end - start - (rminus ? 1 : 0));
            const int tag_line = line;
            line_at(open, end + 2);
            if (kind == '{')
                chunks_.push_back({Chunk::Var, inner, tag_line});
            else if (kind == '%')
                chunks_.push_back({Chunk::Block, inner, tag_line});
            trim_next = rminus;
            trim_nl = kind != '{';  // trim_blocks
            i = end + 2;
            text_line = line;
            // {% raw %}: the text up to {% endraw %} is literal.
            if (kind == '%' && first_word(inner) == "raw") {
                chunks_.pop_back();
                const size_t r = src_.find("endraw", i);
                if (r == std::string::npos) fail(tag_line, "unclosed 'raw'");
                size_t ropen = src_.rfind("{%", r);
                std::string raw = src_.substr(i, ropen - i);
                if (ropen + 2 < src_.size() && src_[ropen + 2] == '-') {
                    size_t e = raw.size();
                    while (e > 0 && std::isspace(static_cast<unsigned char>(raw[e - 1]))) --e;
                    raw.erase(e);
                }
                push_text(raw, text_line);
                const size_t rend = src_.find("%}", r);
                if (rend == std::string::npos) fail(tag_line, "unclosed 'endraw'");
                trim_next = src_[rend - 1] == '-';
                line_at(i, rend + 2);
                i = rend + 2;
                text_line = line;
            }
        }
    }
    void push_text(const std::string& t, int line) {
        if (t.empty()) return;
        chunks_.push_back({Chunk::Text, t, line});
    }
    // The end of a tag, skipping string literals.
    size_t find_close(size_t from, const std::string& close) const {
        for (size_t k = from; k + 1 < src_.size(); ++k) {
            const char c = src_[k];
            if (c == '\'' || c == '"') {
                for (++k; k < src_.size() && src_[k] != c; ++k)
                    if (src_[k] == '\\') ++k;
                continue;
            }
            if (src_.compare(k, 2, close) == 0) return k;
        }
        return std::string::npos;
    }

    const std::string& src_;
    std::string name_;
    std::vector<Chunk> chunks_;
};

}  // namespace

std::string first_word(const std::string& s) {
    size_t b = 0;
    while (b < s.size() && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
    size_t e = b;
    while (e < s.size() && (std::isalnum(static_cast<unsigned char>(s[e])) || s[e] == '_')) ++e;
    return s.substr(b, e - b);
}

// --- template -> chunks ---

std::vector<Chunk> split_template(const std::string& src, const std::string& name) { return Splitter(src, name).run(); }

std::vector<Tok> lex_tag(const std::string& s, int line, const std::string& name) {
    std::vector<Tok> toks_;
    auto fail = [&](int l, const std::string& what) { throw Error(name + ":" + std::to_string(l) + ": " + what); };
    for (size_t i = 0; i < s.size();) {
        const char c = s[i];
        if (c == '\n') ++line;
        if (std::isspace(static_cast<unsigned char>(c))) {
            ++i;
            continue;
        }
        if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
            size_t e = i;
            while (e < s.size() && (std::isalnum(static_cast<unsigned char>(s[e])) || s[e] == '_')) ++e;
            toks_.push_back({Tok::Name, s.substr(i, e - i), line});
            i = e;
        } else if (std::isdigit(static_cast<unsigned char>(c))) {
            size_t e = i;
            bool flt = false;
            while (e < s.size() && (std::isdigit(static_cast<unsigned char>(s[e])) || s[e] == '_')) ++e;
            auto digit = [&](size_t k) { return k < s.size() && std::isdigit(static_cast<unsigned char>(s[k])); };
            if (s.size() > e && s[e] == '.' && digit(e + 1)) {
                flt = true;
                ++e;
                while (digit(e) || (e < s.size() && s[e] == '_')) ++e;
            }
            // An exponent, as Jinja's float literals have it: 1e15, 2.5E-3.
            if (e < s.size() && (s[e] == 'e' || s[e] == 'E')) {
                const size_t k = e + 1 + (e + 1 < s.size() && (s[e + 1] == '+' || s[e + 1] == '-'));
                if (digit(k)) {
                    flt = true;
                    e = k;
                    while (digit(e) || (e < s.size() && s[e] == '_')) ++e;
                }
            }
            toks_.push_back({flt ? Tok::Float : Tok::Int, s.substr(i, e - i), line});
            i = e;
        } else if (c == '\'' || c == '"') {
            std::string v;
            size_t k = i + 1;
            for (; k < s.size() && s[k] != c; ++k) {
                if (s[k] == '\\' && k + 1 < s.size()) {
                    const char e = s[++k];
                    v += e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e;
                } else {
                    v += s[k];
                }
            }
            if (k >= s.size()) fail(line, "unterminated string literal");
            toks_.push_back({Tok::Str, v, line});
            i = k + 1;
        } else {
            static const char* const ops[] = {"**", "//", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<",
                                              ">",  "(",  ")",  "[",  "]",  "{",  "}", ",", ".", ":", "|", "="};
            bool ok = false;
            for (const char* op : ops)
                if (s.compare(i, std::char_traits<char>::length(op), op) == 0) {
                    toks_.push_back({Tok::Op, op, line});
                    i += std::char_traits<char>::length(op);
                    ok = true;
                    break;
                }
            if (!ok) fail(line, std::string("unexpected character '") + c + "'");
        }
    }
    toks_.push_back({Tok::End, "", line});
    return toks_;
}

}  // namespace imp::jinja
