#include "plugin/loader.h"

#include <dlfcn.h>

#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <mutex>
#include <set>

#include <boost/dll/runtime_symbol_info.hpp>
#include <boost/dll/shared_library.hpp>

#include "imp/error.h"
#include "model/display_text.h"
#include "plugin/elf_check.h"

namespace fs = std::filesystem;

namespace imp {

namespace {

// Smallest descriptor a plugin of ABI 4.x may have: every field of ABI 4.0 (the descriptor is unchanged since 2.0). Fields added in later minors go at the
// end and are read only when struct_size covers them.
constexpr uint32_t kMinDescriptorSize = offsetof(PluginDescriptor, provides) + sizeof(const char*);
// struct_size, abi_major, abi_minor: the part every ABI major keeps, needed to read the version at all.
constexpr uint32_t kVersionFieldsSize = offsetof(PluginDescriptor, kind);

// Every library ever opened, by canonical path. Never destroyed, so never unloaded, not even at exit (objects and
// kernels made by plugins may be destroyed after static destructors run).
struct LibraryTable {
    std::mutex mu;
    std::map<std::string, std::unique_ptr<boost::dll::shared_library>> libs;
};
LibraryTable& library_table() {
    static LibraryTable* t = new LibraryTable;
    return *t;
}

std::string file_name(const std::string& path) { return fs::path(path).filename().string(); }

std::string canonical_path(const std::string& path) {
    std::error_code ec;
    auto p = fs::weakly_canonical(fs::absolute(path, ec), ec);
    return ec ? path : p.string();
}

std::string join(const std::vector<std::string>& v, const char* sep) {
    std::string r;
    for (auto& s : v) r += (r.empty() ? "" : sep) + s;
    return r;
}

// Opens (or finds already open) the library at `path`; throws "<path>: cannot be loaded: <dlerror>".
boost::dll::shared_library& open_library(const std::string& path) {
    auto& t = library_table();
    std::lock_guard<std::mutex> lock(t.mu);
    std::string key = canonical_path(path);
    auto it = t.libs.find(key);
    if (it != t.libs.end()) return *it->second;
    check_plugin_file(path);  // a truncated or foreign file can crash dlopen itself
    auto lib = std::make_unique<boost::dll::shared_library>();
    std::error_code ec;
    dlerror();  // clear any stale message
    // rtld_now: an unresolved symbol is reported here, with its name, rather than crashing later.
    lib->load(fs::path(key), ec, boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local);
    if (ec || !lib->is_loaded()) {
        const char* why = dlerror();
        throw Error(path + ": cannot be loaded: " + (why ? std::string(why) : ec.message()));
    }
    auto& ref = *lib;
    t.libs.emplace(key, std::move(lib));
    return ref;
}

// Reads and checks the descriptor of an opened library; throws one sentence naming the file on failure.
PluginInfo check_descriptor(boost::dll::shared_library& lib, const std::string& path) {
    if (!lib.has("imp_plugin_descriptor"))
        throw Error(path + ": not an imp plugin (no imp_plugin_descriptor export)");
    // Plain extern "C" symbols (IMP_PLUGIN in imp/abi.h): the descriptor object and the register function.
    const PluginDescriptor* d = &lib.get<const PluginDescriptor>("imp_plugin_descriptor");
    if (d->struct_size < kVersionFieldsSize)
        throw Error(path + ": plugin descriptor is " + std::to_string(d->struct_size) +
                    " bytes, too small to hold an ABI version (at least " + std::to_string(kVersionFieldsSize) +
                    ")");
    if (d->abi_major != kAbiMajor || d->abi_minor > kAbiMinor)
        throw Error(path + ": ABI " + std::to_string(d->abi_major) + "." + std::to_string(d->abi_minor) +
                    " required, host provides " + std::to_string(kAbiMajor) + "." + std::to_string(kAbiMinor));
    if (d->struct_size < kMinDescriptorSize)
        throw Error(path + ": plugin descriptor is " + std::to_string(d->struct_size) + " bytes, ABI " +
                    std::to_string(d->abi_major) + "." + std::to_string(d->abi_minor) + " needs at least " +
                    std::to_string(kMinDescriptorSize));
    if (!d->name || !d->version || !d->build_key)
        throw Error(path + ": plugin descriptor lacks its " +
                    std::string(!d->name ? "name" : !d->version ? "version" : "build key"));
    const std::string host_key = host_build_key();
    if (host_key != d->build_key)
        throw Error(path + ": built with " + d->build_key + ", host is " + host_key);
    const std::string expected = plugin_name_from_file(path);
    if (expected != d->name)
        throw Error(path + ": descriptor names plugin '" + d->name + "', so the file must be named libimp_" +
                    d->name + ".so");
    if (d->kind < static_cast<uint32_t>(PluginKind::Arch) || d->kind > static_cast<uint32_t>(PluginKind::Other))
        throw Error(path + ": unknown plugin kind " + std::to_string(d->kind) +
                    " (expected 1 arch, 2 quant, 3 other)");
    if (!lib.has("imp_plugin_register"))
        throw Error(path + ": not an imp plugin (no imp_plugin_register export)");

    PluginInfo info;
    info.name = d->name;
    info.version = d->version;
    info.path = canonical_path(path);
    info.build_key = d->build_key;
    info.provides = d->provides ? d->provides : "";
    info.kind = static_cast<PluginKind>(d->kind);
    info.abi_major = d->abi_major;
    info.abi_minor = d->abi_minor;
    return info;
}

bool is_file(const fs::path& p) {
    std::error_code ec;
    return fs::is_regular_file(p, ec);
}

// libimp_*.so files of one directory, sorted by file name.
std::vector<fs::path> plugin_files(const std::string& dir) {
    std::vector<fs::path> r;
    std::error_code ec;
    fs::directory_iterator it(dir, ec), end;
    for (; !ec && it != end; it.increment(ec)) {
        const fs::path p = it->path();
        if (!plugin_name_from_file(p.string()).empty() && is_file(p)) r.push_back(p);
    }
    std::sort(r.begin(), r.end());
    return r;
}

void trim(std::string& s) {
    const char* ws = " \t";
    s.erase(0, s.find_first_not_of(ws));
    auto e = s.find_last_not_of(ws);
    s.erase(e == std::string::npos ? 0 : e + 1);
}

bool provides_arch(const std::string& provides, const std::string& arch) {
    for (auto& p : parse_provides(provides))
        if (p == "arch:" + arch) return true;
    return false;
}

}  // namespace

std::string host_build_key() { return IMP_BUILD_KEY; }

const char* plugin_kind_name(PluginKind k) {
    switch (k) {
        case PluginKind::Arch: return "arch";
        case PluginKind::Quant: return "quant";
        case PluginKind::Other: return "other";
    }
    return "unknown";
}

std::vector<std::string> plugin_search_dirs(const std::vector<std::string>& profile_paths) {
    std::vector<std::string> dirs;
    std::set<std::string> seen;
    auto add = [&](const std::string& d) {
        if (d.empty()) return;
        std::string n = fs::path(d).lexically_normal().string();
        if (n.size() > 1 && n.back() == '/') n.pop_back();
        if (seen.insert(n).second) dirs.push_back(n);
    };
    for (auto& p : profile_paths) add(p);
    if (const char* env = std::getenv("IMP_PLUGIN_PATH")) {
        std::string s = env;
        size_t start = 0;
        while (start <= s.size()) {
            size_t colon = s.find(':', start);
            if (colon == std::string::npos) colon = s.size();
            add(s.substr(start, colon - start));
            start = colon + 1;
        }
    }
    std::error_code ec;
    fs::path exe = boost::dll::program_location(ec);
    if (!ec) add((exe.parent_path().parent_path() / "lib" / "imp" / "plugins").string());
    return dirs;
}

std::vector<std::string> parse_provides(const std::string& provides) {
    std::vector<std::string> out;
    size_t start = 0;
    while (start <= provides.size()) {
        size_t semi = provides.find(';', start);
        if (semi == std::string::npos) semi = provides.size();
        std::string group = provides.substr(start, semi - start);
        start = semi + 1;
        size_t colon = group.find(':');
        if (colon == std::string::npos) continue;
        std::string what = group.substr(0, colon);
        trim(what);
        std::string list = group.substr(colon + 1);
        size_t s = 0;
        while (s <= list.size()) {
            size_t comma = list.find(',', s);
            if (comma == std::string::npos) comma = list.size();
            std::string item = list.substr(s, comma - s);
            trim(item);
            if (!what.empty() && !item.empty()) out.push_back(what + ":" + item);
            s = comma + 1;
        }
    }
    return out;
}

std::string plugin_name_from_file(const std::string& path) {
    const std::string f = file_name(path);
    const std::string pre = "libimp_", suf = ".so";
    if (f.size() <= pre.size() + suf.size() || f.compare(0, pre.size(), pre) != 0 ||
        f.compare(f.size() - suf.size(), suf.size(), suf) != 0)
        return "";
    return f.substr(pre.size(), f.size() - pre.size() - suf.size());
}

PluginLoader::PluginLoader(Registry& reg, std::vector<std::string> dirs) : reg_(reg), dirs_(std::move(dirs)) {}

const PluginInfo& PluginLoader::load(const std::string& name) {
    if (auto it = loaded_.find(name); it != loaded_.end()) return it->second;
    return load_file(find(name));
}

std::string PluginLoader::find(const std::string& name) const {
    if (auto it = loaded_.find(name); it != loaded_.end()) return it->second.path;
    bool valid = !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
    });
    if (!valid) throw Error("plugin name '" + name + "' is invalid (letters, digits and '_' only)");
    for (auto& d : dirs_) {
        fs::path candidate = fs::path(d) / ("libimp_" + name + ".so");
        if (is_file(candidate)) return candidate.string();
    }
    std::set<std::string> avail;
    for (auto& d : dirs_)
        for (auto& f : plugin_files(d)) avail.insert(plugin_name_from_file(f.string()));
    throw Error("plugin '" + name + "' not found; searched: " + (dirs_.empty() ? "no directories" : join(dirs_, ", ")) +
                "; available: " + (avail.empty() ? "none" : join({avail.begin(), avail.end()}, ", ")));
}

