// imp-plugin-check: the op conformance runner. Loads plugins the way `imp plugins` finds them, creates a CPU
// executor and a CUDA executor, and runs every registered op's check (imp/ops.h: run_op_checks): each op's CUDA
// kernel against its CPU reference on fresh random inputs.
//   imp-plugin-check [--plugin-path DIR]... [--plugin NAME]... [--seed N] [--rounds N] [--device N]
// Without --plugin it loads every plugin found. The seed is random unless given, and printed, so a failure can be
// replayed. Exit status: 0 all checks pass (skips allowed), 1 a check failed, 2 bad usage, no GPU or a load error.
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <random>
#include <string>
#include <vector>

#include "exec/cpu/cpu_executor.h"
#include "exec/cuda/cuda_executor.h"
#include "imp/error.h"
#include "imp/ops.h"
#include "imp/registry.h"
#include "plugin/loader.h"

namespace {

struct Options {
    std::vector<std::string> paths, plugins;
    uint64_t seed = 0;
    bool seed_set = false;
    int rounds = 3;
    int device = 0;
};

const char* kUsage =
    "usage: imp-plugin-check [--plugin-path DIR]... [--plugin NAME]... [--seed N] [--rounds N] [--device N]\n"
    "Runs every registered op's conformance check: its CUDA kernel against its CPU reference.\n";

uint64_t parse_number(const std::string& flag, const std::string& v) {
    try {
        size_t used = 0;
        const unsigned long long n = std::stoull(v, &used);
        if (used == v.size()) return n;
    } catch (const std::exception&) {
    }
    throw imp::Error(flag + ": '" + v + "' is not a non-negative integer");
}

Options parse(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "-h" || a == "--help") {
            std::printf("%s", kUsage);
            std::exit(0);
        }
        if (i + 1 >= argc) throw imp::Error("unknown or incomplete option '" + a + "'");
        const std::string v = argv[++i];
        if (a == "--plugin-path") {
            o.paths.push_back(v);
        } else if (a == "--plugin") {
            o.plugins.push_back(v);
        } else if (a == "--seed") {
            o.seed = parse_number(a, v);
            o.seed_set = true;
        } else if (a == "--rounds") {
            o.rounds = int(parse_number(a, v));
        } else if (a == "--device") {
            o.device = int(parse_number(a, v));
        } else {
            throw imp::Error("unknown option '" + a + "'");
        }
    }
    if (!o.seed_set) o.seed = std::random_device{}();
    return o;
}

int run(const Options& o) {
    imp::Registry reg;
    imp::PluginLoader loader(reg, imp::plugin_search_dirs(o.paths));
    if (o.plugins.empty()) {
        for (const auto& f : loader.scan()) {
            if (!f.info) throw imp::Error(f.error);
            loader.load_file(f.path);
        }
    } else {
        for (const auto& n : o.plugins) loader.load(n);
    }
    std::string names;
    for (const auto& p : loader.loaded()) names += (names.empty() ? "" : ", ") + p.name + " " + p.version;
    std::printf("plugins: %s\n", names.empty() ? "none" : names.c_str());

    if (imp::cuda_device_count() <= o.device)
        throw imp::Error("no CUDA device " + std::to_string(o.device) + " (found " +
                         std::to_string(imp::cuda_device_count()) + ")");
    imp::CpuExecutor cpu;
    imp::CudaExecutor dev(o.device);
    std::printf("checking ops: %s against %s, seed %llu, %d round(s)\n", dev.name().c_str(), cpu.name().c_str(),
                static_cast<unsigned long long>(o.seed), o.rounds);
    int pass = 0, fail = 0, skip = 0;
    for (const auto& r : imp::run_op_checks(reg, cpu, dev, o.seed, o.rounds)) {
        switch (r.status) {
            case imp::OpCheckResult::Status::Pass:
                ++pass;
                std::printf("  pass  %s (%s)\n", r.op.c_str(), r.plugin.c_str());
                break;
            case imp::OpCheckResult::Status::Fail:
                ++fail;
                std::printf("  FAIL  %s (%s): %s\n", r.op.c_str(), r.plugin.c_str(), r.message.c_str());
                break;
            case imp::OpCheckResult::Status::Skipped:
                ++skip;
                std::printf("  skip  %s (%s): %s\n", r.op.c_str(), r.plugin.c_str(), r.message.c_str());
                break;
        }
    }
    std::printf("%d passed, %d failed, %d skipped\n", pass, fail, skip);
    return fail ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run(parse(argc, argv));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "imp-plugin-check: %s\n", e.what());
        return 2;
    }
}
