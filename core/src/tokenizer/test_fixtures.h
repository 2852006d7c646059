// Test helpers for the tokenizer tests: the fixtures in tests/fixtures/tokenizer/ (metadata-only GGUFs, read with
// imp::open_model) and a minimal JSON reader for their reference files.
#pragma once
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "imp/metadata.h"
#include "imp/model.h"
#include "tokenizer/unicode.h"

namespace imp::test {

inline std::string read_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw std::runtime_error("cannot open " + path);
    return std::string(std::istreambuf_iterator<char>(f), {});
}

inline std::string fixture_path(const std::string& name) {
    return std::string(IMP_SOURCE_DIR) + "/tests/fixtures/tokenizer/" + name;
}

// The fixtures' metadata through the model reader (imp::open_model), as a model file's would be read.
inline Metadata load_fixture_metadata(const std::string& name) { return open_model(fixture_path(name))->metadata(); }

// JSON subset: objects, arrays, strings (with \u escapes and surrogate pairs), integers, true/false/null.
struct Json {
    enum Kind { Null, Bool, Number, String, Array, Object } kind = Null;
    bool b = false;
    int64_t num = 0;
    std::string s;
    std::vector<Json> arr;
    std::map<std::string, Json> obj;
    const Json& operator[](const std::string& k) const {
        auto it = obj.find(k);
        if (it == obj.end()) throw std::runtime_error("JSON: no key " + k);
        return it->second;
    }
    std::vector<int32_t> ints() const {
        std::vector<int32_t> v;
        for (const Json& j : arr) v.push_back(int32_t(j.num));
        return v;
    }
};

class JsonParser {
public:
    explicit JsonParser(const std::string& text) : t_(text) {}
    Json parse() {
        Json j = value();
        ws();
        if (p_ != t_.size()) fail();
        return j;
    }

private:
    [[noreturn]] void fail() { throw std::runtime_error("JSON: parse error at " + std::to_string(p_)); }
    void ws() {
        while (p_ < t_.size() && std::strchr(" \t\r\n", t_[p_])) ++p_;
    }
    char peek() {
        ws();
        if (p_ >= t_.size()) fail();
        return t_[p_];
    }
    void expect(char c) {
        if (peek() != c) fail();
        ++p_;
    }
    uint32_t hex4() {
        if (p_ + 4 > t_.size()) fail();
        uint32_t v = std::stoul(t_.substr(p_, 4), nullptr, 16);
        p_ += 4;
        return v;
    }
    std::string string() {
        expect('"');
        std::string out;
        while (p_ < t_.size() && t_[p_] != '"') {
            char c = t_[p_++];
            if (c != '\\') {
                out += c;
                continue;
            }
            if (p_ >= t_.size()) fail();
            char e = t_[p_++];
            switch (e) {
                case 'n': out += '\n'; break;
                case 't': out += '\t'; break;
                case 'r': out += '\r'; break;
                case 'b': out += '\b'; break;
                case 'f': out += '\f'; break;
                case 'u': {
                    uint32_t cp = hex4();
                    if (cp >= 0xD800 && cp < 0xDC00 && t_.compare(p_, 2, "\\u") == 0) {
                        p_ += 2;
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (hex4() - 0xDC00);
                    }
                    unicode::append_utf8(out, cp);
                    break;
                }
                default: out += e;
            }
        }
        expect('"');
        return out;
    }
    Json value() {
        Json j;
        const char c = peek();
        if (c == '{') {
            j.kind = Json::Object;
            ++p_;
            if (peek() == '}') return ++p_, j;
            for (;;) {
                std::string k = string();
                expect(':');
                j.obj[k] = value();
                if (peek() == ',') { ++p_; continue; }
                expect('}');
                return j;
            }
        }
        if (c == '[') {
            j.kind = Json::Array;
            ++p_;
            if (peek() == ']') return ++p_, j;
            for (;;) {
                j.arr.push_back(value());
                if (peek() == ',') { ++p_; continue; }
                expect(']');
                return j;
            }
        }
        if (c == '"') {
            j.kind = Json::String;
            j.s = string();
            return j;
        }
        if (t_.compare(p_, 4, "true") == 0) return p_ += 4, j.kind = Json::Bool, j.b = true, j;
        if (t_.compare(p_, 5, "false") == 0) return p_ += 5, j.kind = Json::Bool, j;
        if (t_.compare(p_, 4, "null") == 0) return p_ += 4, j;
        size_t used = 0;
        j.num = std::stoll(t_.substr(p_, 24), &used);
        p_ += used;
        j.kind = Json::Number;
        return j;
    }
    const std::string& t_;
    size_t p_ = 0;
};

inline Json load_fixture_json(const std::string& name) {
    const std::string text = read_file(fixture_path(name));
    return JsonParser(text).parse();
}

}  // namespace imp::test
