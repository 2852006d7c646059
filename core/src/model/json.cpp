// imp::json::parse over nlohmann-json's SAX parser (strict RFC 8259: UTF-8 validated, surrogates paired, no
// NaN/Infinity, no trailing data). The SAX handler builds imp::json::Value itself so that it can keep object key
// order, reject duplicate keys, and stop at the depth and value-count limits before any memory is spent on them.
#include "model/json.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
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

const char* type_name(const Value& v) {
    switch (v.kind) {
        case Value::Kind::Null: return "null";
        case Value::Kind::Bool: return "bool";
        case Value::Kind::Int:
        case Value::Kind::UInt: return "int";
        case Value::Kind::Float: return "float";
        case Value::Kind::String: return "str";
        case Value::Kind::Array: return "arr";
        case Value::Kind::Object: break;
    }
    return "json";
}

const Value* Value::get(std::string_view key) const {
    if (kind != Kind::Object) return nullptr;
    for (size_t k = 0; k < keys.size(); ++k)
        if (keys[k] == key) return &items[k];
    return nullptr;
}

namespace {

using nlohmann::json;

// nlohmann's "[json.exception.parse_error.101] parse error at line 1, column 2: syntax error while parsing value -
// invalid literal; last read: '...'; expected end of input" -> "unexpected trailing characters after the JSON value".
// The input echo ("last read") is dropped: it may hold raw binary bytes.
std::string plain_message(std::string m) {
    if (size_t p = m.find("] "); p != std::string::npos) m = m.substr(p + 2);
    if (m.rfind("parse error", 0) == 0)
        if (size_t p = m.find(": "); p != std::string::npos) m = m.substr(p + 2);
    if (m.rfind("syntax error while parsing", 0) == 0)
        if (size_t p = m.find(" - "); p != std::string::npos) m = m.substr(p + 3);
    const bool trailing = m.find("; expected end of input") != std::string::npos;
    if (size_t p = m.find("; last read"); p != std::string::npos) m = m.substr(0, p);
    if (trailing) return "unexpected trailing characters after the JSON value";
    static const std::pair<const char*, const char*> kPlain[] = {
        {"ill-formed UTF-8", "invalid UTF-8 byte"},
        {"surrogate U+D800..U+DBFF must be followed", "high surrogate not followed by a low surrogate"},
        {"surrogate U+DC00..U+DFFF must follow", "lone low surrogate in \\u escape"},
        {"control character", "control character in string"},
        {"number overflow", "number out of range"},
        {"'\\u' must be followed by 4 hex digits", "invalid hex digit in \\u escape"},
        {"forbidden character after backslash", "invalid escape"},
        {"missing closing quote", "unterminated string"},
    };
    for (const auto& [lib, plain] : kPlain)
        if (m.find(lib) != std::string::npos) return plain;
    return m;
}

// Builds a Value tree; returning false stops the parse (the reason is kept in `error`).
class Builder : public nlohmann::json_sax<json> {
public:
    explicit Builder(Limits lim) : lim_(lim) {}
    Value root;
    std::string error;       // set when this handler stopped the parse
    std::string lib_error;   // nlohmann's parse error, without its "[json.exception...]" prefix
    size_t lib_byte = 0;

    bool null() override { return leaf(Value{}); }
    bool boolean(bool b) override {
        Value v;
        v.kind = Value::Kind::Bool, v.b = b;
        return leaf(std::move(v));
    }
    bool number_integer(number_integer_t x) override {
        Value v;
        v.kind = Value::Kind::Int, v.i = x;
        return leaf(std::move(v));
    }
    bool number_unsigned(number_unsigned_t x) override {
        Value v;
        if (x <= uint64_t(INT64_MAX))
            v.kind = Value::Kind::Int, v.i = int64_t(x);
        else
            v.kind = Value::Kind::UInt, v.u = x;
        return leaf(std::move(v));
    }
    bool number_float(number_float_t x, const string_t&) override {
        Value v;
        v.kind = Value::Kind::Float, v.f = x;
        return leaf(std::move(v));
    }
    bool string(string_t& s) override {
        Value v;
        v.kind = Value::Kind::String, v.s = std::move(s);
        return leaf(std::move(v));
    }
    bool binary(binary_t&) override { return stop("binary values are not JSON"); }
    bool start_object(std::size_t) override { return open(Value::Kind::Object); }
    bool key(string_t& k) override {
        Frame& f = stack_.back();
        if (!f.seen.insert(k).second) return stop("duplicate key \"" + k + "\"");
        f.v->keys.push_back(std::move(k));
        return true;
    }
    bool end_object() override { return close(); }
    bool start_array(std::size_t) override { return open(Value::Kind::Array); }
    bool end_array() override { return close(); }
    bool parse_error(std::size_t byte, const std::string&, const nlohmann::detail::exception& e) override {
        lib_error = plain_message(e.what());
        lib_byte = byte > 0 ? byte - 1 : 0;
        return false;
    }

private:
    struct Frame {
        Value* v;
        std::unordered_set<std::string> seen;
    };
    bool stop(std::string why) {
        error = std::move(why);
        return false;
    }
    bool count() {
        if (++count_ > lim_.max_values) return stop("more than " + std::to_string(lim_.max_values) + " values");
        return true;
    }
    Value* slot() {
        if (stack_.empty()) return &root;
        Value* p = stack_.back().v;
        p->items.emplace_back();
        return &p->items.back();
    }
    bool leaf(Value v) {
        if (!count()) return false;
        *slot() = std::move(v);
        return true;
    }
    bool open(Value::Kind k) {
        if (!count()) return false;
        if (stack_.size() >= lim_.max_depth)
            return stop("nesting deeper than " + std::to_string(lim_.max_depth) + " levels");
        Value* v = slot();
        v->kind = k;
        stack_.push_back(Frame{v, {}});
        return true;
    }
    bool close() {
        stack_.pop_back();
        return true;
    }

    Limits lim_;
    size_t count_ = 0;
    std::vector<Frame> stack_;  // pointers stay valid: a parent's items only grow after its child is closed
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
    Builder b(limits);
    bool ok = json::sax_parse(text.begin(), text.end(), &b, json::input_format_t::json, true, false);
    if (!ok) {
        if (!b.error.empty()) throw Error(source + ": invalid JSON: " + b.error);
        if (b.lib_error.empty()) b.lib_error = "parse stopped";
        throw Error(source + ": invalid JSON: " + b.lib_error + " at byte " + std::to_string(b.lib_byte));
    }
    return std::move(b.root);
}

std::string dump(const Value& v) {
    std::string o;
    dump_to(o, v);
    return o;
}

}  // namespace imp::json
