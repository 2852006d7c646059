#include "profile/profile.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>

#include <toml++/toml.h>

#include "imp/error.h"
#include "imp/registry.h"
#include "model/display_text.h"
#include "model/mapped_file.h"
#include "profile/toml_text_check.h"
#include "runtime/engine.h"

namespace fs = std::filesystem;

namespace imp {

namespace {

// Sections and their keys, in documentation order (configs/README.md); used for "unknown key" messages.
const std::vector<std::pair<std::string, std::vector<std::string>>>& schema() {
    static const std::vector<std::pair<std::string, std::vector<std::string>>> s = {
        {"model", {"path", "formats"}},
        {"plugins", {"load", "paths"}},
        {"runtime", {"executor", "max_seq_len", "prefill_chunk", "cuda_graphs", "kv_dtype", "threads", "max_seqs", "kv_blocks"}},
        {"sampling", {"temperature", "top_k", "top_p", "min_p", "repeat_penalty", "repeat_last_n", "seed"}},
        {"generate", {"prompt", "n_predict", "chat", "system"}},
        {"bench", {"pp", "tg", "reps", "batch", "depth", "mixed", "ablate"}},
        {"server", {"host", "port", "max_queue", "step_tokens", "model_name", "prefix_cache"}},
        {"plugin", {}},  // [plugin.<name>] tables of plugin settings: keys declared by the plugins
    };
    return s;
}

const std::vector<std::string>* section_keys(const std::string& section) {
    for (auto& [name, keys] : schema())
        if (name == section) return &keys;
    return nullptr;
}

std::string join(const std::vector<std::string>& v, const char* sep = ", ") {
    std::string r;
    for (auto& s : v) r += (r.empty() ? "" : sep) + s;
    return r;
}

std::string section_names() {
    std::vector<std::string> n;
    for (auto& [name, _] : schema()) n.push_back(name);
    return join(n);
}

std::string type_name(const toml::node& n) {
    switch (n.type()) {
        case toml::node_type::table: return "table";
        case toml::node_type::array: return "array";
        case toml::node_type::string: return "string";
        case toml::node_type::integer: return "integer";
        case toml::node_type::floating_point: return "float";
        case toml::node_type::boolean: return "boolean";
        case toml::node_type::date: return "date";
        case toml::node_type::time: return "time";
        case toml::node_type::date_time: return "date-time";
        default: return "nothing";
    }
}

// Why an override's text that is a number is no TOML value ("" when it is none): out of range for a 64-bit
// integer or for a float (1e999). TOML reads such text as no value, and the override would become a string.
std::string number_out_of_range(const std::string& text) {
    if (text.empty()) return "";
    char* end = nullptr;
    errno = 0;
    (void)std::strtoll(text.c_str(), &end, 10);
    if (*end == '\0' && errno == ERANGE) return "a 64-bit integer";
    errno = 0;
    const double d = std::strtod(text.c_str(), &end);
    if (*end == '\0' && errno == ERANGE && std::isinf(d)) return "a float";
    return "";
}

// One key being applied: where it came from ("<file>:<line>" or "--set kv"), its full name, its value, the raw
// text of an override (a string key takes it as written), and the directory relative paths resolve against.
struct Item {
    std::string where;
    std::string key;
    const toml::node& node;
    std::optional<std::string> raw;
    std::string base_dir;
    std::string out_of_range{};  // an override's number TOML could not hold: "a float", "a 64-bit integer"

    [[noreturn]] void fail(const std::string& msg) const { throw Error(where + ": " + msg); }
    [[noreturn]] void wrong_type(const char* want, const toml::node& n) const {
        fail("key '" + key + "' must be " + want + ", got " + type_name(n));
    }
    // Where a number is asked for: an override's number that TOML could not hold (it reads as a string) is named.
    void check_number_range() const {
        if (!out_of_range.empty()) fail("key '" + key + "': " + *raw + " is out of range for " + out_of_range);
    }

