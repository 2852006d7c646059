#include "cli/profile_options.h"

#include <iostream>

#include "cli/commands.h"
#include "imp/error.h"
#include "model/display_text.h"

namespace po = boost::program_options;

namespace imp::cli {

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

Profile profile_from_options(const po::variables_map& vm, const std::vector<std::string>& extra) {
    std::vector<std::string> overrides;
    if (vm.count("set")) overrides = vm["set"].as<std::vector<std::string>>();
    if (vm.count("model")) overrides.push_back("model.path=\"" + vm["model"].as<std::string>() + "\"");
    if (vm.count("no-cuda-graphs")) overrides.push_back("runtime.cuda_graphs=false");
    overrides.insert(overrides.end(), extra.begin(), extra.end());
    Profile prof;
    if (vm.count("profile")) {
        prof = load_profile(vm["profile"].as<std::string>(), overrides);
    } else {
        prof = default_profile();
        for (auto& o : overrides) apply_override(prof, o);
    }
    check_model_path(prof);
    return prof;
}

}  // namespace imp::cli
