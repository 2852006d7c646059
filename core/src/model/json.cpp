#include "model/json.h"

#include <charconv>
#include <cstdio>
#include <unordered_set>

#include "imp/error.h"

namespace imp::json {

bool Value::as_u64(uint64_t& out) const {
    if (kind == Kind::UInt) {
        out = u;
        return true;
    }
    if (kind == Kind::Int && i >= 0) {
        out = uint64_t(i);
        return true;
    }
    return false;
}

const Value* Value::get(std::string_view key) const {
    if (kind != Kind::Object) return nullptr;
    for (size_t k = 0; k < keys.size(); ++k)
        if (keys[k] == key) return &items[k];
    return nullptr;
}

namespace {

class Parser {
public:
    Parser(std::string_view t, const std::string& src, Limits lim) : t_(t), src_(src), lim_(lim) {}

    Value document() {
        Value v = value(0);
        ws();
        if (pos_ != t_.size()) fail("unexpected trailing characters after the JSON value");
        return v;
    }

private:
    [[noreturn]] void fail(const std::string& what) const {
        throw Error(src_ + ": invalid JSON: " + what + " at byte " + std::to_string(pos_));
    }
    bool eof() const { return pos_ >= t_.size(); }
    char peek() const { return eof() ? '\0' : t_[pos_]; }
    void ws() {
        while (!eof() && (t_[pos_] == ' ' || t_[pos_] == '\t' || t_[pos_] == '\n' || t_[pos_] == '\r')) ++pos_;
    }
    void expect(char c, const char* what) {
        if (peek() != c || eof()) fail(std::string("expected ") + what);
        ++pos_;
    }
    void literal(std::string_view word) {
        if (t_.substr(pos_, word.size()) != word) fail("invalid literal");
        pos_ += word.size();
    }

    Value value(size_t depth) {
        if (++count_ > lim_.max_values) fail("more than " + std::to_string(lim_.max_values) + " values");
        ws();
        if (eof()) fail("unexpected end of input");
        Value v;
        char c = t_[pos_];
        if (c == '{' || c == '[') {
            if (depth >= lim_.max_depth) fail("nesting deeper than " + std::to_string(lim_.max_depth) + " levels");
            if (c == '{')
                object(v, depth);
            else
                array(v, depth);
        } else if (c == '"') {
            v.kind = Value::Kind::String;
            v.s = string();
        } else if (c == 't') {
            literal("true"), v.kind = Value::Kind::Bool, v.b = true;
        } else if (c == 'f') {
            literal("false"), v.kind = Value::Kind::Bool, v.b = false;
        } else if (c == 'n') {
            literal("null");
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            number(v);
        } else {
            fail(std::string("unexpected character '") + c + "'");
        }
        return v;
    }

    void object(Value& v, size_t depth) {
        v.kind = Value::Kind::Object;
        ++pos_;
        ws();
        if (peek() == '}' && !eof()) {
            ++pos_;
            return;
        }
        std::unordered_set<std::string> seen;
        for (;;) {
            ws();
            if (peek() != '"' || eof()) fail("expected a string key");
            size_t key_at = pos_;
            std::string key = string();
            if (!seen.insert(key).second) {
                pos_ = key_at;
                fail("duplicate key \"" + key + "\"");
            }
            ws();
            expect(':', "':' after an object key");
            v.items.push_back(value(depth + 1));
            v.keys.push_back(std::move(key));
            ws();
            if (peek() == ',' && !eof()) {
                ++pos_;
                continue;
            }
            expect('}', "',' or '}' in an object");
            return;
        }
    }

    void array(Value& v, size_t depth) {
        v.kind = Value::Kind::Array;
        ++pos_;
        ws();
        if (peek() == ']' && !eof()) {
            ++pos_;
            return;
        }
        for (;;) {
            v.items.push_back(value(depth + 1));
            ws();
            if (peek() == ',' && !eof()) {
                ++pos_;
                continue;
            }
            expect(']', "',' or ']' in an array");
            return;
        }
    }

