#include "cli/profile_options.h"

#include <cstdio>
#include <filesystem>
#include <iostream>

#include "cli/commands.h"
#include "imp/error.h"
#include "model/display_text.h"

namespace po = boost::program_options;

namespace imp::cli {

namespace {
// The key of "section.key=value", without the blanks around it (as apply_override reads it).
std::string key_of(const std::string& kv) {
    const std::string k = kv.substr(0, kv.find('='));
    const char* ws = " \t\r\n";
    const size_t b = k.find_first_not_of(ws);
    return b == std::string::npos ? "" : k.substr(b, k.find_last_not_of(ws) - b + 1);
}
}  // namespace

void add_profile_options(po::options_description& desc, const std::string& profile_help) {
    desc.add_options()("help,h", "show this help")("profile,p", po::value<std::string>(), profile_help.c_str())(
        "model,m", po::value<std::string>(), "model file/folder (overrides [model] path; works without --profile)")(
        "set", po::value<std::vector<std::string>>()->composing(), "override a profile key: section.key=value")(
        "no-cuda-graphs", "decode without CUDA graphs (same as --set runtime.cuda_graphs=false)")(
        "log-level", po::value<std::string>()->default_value("warn"), "trace, debug, info, warn, error, off");
}

bool parse_options(const std::vector<std::string>& args, const po::options_description& desc, po::variables_map& vm,
                   const std::string& cmd) {
    try {
        const po::parsed_options parsed = po::command_line_parser(args).options(desc).run();
        // Words that are no option's value would otherwise be dropped without a word (a prompt not quoted).
        for (const auto& o : parsed.options)
            if (o.position_key >= 0)
                throw Error(cmd + ": unexpected argument " + imp::quoted(o.value.empty() ? "" : o.value.front()) +
                            " (a text with spaces needs quotes; try " + cmd + " --help)");
        po::store(parsed, vm);
        po::notify(vm);
    } catch (const po::error& e) {
        throw Error(cmd + ": " + e.what() + " (try " + cmd + " --help)");
    }
    if (vm.count("help")) {
        std::cout << desc << "\n";
        return false;
    }
    set_log_level(vm["log-level"].as<std::string>());
    if (!vm.count("profile") && !vm.count("model"))
        throw Error(cmd + ": give --profile FILE or --model FILE (try " + cmd + " --help)");
    return true;
}

Profile profile_from_options(const po::variables_map& vm, const std::vector<OptionOverride>& extra) {
    std::vector<OptionOverride> overrides;
    if (vm.count("set"))
        for (const auto& kv : vm["set"].as<std::vector<std::string>>()) overrides.push_back({"", kv});
    if (vm.count("model")) {
        const std::string& m = vm["model"].as<std::string>();
        overrides.push_back({"--model " + (m.empty() ? "''" : display_text(m)), "model.path=" + m, true});
    }
    if (vm.count("no-cuda-graphs")) overrides.push_back({"--no-cuda-graphs", "runtime.cuda_graphs=false"});
    overrides.insert(overrides.end(), extra.begin(), extra.end());
    Profile prof = vm.count("profile") ? load_profile(vm["profile"].as<std::string>()) : default_profile();
    std::string path_from;  // the option that set model.path last ("" when the profile gave it)
    for (const auto& o : overrides) {
        try {
            apply_override(prof, o.kv, o.literal);
            if (!o.option.empty()) prof.set_at[key_of(o.kv)] = o.option;  // later errors name what the user typed
        } catch (const Error& e) {
            if (o.option.empty()) throw;
            // apply_override's errors start with "--set <kv>: "; the user typed o.option.
            const std::string set = "--set " + display_text(o.kv) + ": ", what = e.what();
            throw Error(o.option + ": " + (what.rfind(set, 0) == 0 ? what.substr(set.size()) : what));
        }
        if (key_of(o.kv) == "model.path") path_from = o.option.empty() ? "--set " + display_text(o.kv) : o.option;
    }
    std::error_code ec;
    if (!path_from.empty() && !std::filesystem::exists(prof.model.path, ec))
        throw Error(path_from + ": no such file or folder");
    check_model_path(prof);
    return prof;
}

}  // namespace imp::cli