    int64_t integer(int64_t lo, int64_t hi) const {
        check_number_range();
        if (!node.is_integer()) wrong_type("an integer", node);
        int64_t v = node.as_integer()->get();
        check_range(v, lo, hi);
        return v;
    }
    void check_range(int64_t v, int64_t lo, int64_t hi) const {
        if (v >= lo && v <= hi) return;
        if (hi == std::numeric_limits<int64_t>::max())
            fail("key '" + key + "' must be >= " + std::to_string(lo) + ", got " + std::to_string(v));
        fail("key '" + key + "' must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " +
             std::to_string(v));
    }
    // A number (integers widen). `lo_open`: the lower bound itself is not allowed.
    double number(double lo, bool lo_open, double hi) const {
        double v;
        if (node.is_integer())
            v = static_cast<double>(node.as_integer()->get());
        else if (node.is_floating_point())
            v = node.as_floating_point()->get();
        else {
            check_number_range();
            wrong_type("a number", node);
        }
        if (!std::isfinite(v)) fail("key '" + key + "' must be a finite number, got " + setting_text(v));
        bool ok = (lo_open ? v > lo : v >= lo) && v <= hi;
        if (!ok) {
            if (std::isinf(hi))
                fail("key '" + key + "' must be " + (lo_open ? "> " : ">= ") + setting_text(lo) + ", got " +
                     setting_text(v));
            fail("key '" + key + "' must be in " + (lo_open ? "(" : "[") + setting_text(lo) + ", " +
                 setting_text(hi) + "], got " + setting_text(v));
        }
        return v;
    }
    bool boolean() const {
        if (!node.is_boolean()) wrong_type("a boolean (true or false)", node);
        return node.as_boolean()->get();
    }
    std::string string() const {
        if (node.is_string()) return node.as_string()->get();
        if (raw) return *raw;
        wrong_type("a string", node);
    }
    std::string choice(const std::vector<std::string>& allowed) const {
        std::string v;
        if (node.is_boolean() && std::count(allowed.begin(), allowed.end(), "true"))
            v = node.as_boolean()->get() ? "true" : "false";
        else
            v = string();
        if (std::find(allowed.begin(), allowed.end(), v) == allowed.end())
            fail("key '" + key + "' must be one of " + join(allowed) + ", got " + imp::quoted(v));
        return v;
    }
    std::vector<std::string> strings() const {
        if (!node.is_array()) wrong_type("an array of strings", node);
        std::vector<std::string> out;
        for (auto& el : *node.as_array()) {
            if (!el.is_string()) fail("key '" + key + "' must be an array of strings, got an element of type " +
                                      type_name(el));
            out.push_back(el.as_string()->get());
        }
        return out;
    }
    // An array of integers, or one integer for a one-element list.
    std::vector<int64_t> integers(int64_t lo, int64_t hi) const {
        if (node.is_integer()) return {integer(lo, hi)};
        check_number_range();
        if (!node.is_array()) wrong_type("an array of integers", node);
        std::vector<int64_t> out;
        for (auto& el : *node.as_array()) {
            if (!el.is_integer()) fail("key '" + key + "' must be an array of integers, got an element of type " +
                                       type_name(el));
            int64_t v = el.as_integer()->get();
            if (v < lo || v > hi)
                fail("key '" + key + "' elements must be in [" + std::to_string(lo) + ", " + std::to_string(hi) +
                     "], got " + std::to_string(v));
            out.push_back(v);
        }
        return out;
    }
    std::string path() const {
        std::string s = string();
        if (s.empty()) fail("key '" + key + "' must not be empty");
        return resolve(s);
    }
    std::string resolve(const std::string& s) const {
        fs::path p(s);
        if (p.is_absolute() || base_dir.empty()) return s;
        return (fs::path(base_dir) / p).lexically_normal().string();
    }
};

bool valid_plugin_name(const std::string& n);

// A plugin setting's value: a TOML boolean, integer, float or string (an override's bare word is a string).
SettingValue setting_value(const Item& it) {
    const toml::node& n = it.node;
    if (n.is_boolean()) return n.as_boolean()->get();
    if (n.is_integer()) return int64_t(n.as_integer()->get());
    if (n.is_floating_point()) return double(n.as_floating_point()->get());
    it.check_number_range();
    if (n.is_string()) return std::string(n.as_string()->get());
    it.wrong_type("a boolean, integer, float or string", n);
}

void add_plugin_setting(Profile& p, const std::string& plugin, const std::string& key, const Item& it) {
    if (!valid_plugin_name(plugin))
        it.fail("[plugin." + plugin + "]: '" + plugin + "' is not a plugin name (letters, digits, _)");
    if (key.empty()) it.fail("[plugin." + plugin + "]: empty key");
    p.plugin_settings.push_back({plugin, key, setting_value(it), it.where});
}

constexpr int64_t kIntMax = std::numeric_limits<int64_t>::max();
constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();
constexpr double kInf = std::numeric_limits<double>::infinity();

bool valid_plugin_name(const std::string& n) {
    return !n.empty() && std::all_of(n.begin(), n.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
    });
}

bool valid_format_name(const std::string& n) {
    return !n.empty() && std::all_of(n.begin(), n.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
               c == '.';
    });
}

