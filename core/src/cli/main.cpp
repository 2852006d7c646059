// imp — command line entry: `imp [run] --profile P`, `imp inspect FILE`, `imp plugins`, `imp plan`.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "cli/commands.h"
#include "imp/error.h"
#include "model/display_text.h"
#include "model/host_budget.h"

namespace {
void usage() {
    std::printf(
        "usage: imp [run] --profile FILE [options]   generate text (see imp run --help)\n"
        "       imp --model FILE [options]           generate without a profile (plugins chosen from the file)\n"
        "       imp bench --profile FILE [...]       prompt/generation speed, llama-bench style (imp bench -h)\n"
        "       imp serve --profile FILE [...]       OpenAI-compatible HTTP server (imp serve -h)\n"
        "       imp inspect FILE|FOLDER              print metadata and tensor table of a GGUF/safetensors model\n"
        "       imp plugins [--plugin-path DIR]...   list the plugins found and what they register\n"
        "       imp plan --profile FILE [...]        plugins, settings, ops, weight formats, memory plan; no upload\n"
        "       imp tokenize FILE|FOLDER --prompt T  token ids and pieces (imp tokenize -h; imp detokenize)\n"
        "       imp --version\n");
}
// Every error is one line "imp: error: <message>": a message that starts with the program's own name ("imp: ...",
// "imp tokenize: ...") loses it, control characters are escaped, and the line is kept to a readable length.
void print_error(const std::string& what) {
    std::string m = what;
    for (const char* pre : {"imp: error: ", "imp: ", "imp "})
        if (m.rfind(pre, 0) == 0) {
            m.erase(0, std::strlen(pre));
            break;
        }
    std::fprintf(stderr, "imp: error: %s\n", imp::display_text(m, 4096).c_str());
}

// Output that could not be written (a full disk, /dev/full, a closed pipe) is a failure, not a success.
int finish(int rc) {
    if (std::fflush(stdout) != 0 || std::ferror(stdout)) {
        std::fprintf(stderr, "imp: error: writing the output failed: %s\n", std::strerror(errno));
        return rc ? rc : 1;
    }
    return rc;
}
}  // namespace

int main(int argc, char** argv) {
    // Log lines (warnings, --log-level info/debug) go to stderr: stdout carries only what a command prints (generated
    // text, bench's JSON), so that it stays parseable. spdlog's own default logger writes to stdout.
    spdlog::set_default_logger(
        std::make_shared<spdlog::logger>("", std::make_shared<spdlog::sinks::stderr_color_sink_mt>()));
    std::vector<std::string> args(argv + 1, argv + argc);
    try {
        if (args.empty()) {
            usage();
            return 2;
        }
        const std::string& cmd = args[0];
        std::vector<std::string> rest(args.begin() + 1, args.end());
        if (cmd == "-h" || cmd == "--help" || cmd == "help") {
            usage();
            return finish(0);
        }
        if (cmd == "--version") return finish(imp::cli::cmd_version());
        if (cmd == "inspect") return finish(imp::cli::cmd_inspect(rest));
        if (cmd == "plugins") return finish(imp::cli::cmd_plugins(rest));
        if (cmd == "plan") return finish(imp::cli::cmd_plan(rest));
        if (cmd == "tokenize") return finish(imp::cli::cmd_tokenize(rest));
        if (cmd == "detokenize") return finish(imp::cli::cmd_detokenize(rest));
        if (cmd == "run") return finish(imp::cli::cmd_run(rest));
        if (cmd == "bench") return finish(imp::cli::cmd_bench(rest));
        if (cmd == "serve") return finish(imp::cli::cmd_serve(rest));
        if (!cmd.empty() && cmd[0] == '-') return finish(imp::cli::cmd_run(args));
        print_error("unknown command " + imp::quoted(cmd) + " (try imp --help)");
        return 2;
    } catch (const imp::Error& e) {
        print_error(e.what());
    } catch (const std::bad_alloc&) {
        // Sizes read from a file are checked before they are allocated (model/host_budget.h); what is left is said
        // with the sizes at hand: what imp held and what the machine had free when an allocation failed.
        print_error("out of host memory: an allocation failed while imp held " +
                    imp::human_bytes(imp::host_memory_held()) + " and " + imp::human_bytes(imp::host_memory_free()) + " was free on this machine");
    } catch (const std::exception& e) {
        print_error(e.what());
    }
    finish(1);
    return 1;
}
