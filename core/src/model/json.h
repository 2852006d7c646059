// A strict JSON (RFC 8259) reader for safetensors headers, index.json, config.json and tokenizer files: parsed by
// nlohmann-json, kept as an ordered tree. Integer vs float stay apart (an integer that fits int64/uint64 stays exact),
// object key order is kept, duplicate keys, trailing garbage, invalid UTF-8, lone surrogates, NaN/Infinity and
// nesting past a depth limit are rejected.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "imp/export.h"

namespace imp::json {

struct IMP_API Value {
    enum class Kind : uint8_t { Null, Bool, Int, UInt, Float, String, Array, Object };
    Kind kind = Kind::Null;
    bool b = false;
    int64_t i = 0;                  // Kind::Int
    uint64_t u = 0;                 // Kind::UInt: integers above INT64_MAX
    double f = 0;                   // Kind::Float
    std::string s;                  // Kind::String
    std::vector<Value> items;       // Kind::Array, and the values of Kind::Object
    std::vector<std::string> keys;  // Kind::Object, parallel to items

    bool is_object() const { return kind == Kind::Object; }
    bool is_array() const { return kind == Kind::Array; }
    bool is_string() const { return kind == Kind::String; }
    bool is_integer() const { return kind == Kind::Int || kind == Kind::UInt; }
    // A non-negative integer that fits uint64 (false for floats, even 3.0).
    bool as_u64(uint64_t& out) const;
    // Object member lookup (linear); nullptr if absent or this is not an object.
    const Value* get(std::string_view key) const;
};

struct Limits {
    size_t max_depth = 64;
    size_t max_values = size_t(1) << 22;  // caps memory for adversarial inputs
};

// The value's type as messages and `imp inspect` name it: null, bool, int, float, str, arr, json (an object).
IMP_API const char* type_name(const Value& v);

// Throws imp::Error("<source>: invalid JSON: <problem> at byte N").
IMP_API Value parse(std::string_view text, const std::string& source, Limits limits = {});

// Compact serialization (used to display objects nested in arrays).
IMP_API std::string dump(const Value& v);

}  // namespace imp::json
