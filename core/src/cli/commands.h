#pragma once
#include <string>
#include <vector>

namespace imp::cli {

// Each returns the process exit code; errors are thrown as imp::Error and printed by main.
int cmd_version();
int cmd_run(const std::vector<std::string>& args);
int cmd_bench(const std::vector<std::string>& args);
int cmd_serve(const std::vector<std::string>& args);
int cmd_inspect(const std::vector<std::string>& args);
int cmd_plugins(const std::vector<std::string>& args);
int cmd_plan(const std::vector<std::string>& args);
int cmd_tokenize(const std::vector<std::string>& args);
int cmd_detokenize(const std::vector<std::string>& args);

// Sets spdlog's level from a name (trace, debug, info, warn, error, off); throws imp::Error on a bad name.
void set_log_level(const std::string& level);

}  // namespace imp::cli