const PluginInfo& PluginLoader::load_file(const std::string& path) {
    const std::string name = plugin_name_from_file(path);
    if (name.empty()) throw Error(path + ": not a plugin file name (expected libimp_<name>.so)");
    if (!is_file(path)) throw Error(path + ": no such plugin file");
    const std::string canon = canonical_path(path);
    if (auto it = loaded_.find(name); it != loaded_.end()) {
        if (it->second.path == canon) return it->second;
        throw Error("plugin '" + name + "' is already loaded from " + it->second.path + ", not loading " + canon);
    }
    auto& lib = open_library(path);
    PluginInfo info = check_descriptor(lib, path);
    auto& reg_fn = lib.get<RegisterFn>("imp_plugin_register");
    reg_.set_current_plugin(info.name);
    try {
        reg_fn(reg_);
    } catch (const std::exception& e) {
        reg_.set_current_plugin("core");
        throw Error(path + ": register function failed: " + e.what());
    } catch (...) {
        reg_.set_current_plugin("core");
        throw Error(path + ": register function failed with an unknown exception");
    }
    reg_.set_current_plugin("core");
    order_.push_back(info.name);
    return loaded_.emplace(info.name, std::move(info)).first->second;
}

std::vector<PluginInfo> PluginLoader::loaded() const {
    std::vector<PluginInfo> r;
    for (auto& n : order_) r.push_back(loaded_.at(n));
    return r;
}

