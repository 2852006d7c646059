// The options `imp run` and `imp bench` share (--profile, --model, --set, --no-cuda-graphs, --log-level) and the
// Profile built from them.
#pragma once
#include <boost/program_options.hpp>
#include <string>
#include <vector>

#include "profile/profile.h"

namespace imp::cli {

// profile_help: where profiles live, for --help ("see configs/").
void add_profile_options(boost::program_options::options_description& desc, const std::string& profile_help);

// Parses args into vm; --help prints `desc` and returns false (the caller returns 0). Sets the log level.
// cmd names the command in error messages ("imp", "imp bench").
bool parse_options(const std::vector<std::string>& args, const boost::program_options::options_description& desc,
                   boost::program_options::variables_map& vm, const std::string& cmd);

// What an option stands for: the profile override `kv` ("generate.n_predict=0"), whose errors name `option` as the
// user typed it ("-n 0: ..."), not the --set it became.
struct OptionOverride {
    std::string option, kv;
    bool literal = false;  // kv's value is a string as it is (a file name or address: any bytes), not TOML
};

// The profile (or the defaults with --model) with --set, --model/--no-cuda-graphs and `extra` overrides applied, in
// that order; checks that the model path exists, naming the --set or --model that gave it.
Profile profile_from_options(const boost::program_options::variables_map& vm, const std::vector<OptionOverride>& extra);

}  // namespace imp::cli
