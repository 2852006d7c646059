// Shared by the arch_llama tests: the fixture folder and a registry with the build tree's plugins loaded once per
// plugin set for the whole test process (plugins stay loaded anyway).
#pragma once
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "imp/registry.h"
#include "plugin/loader.h"

namespace imp::test {

inline const std::string kPluginDir = IMP_BINARY_DIR "/lib/imp/plugins";
inline const std::string kFixtures = IMP_SOURCE_DIR "/tests/fixtures/models";

inline Registry& registry_with(const std::vector<std::string>& plugins) {
    static std::map<std::string, std::pair<std::unique_ptr<Registry>, std::unique_ptr<PluginLoader>>> cache;
    std::string key;
    for (auto& p : plugins) key += p + ";";
    auto& e = cache[key];
    if (!e.first) {
        e.first = std::make_unique<Registry>();
        e.second = std::make_unique<PluginLoader>(*e.first, std::vector<std::string>{kPluginDir});
        for (auto& p : plugins) e.second->load(p);
    }
    return *e.first;
}
inline Registry& full_registry() { return registry_with({"arch_llama", "quant_ggml"}); }

}  // namespace imp::test
