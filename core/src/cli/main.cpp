// imp — command line entry: `imp [run] --profile P`, `imp inspect FILE`, `imp plugins`, `imp plan`.
#include <cstdio>
#include <cstring>
#include <exception>
#include <new>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "imp/error.h"

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
}  // namespace

int main(int argc, char** argv) {
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
            return 0;
        }
        if (cmd == "--version") return imp::cli::cmd_version();
        if (cmd == "inspect") return imp::cli::cmd_inspect(rest);
        if (cmd == "plugins") return imp::cli::cmd_plugins(rest);
        if (cmd == "plan") return imp::cli::cmd_plan(rest);
        if (cmd == "tokenize") return imp::cli::cmd_tokenize(rest);
        if (cmd == "detokenize") return imp::cli::cmd_detokenize(rest);
        if (cmd == "run") return imp::cli::cmd_run(rest);
        if (cmd == "bench") return imp::cli::cmd_bench(rest);
        if (cmd == "serve") return imp::cli::cmd_serve(rest);
        if (!cmd.empty() && cmd[0] == '-') return imp::cli::cmd_run(args);
        std::fprintf(stderr, "imp: unknown command '%s' (try imp --help)\n", cmd.c_str());
        return 2;
    } catch (const imp::Error& e) {
        std::fprintf(stderr, "imp: error: %s\n", e.what());
    } catch (const std::bad_alloc&) {
        std::fprintf(stderr, "imp: error: out of host memory\n");
    } catch (const std::exception& e) {
        std::fprintf(stderr, "imp: error: %s\n", e.what());
    }
    return 1;
}
