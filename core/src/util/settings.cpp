// Per-plugin settings (imp/settings.h): declaration, checked assignment, typed reads.
#include "imp/settings.h"

#include <charconv>
#include <cmath>

#include "imp/error.h"

namespace imp {

const char* setting_type_name(const SettingValue& v) {
    switch (v.index()) {
        case 0: return "boolean";
        case 1: return "integer";
        case 2: return "float";
        default: return "string";
    }
}

std::string setting_text(const SettingValue& v) {
    if (auto* b = std::get_if<bool>(&v)) return *b ? "true" : "false";
    if (auto* i = std::get_if<int64_t>(&v)) return std::to_string(*i);
    if (auto* d = std::get_if<double>(&v)) {  // the shortest text that reads back as the same double
        char b[32];
        return std::string(b, std::to_chars(b, b + sizeof b, *d).ptr);
    }
    return "\"" + std::get<std::string>(v) + "\"";
}

namespace {
std::string with_article(const char* type) { return std::string(type[0] == 'i' ? "an " : "a ") + type; }

std::string join(const std::vector<std::string>& v) {
    std::string r;
    for (auto& s : v) r += (r.empty() ? "" : ", ") + s;
    return r;
}
}  // namespace

void Settings::declare(SettingSpec spec) {
    const std::string where = "[plugin." + plugin_ + "] ";
    if (spec.key.empty()) throw Error(where + "declares a setting with an empty key");
    if (values_.count(spec.key)) throw Error(where + "declares setting '" + spec.key + "' twice");
    if (auto* s = std::get_if<std::string>(&spec.default_value); s && !spec.choices.empty()) {
        bool ok = false;
        for (auto& c : spec.choices) ok = ok || c == *s;
        if (!ok) throw Error(where + "setting '" + spec.key + "': default \"" + *s + "\" is not one of its choices");
    }
    values_[spec.key] = spec.default_value;
    specs_.push_back(std::move(spec));
}

const SettingSpec& Settings::spec(const std::string& key) const {
    for (auto& s : specs_)
        if (s.key == key) return s;
    std::vector<std::string> known;
    for (auto& s : specs_) known.push_back(s.key);
    throw Error("[plugin." + plugin_ + "] unknown key '" + key + "' (" +
                (known.empty() ? std::string("plugin '" + plugin_ + "' declares no settings")
                               : "keys: " + join(known)) +
                ")");
}

void Settings::set(const std::string& key, const SettingValue& v) {
    const SettingSpec& s = spec(key);
    const std::string where = "[plugin." + plugin_ + "] key '" + key + "'";
    SettingValue val = v;
    if (s.default_value.index() == 2 && v.index() == 1) val = double(std::get<int64_t>(v));
    if (val.index() != s.default_value.index())
        throw Error(where + " must be " + with_article(setting_type_name(s.default_value)) + ", got " +
                    setting_type_name(v));
    if (auto* str = std::get_if<std::string>(&val); str && !s.choices.empty()) {
        bool ok = false;
        for (auto& c : s.choices) ok = ok || c == *str;
        if (!ok) throw Error(where + " must be one of " + join(s.choices) + ", got \"" + *str + "\"");
    }
    double num = NAN;
    if (auto* i = std::get_if<int64_t>(&val)) num = double(*i);
    if (auto* d = std::get_if<double>(&val)) {
        if (!std::isfinite(*d)) throw Error(where + " must be a finite number, got " + setting_text(val));
        num = *d;
    }
    if (!std::isnan(num) && (num < s.min || num > s.max)) {
        throw Error(where + " must be in [" + setting_text(s.min) + ", " + setting_text(s.max) + "], got " +
                    setting_text(val));
    }
    values_[key] = std::move(val);
    from_profile_[key] = true;
}

bool Settings::is_set(const std::string& key) const {
    spec(key);
    auto it = from_profile_.find(key);
    return it != from_profile_.end() && it->second;
}

const SettingValue& Settings::get(const std::string& key) const {
    spec(key);
    return values_.at(key);
}

namespace {
template <class T>
const T& typed(const Settings& s, const std::string& key, const char* want) {
    const SettingValue& v = s.get(key);
    if (auto* p = std::get_if<T>(&v)) return *p;
    throw Error("[plugin." + s.plugin() + "] setting '" + key + "' is " + with_article(setting_type_name(v)) + ", read as " +
                with_article(want));
}
}  // namespace

bool Settings::get_bool(const std::string& key) const { return typed<bool>(*this, key, "boolean"); }
int64_t Settings::get_int(const std::string& key) const { return typed<int64_t>(*this, key, "integer"); }
double Settings::get_float(const std::string& key) const { return typed<double>(*this, key, "float"); }
const std::string& Settings::get_string(const std::string& key) const {
    return typed<std::string>(*this, key, "string");
}

}  // namespace imp
