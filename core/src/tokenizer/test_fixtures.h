// Test helpers for the tokenizer tests: a minimal GGUF metadata reader (key/values only) for the fixtures in
// tests/fixtures/tokenizer/, and a minimal JSON reader for their reference files.
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

// GGUF v2/v3 key/value section -> imp::Metadata (tensor infos are not read; the fixtures have none).
class GgufMetaReader {
public:
    explicit GgufMetaReader(std::string data) : d_(std::move(data)) {}
    Metadata read(const std::string& source) {
        Metadata md;
        md.source = source;
        if (take(4) != "GGUF") throw std::runtime_error(source + ": not a GGUF file");
        const uint32_t version = pod<uint32_t>();
        if (version < 2) throw std::runtime_error(source + ": GGUF v1 not supported");
        pod<uint64_t>();  // tensor count
        const uint64_t n_kv = pod<uint64_t>();
        for (uint64_t i = 0; i < n_kv; ++i) {
            std::string key = str();
            md.set(key, value(pod<uint32_t>()));
        }
        return md;
    }

private:
    std::string take(size_t n) {
        if (n > d_.size() - p_) throw std::runtime_error("GGUF truncated");
        std::string s = d_.substr(p_, n);
        p_ += n;
        return s;
    }
    template <class T>
    T pod() {
        T v;
        std::memcpy(&v, take(sizeof(T)).data(), sizeof(T));
        return v;
    }
    std::string str() { return take(size_t(pod<uint64_t>())); }
    MetaValue value(uint32_t type) {
        switch (type) {
            case 0: return {uint64_t(pod<uint8_t>()), "u8"};
            case 1: return {int64_t(pod<int8_t>()), "i8"};
            case 2: return {uint64_t(pod<uint16_t>()), "u16"};
            case 3: return {int64_t(pod<int16_t>()), "i16"};
            case 4: return {uint64_t(pod<uint32_t>()), "u32"};
            case 5: return {int64_t(pod<int32_t>()), "i32"};
            case 6: return {double(pod<float>()), "f32"};
            case 7: return {pod<uint8_t>() != 0, "bool"};
            case 8: return {str(), "str"};
            case 9: {
                const uint32_t et = pod<uint32_t>();
                const uint64_t n = pod<uint64_t>();
                auto arr = std::make_shared<MetaArray>();
                arr->reserve(size_t(n));
                for (uint64_t i = 0; i < n; ++i) arr->push_back(value(et));
                return {arr, "arr"};
            }
            case 10: return {pod<uint64_t>(), "u64"};
            case 11: return {pod<int64_t>(), "i64"};
            case 12: return {pod<double>(), "f64"};
            default: throw std::runtime_error("GGUF: bad value type " + std::to_string(type));
        }
    }
    std::string d_;
    size_t p_ = 0;
};

inline Metadata load_fixture_metadata(const std::string& name) {
    return GgufMetaReader(read_file(fixture_path(name))).read(name);
}

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