std::vector<PluginLoader::Found> PluginLoader::scan() const {
    std::vector<Found> out;
    std::set<std::string> seen;
    for (auto& d : dirs_) {
        for (auto& f : plugin_files(d)) {
            if (!seen.insert(plugin_name_from_file(f.string())).second) continue;
            Found found;
            found.path = canonical_path(f.string());
            try {
                found.info = check_descriptor(open_library(f.string()), f.string());
            } catch (const Error& e) {
                found.error = e.what();
            }
            out.push_back(std::move(found));
        }
    }
    return out;
}

std::string PluginLoader::plugin_for_architecture(const std::string& arch) const {
    for (auto& n : order_)
        if (provides_arch(loaded_.at(n).provides, arch)) return n;
    for (auto& f : scan())
        if (f.info && provides_arch(f.info->provides, arch)) return f.info->name;
    return "";
}

std::string no_arch_message(const std::string& arch, const PluginLoader& loader) {
    if (arch.empty())
        return "the model names no architecture (no GGUF general.architecture key, no config.json model_type), so "
               "no plugin can be chosen for it";
    std::vector<std::string> names;
    for (auto& p : loader.loaded()) names.push_back(p.name);
    std::string msg = "no loaded plugin handles architecture " + imp::quoted(arch) + " (loaded: " +
                      (names.empty() ? "none" : join(names, ", ")) + ")";
    const std::string p = loader.plugin_for_architecture(arch);
    if (p.empty()) return msg + "; no plugin found provides it";
    if (loader.is_loaded(p)) return msg + "; plugin " + p + " lists it in provides but did not accept the model";
    return msg + "; add " + p + " to [plugins]";
}

}  // namespace imp