    void number(Value& v) {
        size_t start = pos_;
        bool is_float = false;
        if (peek() == '-') ++pos_;
        if (peek() == '0') {
            ++pos_;
        } else if (peek() >= '1' && peek() <= '9') {
            while (peek() >= '0' && peek() <= '9') ++pos_;
        } else {
            fail("invalid number");
        }
        if (peek() == '.') {
            is_float = true;
            ++pos_;
            if (!(peek() >= '0' && peek() <= '9')) fail("invalid number: digit expected after '.'");
            while (peek() >= '0' && peek() <= '9') ++pos_;
        }
        if (peek() == 'e' || peek() == 'E') {
            is_float = true;
            ++pos_;
            if (peek() == '+' || peek() == '-') ++pos_;
            if (!(peek() >= '0' && peek() <= '9')) fail("invalid number: digit expected in exponent");
            while (peek() >= '0' && peek() <= '9') ++pos_;
        }
        const char* b = t_.data() + start;
        const char* e = t_.data() + pos_;
        if (!is_float) {
            if (*b == '-') {
                if (std::from_chars(b, e, v.i).ec == std::errc()) {
                    v.kind = Value::Kind::Int;
                    return;
                }
            } else {
                if (std::from_chars(b, e, v.u).ec == std::errc()) {
                    if (v.u <= uint64_t(INT64_MAX))
                        v.kind = Value::Kind::Int, v.i = int64_t(v.u), v.u = 0;
                    else
                        v.kind = Value::Kind::UInt;
                    return;
                }
            }
            // integer too large for 64 bits: keep it as a float
        }
        auto r = std::from_chars(b, e, v.f);
        if (r.ec != std::errc() || r.ptr != e) {
            pos_ = start;
            fail("number out of range");
        }
        v.kind = Value::Kind::Float;
    }

    unsigned hex4() {
        if (t_.size() - pos_ < 4) fail("truncated \\u escape");
        unsigned cp = 0;
        for (int k = 0; k < 4; ++k) {
            char c = t_[pos_++];
            cp <<= 4;
            if (c >= '0' && c <= '9')
                cp |= unsigned(c - '0');
            else if (c >= 'a' && c <= 'f')
                cp |= unsigned(c - 'a' + 10);
            else if (c >= 'A' && c <= 'F')
                cp |= unsigned(c - 'A' + 10);
            else
                fail("invalid hex digit in \\u escape");
        }
        return cp;
    }

    static void put_utf8(std::string& o, unsigned cp) {
        if (cp < 0x80) {
            o += char(cp);
        } else if (cp < 0x800) {
            o += char(0xC0 | (cp >> 6)), o += char(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            o += char(0xE0 | (cp >> 12)), o += char(0x80 | ((cp >> 6) & 0x3F)), o += char(0x80 | (cp & 0x3F));
        } else {
            o += char(0xF0 | (cp >> 18)), o += char(0x80 | ((cp >> 12) & 0x3F));
            o += char(0x80 | ((cp >> 6) & 0x3F)), o += char(0x80 | (cp & 0x3F));
        }
    }

    // Validates one UTF-8 sequence starting at pos_ (first byte >= 0x80) and appends it.
    void utf8(std::string& o) {
        auto byte = [&](size_t k) { return uint8_t(t_[pos_ + k]); };
        uint8_t c = byte(0);
        size_t n;
        unsigned cp;
        if (c >= 0xC2 && c <= 0xDF)
            n = 2, cp = c & 0x1F;
        else if (c >= 0xE0 && c <= 0xEF)
            n = 3, cp = c & 0x0F;
        else if (c >= 0xF0 && c <= 0xF4)
            n = 4, cp = c & 0x07;
        else
            fail("invalid UTF-8 byte");
        if (t_.size() - pos_ < n) fail("truncated UTF-8 sequence");
        for (size_t k = 1; k < n; ++k) {
            if ((byte(k) & 0xC0) != 0x80) fail("invalid UTF-8 continuation byte");
            cp = (cp << 6) | (byte(k) & 0x3F);
        }
        if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10FFFF) fail("overlong or out-of-range UTF-8");
        if (cp >= 0xD800 && cp <= 0xDFFF) fail("UTF-8 encoded surrogate");
        o.append(t_.data() + pos_, n);
        pos_ += n;
    }