// Sets one key. `section` and `name` are known to be in the schema.
void apply_key(Profile& p, const std::string& section, const std::string& name, const Item& it) {
    p.set_at[it.key] = it.where;
    if (section == "model") {
        if (name == "path") {
            p.model.path = it.path();
        } else {
            std::vector<std::string> out;
            for (auto& s : it.strings()) {
                if (!valid_format_name(s))
                    it.fail("key 'model.formats' has an invalid format name '" + s +
                            "' (letters, digits, '_', '-' and '.' only, e.g. ggml)");
                if (std::find(out.begin(), out.end(), s) != out.end())
                    it.fail("key 'model.formats' names format '" + s + "' twice");
                out.push_back(s);
            }
            p.model.formats = out;
        }
    } else if (section == "plugins") {
        auto list = it.strings();
        std::vector<std::string> out;
        for (auto& s : list) {
            if (name == "load") {
                if (!valid_plugin_name(s))
                    it.fail("key 'plugins.load' has an invalid plugin name '" + s +
                            "' (letters, digits and '_' only, e.g. arch_llama)");
                if (std::find(out.begin(), out.end(), s) == out.end()) out.push_back(s);
            } else {
                if (s.empty()) it.fail("key 'plugins.paths' has an empty path");
                out.push_back(it.resolve(s));
            }
        }
        (name == "load" ? p.plugins.load : p.plugins.paths) = out;
    } else if (section == "runtime") {
        auto& r = p.runtime;
        if (name == "executor") r.executor = it.choice({"auto", "cpu", "cuda"});
        else if (name == "max_seq_len") r.max_seq_len = it.integer(1, int64_t(1) << 24);
        else if (name == "prefill_chunk") r.prefill_chunk = it.integer(1, int64_t(1) << 20);
        else if (name == "cuda_graphs") r.cuda_graphs = it.boolean();
        else if (name == "kv_dtype") r.kv_dtype = it.choice({"auto", "bf16", "fp8", "f32"});
        else if (name == "threads") r.threads = static_cast<int>(it.integer(0, 4096));
        else if (name == "max_seqs") r.max_seqs = static_cast<int>(it.integer(1, 4096));
        else if (name == "kv_blocks") r.kv_blocks = it.integer(0, int64_t(1) << 26);
    } else if (section == "sampling") {
        auto& s = p.sampling;
        if (name == "temperature") s.temperature = it.number(0, false, kInf);
        else if (name == "top_k") s.top_k = it.integer(0, kInt32Max);  // the sampler's int32: never wraps
        else if (name == "top_p") s.top_p = it.number(0, true, 1);
        else if (name == "min_p") s.min_p = it.number(0, false, 1);
        // at least 0.001: a smaller divisor overflows the penalized logits to inf (the float penalty of 1e-40 made every
        // probability NaN)
        else if (name == "repeat_penalty") s.repeat_penalty = it.number(kMinRepeatPenalty, false, kInf);
        else if (name == "repeat_last_n") s.repeat_last_n = it.integer(0, kMaxRepeatLastN);
        else if (name == "seed") s.seed = static_cast<uint64_t>(it.integer(0, kIntMax));
    } else if (section == "generate") {
        auto& g = p.generate;
        if (name == "prompt") g.prompt = checked_utf8(it.where + ": key 'generate.prompt'", it.string());
        else if (name == "n_predict") g.n_predict = it.integer(1, kIntMax);
        else if (name == "chat") g.chat = it.choice({"auto", "true", "false"});
        else if (name == "system") g.system = checked_utf8(it.where + ": key 'generate.system'", it.string());
    } else if (section == "bench") {
        auto& b = p.bench;
        if (name == "pp") b.pp = it.integers(1, int64_t(1) << 24);
        else if (name == "tg") b.tg = it.integers(1, int64_t(1) << 24);
        else if (name == "reps") b.reps = it.integer(1, 1000000);
        else if (name == "batch") b.batch = it.integers(1, 4096);
        else if (name == "depth") b.depth = it.integers(0, int64_t(1) << 24);
        else if (name == "mixed") b.mixed = it.integers(1, int64_t(1) << 24);
        else if (name == "ablate") {
            b.ablate = it.strings();
            for (const auto& a : b.ablate)
                if (a.empty()) it.fail("key 'bench.ablate' must not list an empty kernel name");
        }
    } else if (section == "server") {
        auto& v = p.server;
        if (name == "host") v.host = it.string();
        else if (name == "port") v.port = it.integer(0, 65535);
        else if (name == "max_queue") v.max_queue = it.integer(0, 1000000);
        else if (name == "step_tokens") v.step_tokens = it.integer(0, int64_t(1) << 20);
        else if (name == "model_name") v.model_name = it.string();
        else if (name == "prefix_cache") v.prefix_cache = it.boolean();
    }
}

