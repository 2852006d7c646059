// imp SDK: typed metadata values (GGUF key/values, or a Hugging Face config.json flattened to dotted keys).
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "imp/error.h"
#include "imp/export.h"

namespace imp {

struct MetaValue;
using MetaArray = std::vector<MetaValue>;

// One metadata value. `type` keeps the file's own type name ("u32", "f32", "str", "arr[str]", "bool", "json-num" ...)
// for `imp inspect`; the variant holds the value widened to int64/uint64/double/bool/string/array.
struct IMP_API MetaValue {
    std::variant<int64_t, uint64_t, double, bool, std::string, std::shared_ptr<MetaArray>> v;
    std::string type;

    bool is_int() const { return v.index() == 0 || v.index() == 1; }
    bool is_float() const { return v.index() == 2; }
    bool is_number() const { return v.index() <= 2; }
    bool is_bool() const { return v.index() == 3; }
    bool is_string() const { return v.index() == 4; }
    bool is_array() const { return v.index() == 5; }
    // Accessors throw imp::Error naming `key` when the type does not fit (key is for the message only).
    int64_t as_int(const std::string& key) const;
    double as_float(const std::string& key) const;  // ints widen
    bool as_bool(const std::string& key) const;
    const std::string& as_string(const std::string& key) const;
    const MetaArray& as_array(const std::string& key) const;
    std::string to_display(size_t max_array = 8) const;  // short human form for `imp inspect`
};

class IMP_API Metadata {
public:
    void set(const std::string& key, MetaValue v) { kv_[key] = std::move(v); }
    const MetaValue* find(const std::string& key) const {
        auto it = kv_.find(key);
        return it == kv_.end() ? nullptr : &it->second;
    }
    bool has(const std::string& key) const { return find(key) != nullptr; }
    // Required getters throw imp::Error("<source>: missing metadata key 'k'").
    int64_t get_int(const std::string& key) const;
    double get_float(const std::string& key) const;
    bool get_bool(const std::string& key) const;
    const std::string& get_string(const std::string& key) const;
    const MetaArray& get_array(const std::string& key) const;
    // Optional getters return the fallback when the key is absent (still throw on a wrong type).
    int64_t get_int(const std::string& key, int64_t fallback) const;
    double get_float(const std::string& key, double fallback) const;
    bool get_bool(const std::string& key, bool fallback) const;
    std::string get_string(const std::string& key, const std::string& fallback) const;

    const std::map<std::string, MetaValue>& all() const { return kv_; }
    std::string source;  // file name used in error messages

private:
    std::map<std::string, MetaValue> kv_;
};

// Runs f(); an imp::Error it throws (a MetaValue accessor's names only the key) gets "<file>: " in front.
template <class F>
auto in_file(const std::string& file, F&& f) -> decltype(f()) {
    try {
        return f();
    } catch (const Error& e) {
        throw Error(file + ": " + e.what());
    }
}

}  // namespace imp
