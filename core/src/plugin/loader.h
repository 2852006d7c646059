// Plugin loader: finds libimp_<name>.so in the search directories, checks its descriptor (ABI major/minor, build
// key, name, struct size) and only then calls its register function. Libraries stay loaded for the life of the
// process: kernels, CUDA graphs and objects made by a plugin may still reference its code.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "imp/abi.h"
#include "imp/export.h"
#include "imp/registry.h"

namespace imp {

struct PluginInfo {
    std::string name, version, path, build_key, provides;
    PluginKind kind = PluginKind::Other;
    uint32_t abi_major = 0, abi_minor = 0;
};

// The build key this host was compiled with (compiler, C++ library ABI, CUDA version and architectures, SDK
// version); a plugin's must equal it.
IMP_API std::string host_build_key();

// "arch", "quant" or "other".
IMP_API const char* plugin_kind_name(PluginKind k);

// Search directories in order: the profile's paths, $IMP_PLUGIN_PATH (colon-separated), <exe>/../lib/imp/plugins.
// Empty entries and duplicates are dropped.
IMP_API std::vector<std::string> plugin_search_dirs(const std::vector<std::string>& profile_paths);

// Parses a `provides` string ("arch:llama,qwen3;format:Q4_0") into {"arch:llama", "arch:qwen3", "format:Q4_0"}.
IMP_API std::vector<std::string> parse_provides(const std::string& provides);

// The plugin name of a file named libimp_<name>.so, or "" when the file name does not have that form.
IMP_API std::string plugin_name_from_file(const std::string& path);

class IMP_API PluginLoader {
public:
    PluginLoader(Registry& reg, std::vector<std::string> dirs);

    // Finds libimp_<name>.so in the directories (first hit wins) and loads it. Loading a loaded plugin is a no-op.
    // Throws imp::Error with one sentence on any failure.
    const PluginInfo& load(const std::string& name);
    // The file load(name) would load: the loaded plugin's, else the first libimp_<name>.so in the directories.
    // Throws imp::Error for an invalid name or "plugin 'x' not found; searched: ...; available: ...".
    std::string find(const std::string& name) const;
    // Loads one specific file (its name must be libimp_<name>.so).
    const PluginInfo& load_file(const std::string& path);
    std::vector<PluginInfo> loaded() const;
    bool is_loaded(const std::string& name) const { return loaded_.count(name) != 0; }
    const std::vector<std::string>& dirs() const { return dirs_; }

    struct Found {
        std::string path;
        std::optional<PluginInfo> info;  // set when the descriptor passes the checks
        std::string error;               // why the plugin cannot be loaded otherwise
    };
    // Every libimp_*.so in the directories (sorted by name within each directory; a name found in an earlier
    // directory hides later ones), with its descriptor read without registering anything.
    std::vector<Found> scan() const;

    // Name of a plugin (loaded, or found in the directories) whose `provides` lists "arch:<arch>"; "" if none.
    std::string plugin_for_architecture(const std::string& arch) const;

private:
    Registry& reg_;
    std::vector<std::string> dirs_;
    std::map<std::string, PluginInfo> loaded_;  // by plugin name
    std::vector<std::string> order_;            // load order
};

// "no loaded plugin handles architecture 'qwen3moe' (loaded: arch_llama); add arch_qwen_moe to [plugins]"
// (or "...; no plugin found provides it").
IMP_API std::string no_arch_message(const std::string& arch, const PluginLoader& loader);

}  // namespace imp