std::string unknown_key_message(const std::string& section, const std::string& name) {
    auto* keys = section_keys(section);
    return "unknown key '" + section + "." + name + "' (keys in [" + section + "]: " + join(*keys) + ")";
}

std::string where_of(const std::string& file, const toml::source_region& src) {
    return file + ":" + std::to_string(src.begin.line);
}

void apply_table(Profile& p, const toml::table& root, const std::string& file, const std::string& base_dir) {
    for (auto&& [k, v] : root) {
        const std::string section(k.str());
        const std::string where = where_of(file, k.source());
        auto* keys = section_keys(section);
        if (!keys) {
            if (v.is_table())
                throw Error(where + ": unknown section [" + section + "] (sections: " + section_names() + ")");
            throw Error(where + ": unknown key '" + section + "' (sections: " + section_names() + ")");
        }
        if (!v.is_table()) throw Error(where + ": key '" + section + "' must be a table, got " + type_name(v));
        if (section == "plugin") {
            for (auto&& [k2, v2] : *v.as_table()) {
                const std::string plugin(k2.str());
                const std::string where2 = where_of(file, k2.source());
                if (!v2.is_table())
                    throw Error(where2 + ": [plugin] holds one table per plugin ([plugin." + plugin +
                                "]); '" + plugin + "' is not a table (got " + type_name(v2) + ")");
                for (auto&& [k3, v3] : *v2.as_table()) {
                    const std::string name(k3.str());
                    add_plugin_setting(p, plugin, name,
                                       Item{where_of(file, k3.source()), "plugin." + plugin + "." + name, v3,
                                            std::nullopt, base_dir});
                }
            }
            continue;
        }
        for (auto&& [k2, v2] : *v.as_table()) {
            const std::string name(k2.str());
            const std::string where2 = where_of(file, k2.source());
            if (std::find(keys->begin(), keys->end(), name) == keys->end())
                throw Error(where2 + ": " + unknown_key_message(section, name));
            apply_key(p, section, name, Item{where2, section + "." + name, v2, std::nullopt, base_dir});
        }
    }
}

std::string trim(const std::string& s) {
    const char* ws = " \t\r\n";
    size_t b = s.find_first_not_of(ws);
    if (b == std::string::npos) return "";
    return s.substr(b, s.find_last_not_of(ws) - b + 1);
}

}  // namespace

Profile default_profile() { return Profile{}; }

std::string Profile::where(const std::string& key) const {
    auto it = set_at.find(key);
    return it != set_at.end() ? it->second : file.empty() ? "--model" : file;
}

