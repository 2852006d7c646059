// imp SDK: per-plugin settings. A plugin declares its settings (kernel variants, thresholds) in its register
// function with Registry::add_setting; the user sets them in the profile's `[plugin.<name>]` table (or with
// `--set plugin.<name>.<key>=<value>`); the engine checks every value against the declaration before anything
// loads (unknown key, wrong type, value outside the choices or range: one error naming the profile line and key)
// and hands each plugin its resolved Settings: a format through WeightRequest::settings, an arch or layer through
// Registry::settings(plugin). The core's own switches live in the same scheme under the name "core".
// Nothing in a kernel reads the environment: a variant is a value a Weight or Layer keeps from its Settings.
#pragma once
#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <variant>
#include <vector>

#include "imp/export.h"

namespace imp {

// The value of one setting: its alternative is the setting's type (boolean, integer, float, string).
using SettingValue = std::variant<bool, int64_t, double, std::string>;

IMP_API const char* setting_type_name(const SettingValue& v);  // "boolean", "integer", "float", "string"
IMP_API std::string setting_text(const SettingValue& v);       // TOML spelling: true, 8, 0.5, "dp4a"

// One declared setting. The type is the type of default_value. choices: the allowed strings (empty: any);
// min/max: the inclusive range of an integer or float.
struct SettingSpec {
    std::string key;
    SettingValue default_value;
    std::string doc;  // one line, for `imp plugins` and `imp plan`
    std::vector<std::string> choices;
    double min = -std::numeric_limits<double>::infinity();
    double max = std::numeric_limits<double>::infinity();
};

// One plugin's settings: every declared key with its value (the profile's, else the default).
class IMP_API Settings {
public:
    Settings() = default;
    explicit Settings(std::string plugin) : plugin_(std::move(plugin)) {}

    const std::string& plugin() const { return plugin_; }
    const std::vector<SettingSpec>& specs() const { return specs_; }
    // Declares a key (Registry::add_setting calls this); a second declaration of the same key is an error.
    void declare(SettingSpec spec);
    // Sets a declared key, checking type, choices and range. An integer is accepted for a float setting.
    // Throws imp::Error "[plugin.<p>] <problem>": unknown key (naming the known ones), wrong type, bad value.
    void set(const std::string& key, const SettingValue& v);
    bool is_set(const std::string& key) const;  // set from the profile (not the default)

    // Typed reads; a key that was never declared, or read as another type, is a programming error (imp::Error).
    bool get_bool(const std::string& key) const;
    int64_t get_int(const std::string& key) const;
    double get_float(const std::string& key) const;
    const std::string& get_string(const std::string& key) const;
    const SettingValue& get(const std::string& key) const;

private:
    const SettingSpec& spec(const std::string& key) const;
    std::string plugin_;
    std::vector<SettingSpec> specs_;
    std::map<std::string, SettingValue> values_;
    std::map<std::string, bool> from_profile_;
};

}  // namespace imp
