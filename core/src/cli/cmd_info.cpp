// `imp inspect`, `imp plugins`, `imp --version`.
#include <boost/program_options.hpp>
#include <cstdio>
#include <iostream>

#include "cli/commands.h"
#include "imp/abi.h"
#include "imp/error.h"
#include "imp/registry.h"
#include "model/inspect.h"
#include "plugin/loader.h"

namespace po = boost::program_options;

namespace imp::cli {

int cmd_version() {
    std::printf("imp %s (plugin ABI %u.%u, build key %s)\n", IMP_SDK_VERSION, kAbiMajor, kAbiMinor, IMP_BUILD_KEY);
    return 0;
}

int cmd_inspect(const std::vector<std::string>& args) {
    po::options_description desc("imp inspect FILE|FOLDER: print the metadata and tensor table of a model");
    desc.add_options()("help,h", "show this help")("file", po::value<std::string>(), "GGUF file or safetensors file/folder");
    po::positional_options_description pos;
    pos.add("file", 1);
    po::variables_map vm;
    try {
        po::store(po::command_line_parser(args).options(desc).positional(pos).run(), vm);
    } catch (const po::error& e) {
        throw Error(std::string("imp inspect: ") + e.what());
    }
    if (vm.count("help")) {
        std::cout << desc << "\n";
        return 0;
    }
    if (!vm.count("file")) throw Error("imp inspect: missing FILE (try imp inspect --help)");
    auto src = open_model(vm["file"].as<std::string>());
    std::fputs(inspect_model(*src).c_str(), stdout);
    return 0;
}

namespace {
// One line per declared setting: "[plugin.<p>] key = default  doc (choices)".
void print_setting_specs(const Settings& s) {
    for (const auto& spec : s.specs()) {
        std::string choices;
        for (const auto& c : spec.choices) choices += (choices.empty() ? " (" : ", ") + c;
        if (!choices.empty()) choices += ")";
        std::printf("      [plugin.%s] %s = %s  %s%s\n", s.plugin().c_str(), spec.key.c_str(),
                    setting_text(spec.default_value).c_str(), spec.doc.c_str(), choices.c_str());
    }
}
}  // namespace

int cmd_plugins(const std::vector<std::string>& args) {
    po::options_description desc("imp plugins: list the plugins found in the search path and what they register");
    desc.add_options()("help,h", "show this help")(
        "plugin-path", po::value<std::vector<std::string>>()->composing(), "extra directory to search (repeatable)");
    po::variables_map vm;
    try {
        po::store(po::command_line_parser(args).options(desc).run(), vm);
    } catch (const po::error& e) {
        throw Error(std::string("imp plugins: ") + e.what());
    }
    if (vm.count("help")) {
        std::cout << desc << "\n";
        return 0;
    }
    std::vector<std::string> extra;
    if (vm.count("plugin-path")) extra = vm["plugin-path"].as<std::vector<std::string>>();
    Registry reg;
    PluginLoader loader(reg, plugin_search_dirs(extra));
    std::printf("search path:");
    for (auto& d : plugin_search_dirs(extra)) std::printf(" %s", d.c_str());
    std::printf("\n");
    int n = 0;
    for (const auto& f : loader.scan()) {
        ++n;
        if (!f.info) {
            std::printf("  [unusable] %s\n      %s\n", f.path.c_str(), f.error.c_str());
            continue;
        }
        try {
            loader.load_file(f.path);
        } catch (const Error& e) {
            std::printf("  [unusable] %s %s (%s)\n      %s\n", f.info->name.c_str(), f.info->version.c_str(),
                        f.path.c_str(), e.what());
            continue;
        }
        std::printf("  %s %s (ABI %u.%u)  %s\n", f.info->name.c_str(), f.info->version.c_str(), f.info->abi_major,
                    f.info->abi_minor, f.path.c_str());
        for (const auto& e : reg.entries()) {
            if (e.plugin != f.info->name) continue;
            std::printf("      %-6s %s%s%s\n", e.what.c_str(), e.name.c_str(), e.detail.empty() ? "" : ": ",
                        e.detail.c_str());
        }
        print_setting_specs(reg.settings(f.info->name));
    }
    if (n == 0) std::printf("  (no plugins found)\n");
    std::printf("core settings:\n");
    print_setting_specs(reg.settings("core"));
    return 0;
}

}  // namespace imp::cli