Profile load_profile(const std::string& path, const std::vector<std::string>& overrides) {
    std::error_code ec;
    if (!fs::exists(path, ec)) throw Error(path + ": no such profile");
    if (fs::is_directory(path, ec)) throw Error(path + ": is a directory, not a profile");
    const std::string text = read_regular_file(path);  // a FIFO is refused, not waited on

    if (auto bad = find_toml_unsafe_char(text))
        throw Error(path + ":" + std::to_string(bad->line) + ":" + std::to_string(bad->column) + ": " + bad->message);
    toml::table root;
    try {
        root = toml::parse(std::string_view(text), std::string_view(path));
    } catch (const toml::parse_error& e) {
        const auto& b = e.source().begin;
        std::string desc(e.description());
        std::replace(desc.begin(), desc.end(), '\n', ' ');
        throw Error(path + ":" + std::to_string(b.line) + ":" + std::to_string(b.column) + ": " + desc);
    }
    Profile p;
    p.file = path;
    apply_table(p, root, path, fs::path(path).parent_path().string());
    for (auto& kv : overrides) apply_override(p, kv);
    return p;
}

void apply_override(Profile& p, const std::string& kv, bool literal) {
    const std::string where = "--set " + display_text(kv);
    size_t eq = kv.find('=');
    if (eq == std::string::npos) throw Error(where + ": expected section.key=value");
    const std::string key = trim(kv.substr(0, eq));
    const std::string value = kv.substr(eq + 1);
    size_t dot = key.find('.');
    if (dot == std::string::npos) {
        if (key == "plugin") throw Error(where + ": expected plugin.<name>.<key>=value");
        if (section_keys(key)) throw Error(where + ": expected section.key=value, e.g. " + key + "." +
                                           section_keys(key)->front() + "=...");
        throw Error(where + ": unknown key '" + key + "' (sections: " + section_names() + ")");
    }
    const std::string section = key.substr(0, dot), name = key.substr(dot + 1);
    auto* keys = section_keys(section);
    if (!keys) throw Error(where + ": unknown section [" + section + "] (sections: " + section_names() + ")");
    const size_t dot2 = name.find('.');
    if (section == "plugin" && dot2 == std::string::npos)
        throw Error(where + ": expected plugin.<name>.<key>=value");
    if (section != "plugin" && std::find(keys->begin(), keys->end(), name) == keys->end())
        throw Error(where + ": " + unknown_key_message(section, name));

    // The value as TOML; when it is not one value (a bare word, a sentence), it is a string.
    std::optional<toml::table> parsed;
    try {
        const std::string doc = "v = " + value + "\n";
        if (!literal && !find_toml_unsafe_char(doc))  // else not a TOML value: the text below
            parsed = toml::parse(std::string_view(doc), std::string_view("--set"));
    } catch (const toml::parse_error&) {
        parsed.reset();
    }
    const toml::node* node = nullptr;
    if (parsed && parsed->size() == 1) node = parsed->get("v");
    // Not one TOML value: a string, as written (a prompt keeps its trailing space).
    toml::value<std::string> text_node(value);
    if (!node) node = &text_node;
    const std::string range = node == &text_node && !literal ? number_out_of_range(trim(value)) : "";
    // A string key takes the text as written whatever TOML read in it (42, [1, 2]); a quoted TOML string is its
    // content.
    const std::optional<std::string> raw =
        node != &text_node && node->is_string() ? std::optional<std::string>() : std::optional<std::string>(value);
    if (section == "plugin") {
        add_plugin_setting(p, name.substr(0, dot2), name.substr(dot2 + 1), Item{where, key, *node, raw, "", range});
        if (raw) p.plugin_settings.back().text = *raw;
        return;
    }
    apply_key(p, section, name, Item{where, key, *node, raw, "", range});
}

void check_model_path(const Profile& p) {
    const std::string where = p.file.empty() ? "--model" : p.file;
    if (p.model.path.empty()) throw Error(where + ": [model] path is not set");
    std::error_code ec;
    if (!fs::exists(p.model.path, ec)) throw Error(where + ": [model] path '" + p.model.path + "' does not exist");
}

void apply_plugin_settings(const Profile& p, Registry& reg) {
    for (const auto& ps : p.plugin_settings) {
        try {
            // An override's bare 16 for a string setting (router_cluster = "16") is the text it wrote.
            SettingValue v = ps.value;
            if (!ps.text.empty() && !std::holds_alternative<std::string>(v))
                for (const SettingSpec& spec : reg.settings(ps.plugin).specs())
                    if (spec.key == ps.key && std::holds_alternative<std::string>(spec.default_value)) v = ps.text;
            reg.configure(ps.plugin, ps.key, v);
        } catch (const Error& e) {
            throw Error(ps.where + ": " + e.what());
        }
    }
}

}  // namespace imp
