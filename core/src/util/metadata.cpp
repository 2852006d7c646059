#include "imp/metadata.h"

#include <cstdio>

#include "imp/error.h"
#include "model/display_text.h"

namespace imp {

namespace {
const char* kind_of(const MetaValue& v) {
    switch (v.v.index()) {
        case 0: case 1: return "integer";
        case 2: return "float";
        case 3: return "bool";
        case 4: return "string";
        default: return "array";
    }
}
[[noreturn]] void wrong(const std::string& key, const MetaValue& v, const char* want) {
    throw Error("metadata key '" + key + "' is " + (v.type.empty() ? kind_of(v) : v.type) + ", expected " + want);
}
}  // namespace

int64_t MetaValue::as_int(const std::string& key) const {
    if (auto p = std::get_if<int64_t>(&v)) return *p;
    if (auto p = std::get_if<uint64_t>(&v)) {
        if (*p > uint64_t(INT64_MAX))
            throw Error("metadata key '" + key + "' is " + std::to_string(*p) + ", out of range (at most " +
                        std::to_string(INT64_MAX) + ")");
        return int64_t(*p);
    }
    if (auto p = std::get_if<bool>(&v)) return *p ? 1 : 0;
    wrong(key, *this, "an integer");
}
double MetaValue::as_float(const std::string& key) const {
    if (auto p = std::get_if<double>(&v)) return *p;
    if (auto p = std::get_if<int64_t>(&v)) return double(*p);
    if (auto p = std::get_if<uint64_t>(&v)) return double(*p);
    wrong(key, *this, "a number");
}
bool MetaValue::as_bool(const std::string& key) const {
    if (auto p = std::get_if<bool>(&v)) return *p;
    if (is_int()) return as_int(key) != 0;
    wrong(key, *this, "a bool");
}
const std::string& MetaValue::as_string(const std::string& key) const {
    if (auto p = std::get_if<std::string>(&v)) return *p;
    wrong(key, *this, "a string");
}
const MetaArray& MetaValue::as_array(const std::string& key) const {
    if (auto p = std::get_if<std::shared_ptr<MetaArray>>(&v)) return **p;
    wrong(key, *this, "an array");
}

std::string MetaValue::to_display(size_t max_array) const {
    switch (v.index()) {
        case 0: return std::to_string(std::get<int64_t>(v));
        case 1: return std::to_string(std::get<uint64_t>(v));
        case 2: {
            char b[64];
            std::snprintf(b, sizeof b, "%.9g", std::get<double>(v));
            return b;
        }
        case 3: return std::get<bool>(v) ? "true" : "false";
        case 4: return "\"" + display_text(std::get<std::string>(v), 80) + "\"";  // control characters escaped
        default: {
            const auto& a = *std::get<std::shared_ptr<MetaArray>>(v);
            std::string o = "[";
            for (size_t i = 0; i < a.size() && i < max_array; ++i) o += (i ? ", " : "") + a[i].to_display(max_array);
            if (a.size() > max_array) o += ", ... (" + std::to_string(a.size()) + " items)";
            return o + "]";
        }
    }
}

namespace {
const MetaValue& need(const Metadata& m, const std::string& key) {
    const MetaValue* v = m.find(key);
    if (!v) throw Error("missing metadata key '" + key + "'");  // typed() adds the file
    return *v;
}
// A wrong type names the file too (MetaValue alone knows only the key).
template <class F>
auto typed(const Metadata& m, F&& f) -> decltype(f()) {
    return in_file(m.source.empty() ? std::string("model") : m.source, f);
}
}  // namespace

int64_t Metadata::get_int(const std::string& k) const { return typed(*this, [&] { return need(*this, k).as_int(k); }); }
double Metadata::get_float(const std::string& k) const { return typed(*this, [&] { return need(*this, k).as_float(k); }); }
bool Metadata::get_bool(const std::string& k) const { return typed(*this, [&] { return need(*this, k).as_bool(k); }); }
const std::string& Metadata::get_string(const std::string& k) const {
    return typed(*this, [&]() -> const std::string& { return need(*this, k).as_string(k); });
}
const MetaArray& Metadata::get_array(const std::string& k) const {
    return typed(*this, [&]() -> const MetaArray& { return need(*this, k).as_array(k); });
}
int64_t Metadata::get_int(const std::string& k, int64_t d) const {
    return typed(*this, [&] { auto v = find(k); return v ? v->as_int(k) : d; });
}
double Metadata::get_float(const std::string& k, double d) const {
    return typed(*this, [&] { auto v = find(k); return v ? v->as_float(k) : d; });
}
bool Metadata::get_bool(const std::string& k, bool d) const {
    return typed(*this, [&] { auto v = find(k); return v ? v->as_bool(k) : d; });
}
std::string Metadata::get_string(const std::string& k, const std::string& d) const {
    return typed(*this, [&] { auto v = find(k); return v ? v->as_string(k) : d; });
}

}  // namespace imp
