// Test helpers for the tokenizer tests: the fixtures in tests/fixtures/tokenizer/ (metadata-only GGUFs, read with
// imp::open_model) and their JSON reference files (read with the project parser, model/json.h).
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
#include "model/json.h"
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

// A JSON tree the tests index into by key.
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

// The fixtures' JSON through the project's parser (model/json.h), as the plain tree the tests index into.
inline Json to_json(const json::Value& v) {
    Json j;
    switch (v.kind) {
        case json::Value::Kind::Null: break;
        case json::Value::Kind::Bool: j.kind = Json::Bool, j.b = v.b; break;
        case json::Value::Kind::Int: j.kind = Json::Number, j.num = v.i; break;
        case json::Value::Kind::UInt: j.kind = Json::Number, j.num = int64_t(v.u); break;
        case json::Value::Kind::Float: j.kind = Json::Number, j.num = int64_t(v.f); break;
        case json::Value::Kind::String: j.kind = Json::String, j.s = v.s; break;
        case json::Value::Kind::Array:
            j.kind = Json::Array;
            for (const auto& e : v.items) j.arr.push_back(to_json(e));
            break;
        case json::Value::Kind::Object:
            j.kind = Json::Object;
            for (size_t i = 0; i < v.keys.size(); ++i) j.obj[v.keys[i]] = to_json(v.items[i]);
            break;
    }
    return j;
}

inline Json load_fixture_json(const std::string& name) {
    const std::string text = read_file(fixture_path(name));
    return to_json(json::parse(text, name));
}

}  // namespace imp::test
