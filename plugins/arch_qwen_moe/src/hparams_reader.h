// Reads hyper-parameters from a model file's metadata with the file name in every message (arch_qwen_moe).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "imp/error.h"
#include "imp/metadata.h"

namespace imp::qwen_moe {

struct Reader {
    const Metadata& md;
    std::string file;

    const MetaValue* number(const std::string& key) const {
        const MetaValue* v = md.find(key);  // JSON null is absent (the reader leaves it out)
        if (v && !v->is_number())
            throw Error(file + ": hyper-parameter '" + key + "' is " + v->type + ", expected a number");
        return v;
    }
    int64_t i(const std::string& key) const {
        const MetaValue* v = number(key);
        if (!v) throw Error(file + ": missing hyper-parameter '" + key + "'");
        return v->as_int(key);
    }
    int64_t i(const std::string& key, int64_t fallback) const {
        const MetaValue* v = number(key);
        return v ? v->as_int(key) : fallback;
    }
    double f(const std::string& key) const {
        const MetaValue* v = number(key);
        if (!v) throw Error(file + ": missing hyper-parameter '" + key + "'");
        return v->as_float(key);
    }
    double f(const std::string& key, double fallback) const {
        const MetaValue* v = number(key);
        return v ? v->as_float(key) : fallback;
    }
    bool b(const std::string& key, bool fallback) const {
        const MetaValue* v = md.find(key);
        return v && v->is_bool() ? v->as_bool(key) : fallback;
    }
    std::string s(const std::string& key, const std::string& fallback) const {
        const MetaValue* v = md.find(key);
        return v && v->is_string() ? v->as_string(key) : fallback;
    }
    // An array of integers (absent or JSON null: empty).
    std::vector<int64_t> ints(const std::string& key) const {
        const MetaValue* v = md.find(key);
        std::vector<int64_t> out;
        if (!v || !v->is_array()) return out;
        for (const auto& e : v->as_array(key)) {
            if (!e.is_int()) throw Error(file + ": hyper-parameter '" + key + "' must be a list of integers");
            out.push_back(e.as_int(key));
        }
        return out;
    }
    int64_t positive(const std::string& key, int64_t v) const {
        if (v <= 0) throw Error(file + ": hyper-parameter '" + key + "' must be positive, got " + std::to_string(v));
        return v;
    }
};

}  // namespace imp::qwen_moe