    std::string string() {
        ++pos_;  // opening quote
        std::string o;
        for (;;) {
            if (eof()) fail("unterminated string");
            uint8_t c = uint8_t(t_[pos_]);
            if (c == '"') {
                ++pos_;
                return o;
            }
            if (c < 0x20) fail("control character in string");
            if (c >= 0x80) {
                utf8(o);
                continue;
            }
            if (c != '\\') {
                o += char(c);
                ++pos_;
                continue;
            }
            ++pos_;
            if (eof()) fail("unterminated escape");
            char e = t_[pos_++];
            switch (e) {
                case '"': o += '"'; break;
                case '\\': o += '\\'; break;
                case '/': o += '/'; break;
                case 'b': o += '\b'; break;
                case 'f': o += '\f'; break;
                case 'n': o += '\n'; break;
                case 'r': o += '\r'; break;
                case 't': o += '\t'; break;
                case 'u': {
                    unsigned cp = hex4();
                    if (cp >= 0xDC00 && cp <= 0xDFFF) fail("lone low surrogate in \\u escape");
                    if (cp >= 0xD800 && cp <= 0xDBFF) {
                        if (t_.substr(pos_, 2) != "\\u") fail("high surrogate not followed by a low surrogate");
                        pos_ += 2;
                        unsigned lo = hex4();
                        if (lo < 0xDC00 || lo > 0xDFFF) fail("high surrogate not followed by a low surrogate");
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    }
                    put_utf8(o, cp);
                    break;
                }
                default: --pos_; fail(std::string("invalid escape '\\") + e + "'");
            }
        }
    }

    std::string_view t_;
    const std::string& src_;
    Limits lim_;
    size_t pos_ = 0;
    size_t count_ = 0;
};

void dump_string(std::string& o, const std::string& s) {
    o += '"';
    for (unsigned char c : s) {
        if (c == '"' || c == '\\') {
            o += '\\', o += char(c);
        } else if (c < 0x20) {
            char b[8];
            std::snprintf(b, sizeof b, "\\u%04x", c);
            o += b;
        } else {
            o += char(c);
        }
    }
    o += '"';
}

void dump_to(std::string& o, const Value& v) {
    switch (v.kind) {
        case Value::Kind::Null: o += "null"; break;
        case Value::Kind::Bool: o += v.b ? "true" : "false"; break;
        case Value::Kind::Int: o += std::to_string(v.i); break;
        case Value::Kind::UInt: o += std::to_string(v.u); break;
        case Value::Kind::Float: {
            char b[64];
            auto r = std::to_chars(b, b + sizeof b, v.f);
            o.append(b, r.ptr);
            break;
        }
        case Value::Kind::String: dump_string(o, v.s); break;
        case Value::Kind::Array:
            o += '[';
            for (size_t k = 0; k < v.items.size(); ++k) {
                if (k) o += ',';
                dump_to(o, v.items[k]);
            }
            o += ']';
            break;
        case Value::Kind::Object:
            o += '{';
            for (size_t k = 0; k < v.items.size(); ++k) {
                if (k) o += ',';
                dump_string(o, v.keys[k]);
                o += ':';
                dump_to(o, v.items[k]);
            }
            o += '}';
            break;
    }
}

}  // namespace

Value parse(std::string_view text, const std::string& source, Limits limits) {
    return Parser(text, source, limits).document();
}

std::string dump(const Value& v) {
    std::string o;
    dump_to(o, v);
    return o;
}

}  // namespace imp::json
