// `imp bench --profile P [--output md|json] [--set k=v]...`: llama-bench's method on imp's engine.
//   ppN: N prompt tokens (random valid ids) in one forward call from an empty state (chunked by prefill_chunk);
//   tgN: N tokens generated one at a time (greedy sample on the device, then a one-token forward), after one
//        untimed first token. With bench.batch = [B, ...] (or -b B,...) each tgN also runs with B sequences decoding
//        together (one step carries one token of each); the aggregate and the per-sequence tok/s are reported.
//   bench.mixed = [P, ...]: every tgN (at every batch) also runs with the P-token prompt of a new sequence in each of
//        its steps, after the decode rows ("tg128 b128 + pp128"): the step a server runs while requests arrive (one
//        ends, one starts); its t/s counts the decode tokens only, as a server's output rate does.
//   bench.depth = [D, ...] (or -d D,..., llama-bench's -d): every test also runs after D random tokens prefilled
//        untimed into each sequence's context ("pp512 @ d4096", "tg128 @ d4096"); 0 is the empty context.
//   bench.ablate = ["name", ...] (CUDA graphs): every tg test without mixed also runs with the kernels whose name
//        contains each entry switched off in its decode graphs ("tg128 -[router]"), one entry at a time: the
//        difference to the full step is what those kernels cost there, overlap with their neighbours included
//        (the step computes garbage meanwhile; its tokens still come from the device's sampler). The entry "list"
//        logs the kernels of the largest decode graph by name and count instead.
// Each test runs once as a warm-up (its logits, the prefill's and every decode step's, are checked for NaN/Inf:
// logits_finite), then bench.reps timed repetitions; the executor is synchronized around each.
// The report carries the device's copy bandwidth measured in the same process, so decode speed is shown as a share
// of the copy roofline (weight bytes per token x tokens/s / copy bandwidth) and prefill as TFLOP/s, also as a share
// of a BF16 GEMM of the model's largest FFN shape x the largest pp, timed with cuBLAS in the same process.
// Load to first token: the model file is read once (so it is in the page cache), then the wall time from the start
// of Session construction to the first greedy token of a short prompt is measured; the bench then uses that session.
#include <boost/program_options.hpp>
#include <cxxabi.h>

#include <algorithm>
#include <map>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <ctime>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "cli/bench_device.h"
#include "cli/bench_report.h"
#include "cli/bench_runner.h"
#include "cli/commands.h"
#include "cli/profile_options.h"
#include "cli/session.h"
#include "exec/cuda/cuda_executor.h"
#include "imp/abi.h"
#include "imp/error.h"
#include "profile/profile.h"
#if __has_include("imp_commit.h")
#include "imp_commit.h"  // IMP_GIT_COMMIT, written at build time by bench/CMakeLists.txt
#endif
#ifndef IMP_GIT_COMMIT
#define IMP_GIT_COMMIT "unknown"
#endif

namespace po = boost::program_options;

namespace imp::cli {

namespace {

using Clock = std::chrono::steady_clock;

std::string utc_timestamp() {
    const std::time_t t = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char b[32];
    std::strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return b;
}

// Reads the model file (every regular file of a model folder) once, so that it is in the page cache; returns bytes.
uint64_t read_into_page_cache(const std::string& path) {
    namespace fs = std::filesystem;
    std::vector<fs::path> files;
    std::error_code ec;
    if (fs::is_directory(path, ec)) {
        for (const auto& e : fs::directory_iterator(path, ec))
            if (e.is_regular_file(ec)) files.push_back(e.path());
    } else {
        files.push_back(path);
    }
    uint64_t total = 0;
    std::vector<char> buf(size_t(16) << 20);
    for (const auto& f : files) {
        std::ifstream in(f, std::ios::binary);
        while (in) {
            in.read(buf.data(), std::streamsize(buf.size()));
            total += uint64_t(in.gcount());
        }
    }
    return total;
}

// "1,8,32" -> {1, 8, 32}; each item in [lo, hi], else one imp::Error naming the option.
std::vector<int64_t> int_list(const std::string& list, const char* opt, const char* what, int64_t lo, int64_t hi) {
    std::vector<int64_t> out;
    size_t at = 0;
    while (at <= list.size()) {
        const size_t end = std::min(list.find(',', at), list.size());
        const std::string item = list.substr(at, end - at);
        char* stop = nullptr;
        const long long v = std::strtoll(item.c_str(), &stop, 10);
        if (item.empty() || *stop != '\0' || v < lo || v > hi)
            throw Error(std::string("imp bench: ") + opt + " takes " + what + " " + std::to_string(lo) + ".." +
                        std::to_string(hi) + " separated by commas, got '" + list + "'");
        out.push_back(v);
        at = end + 1;
    }
    return out;
}

// A kernel's readable name (its mangled name when the demangler cannot read it).
std::string demangled(const std::string& name) {
    int status = 0;
    char* d = abi::__cxa_demangle(name.c_str(), nullptr, nullptr, &status);
    std::string out = status == 0 && d ? d : name;
    std::free(d);
    return out;
}

// bench.ablate: the tg test `base` again with the kernels named by each entry switched off in the captured decode
// graphs (run() times one repetition), then every kernel back on. An entry that names no kernel is reported and
// skipped.
template <class Run>
void ablate_runs(const TestResult& base, CudaExecutor* ex, const std::vector<std::string>& ablate, int64_t reps,
                 std::vector<TestResult>& results, Run&& run) {
    for (const std::string& pattern : ablate) {
        if (pattern == "list") {  // the kernels of the largest graph, by name, for choosing the entries
            std::vector<std::string> names;
            for (int g = 0; g < ex->graph_count(); ++g) {
                auto n = ex->graph_kernel_names(g);
                if (n.size() > names.size()) names = std::move(n);
            }
            std::map<std::string, int> count;
            for (const auto& n : names) ++count[n];
            spdlog::info("bench: bench.ablate list: {} kernel nodes in the largest decode graph", names.size());
            for (const auto& [name, c] : count) spdlog::info("bench:   {:4d} x {}", c, demangled(name));
            continue;
        }
        const int off = ex->set_graph_kernels(pattern, false);
        if (off == 0) {
            spdlog::warn("bench: bench.ablate '{}' names no kernel of the decode graphs: skipped", pattern);
            continue;
        }
        TestResult r = base;
        r.test = base.test + " -[" + pattern + "]";
        r.ablated = pattern;
        r.ablated_kernels = off;
        r.ablated_base = base.test;
        r.seconds.clear();
        try {
            run();  // untimed: the first replay after the change uploads the executable graph again
            for (int64_t rep = 0; rep < reps; ++rep) {
                r.seconds.push_back(run());
                spdlog::info("bench: {} rep {}: {:.3f} ms", r.test, rep + 1, r.seconds.back() * 1e3);
            }
        } catch (...) {
            ex->set_graph_kernels("", true);
            throw;
        }
        ex->set_graph_kernels("", true);
        results.push_back(std::move(r));
    }
}

}  // namespace

int cmd_bench(const std::vector<std::string>& args) {
    po::options_description desc(
        "imp bench --profile FILE [options]: prompt processing (ppN) and generation (tgN) speed, llama-bench style;\n"
        "tests and repetitions from the profile's [bench] section (pp, tg, reps)");
    add_profile_options(desc, "profile (TOML), see bench/");
    desc.add_options()("output,o", po::value<std::string>()->default_value("md"),
                       "md (a table) or json (one record per test)")(
        "batch,b", po::value<std::string>(),
        "sequences decoding together in the tg tests, comma-separated (e.g. 1,8,32); overrides bench.batch")(
        "depth,d", po::value<std::string>(),
        "context tokens prefilled (untimed) before every test, comma-separated (e.g. 0,4096,16384); overrides "
        "bench.depth");
    po::variables_map vm;
    if (!parse_options(args, desc, vm, "imp bench")) return 0;
    const std::string output = vm["output"].as<std::string>();
    if (output != "md" && output != "json") throw Error("imp bench: --output must be md or json, got '" + output + "'");
    Profile prof = profile_from_options(vm, {});
    if (vm.count("batch")) prof.bench.batch = int_list(vm["batch"].as<std::string>(), "-b", "batch sizes", 1, 4096);
    if (vm.count("depth"))
        prof.bench.depth = int_list(vm["depth"].as<std::string>(), "-d", "depths", 0, int64_t(1) << 24);
    const auto& b = prof.bench;
    if (b.batch.empty()) throw Error("bench.batch must list at least one batch size");
    if (b.depth.empty()) throw Error("bench.depth must list at least one depth (0: the empty context)");
    for (int64_t n : b.batch)
        prof.runtime.max_seqs = std::max<int>(prof.runtime.max_seqs, static_cast<int>(n + (b.mixed.empty() ? 0 : 1)));
    if (b.reps < 1) throw Error("bench.reps must be at least 1, got " + std::to_string(b.reps));
    for (int64_t n : b.pp)
        if (n < 1) throw Error("bench.pp: test sizes must be positive, got " + std::to_string(n));
    for (int64_t n : b.tg)
        if (n < 1) throw Error("bench.tg: test sizes must be positive, got " + std::to_string(n));

    {
        const auto t0 = Clock::now();
        const uint64_t bytes = read_into_page_cache(prof.model.path);
        spdlog::info("bench: read {:.2f} GiB of model files in {:.2f} s (page cache warm-up)",
                     double(bytes) / double(1ull << 30), std::chrono::duration<double>(Clock::now() - t0).count());
    }
    // Load to first token: Session construction (executor, plugins, weights) + a short prompt + one greedy token.
    const auto load_t0 = Clock::now();
    Session s(prof);
    Engine& engine = s.engine();
    Executor& ex = s.executor();
    CudaExecutor* cuda_ex = dynamic_cast<CudaExecutor*>(&ex);
    for (const std::string& pattern : b.ablate) (void)cuda_graphs::kernel_matches({}, pattern);  // malformed: now
    if (!b.ablate.empty() && (!cuda_ex || !prof.runtime.cuda_graphs))
        throw Error("bench.ablate switches kernels off in the decode steps' CUDA graphs: it needs runtime.executor "
                    "cuda (this run: " + ex.name() + ") and runtime.cuda_graphs = true");
    BenchRunner bench(s, prof.sampling.seed);
    const int64_t first_prompt = std::max<int64_t>(1, std::min<int64_t>(8, engine.capacity() - 1));
    bench.first_token(first_prompt);
    const double load_to_first_token = std::chrono::duration<double>(Clock::now() - load_t0).count();
    engine.reset();
    spdlog::info("bench: load to first token {:.3f} s", load_to_first_token);
    for (const LoadPhase& p : engine.load_phases())
        spdlog::info("bench: load {}: {:.3f} s, {:.2f} GiB of the file, {} weights", p.what, p.seconds,
                     double(p.file_bytes) / double(1ull << 30), p.count);
    const int64_t max_depth = *std::max_element(b.depth.begin(), b.depth.end());
    const std::string at_depth = max_depth > 0 ? " after bench.depth " + std::to_string(max_depth) : "";
    for (int64_t n : b.pp)
        if (n + max_depth > engine.capacity())
            throw Error("bench.pp " + std::to_string(n) + at_depth + " exceeds the context of " +
                        std::to_string(engine.capacity()) + " tokens (raise runtime.max_seq_len)");
    for (int64_t n : b.tg)
        if (n + 1 + max_depth > engine.capacity())
            throw Error("bench.tg " + std::to_string(n) + at_depth + " needs " + std::to_string(n + 1 + max_depth) +
                        " positions, the context has " + std::to_string(engine.capacity()) +
                        " (raise runtime.max_seq_len)");

    for (int64_t n : b.mixed)
        if (n > engine.capacity())
            throw Error("bench.mixed " + std::to_string(n) + " exceeds the context of " +
                        std::to_string(engine.capacity()) + " tokens (raise runtime.max_seq_len)");

    const ModelFacts model = model_facts(s.model(), engine);
    RunInfo run;
    run.profile = prof.file;
    run.executor = ex.name();
    const char* env_commit = std::getenv("IMP_COMMIT");
    run.commit = env_commit && *env_commit ? env_commit : IMP_GIT_COMMIT;
    run.imp_version = IMP_SDK_VERSION;
    run.cuda_version = IMP_CUDA_VERSION;
    run.kv_dtype = dtype_name(kv_dtype_for(prof.runtime.kv_dtype, ex));
    run.timestamp = utc_timestamp();
    run.cuda_graphs = prof.runtime.cuda_graphs;
    {
        const auto& rt = prof.runtime;
        run.runtime_json = "\"executor\": " + nlohmann::json(rt.executor).dump() +
                           ", \"max_seq_len\": " + std::to_string(rt.max_seq_len) +
                           ", \"prefill_chunk\": " + std::to_string(rt.prefill_chunk) +
                           ", \"threads\": " + std::to_string(rt.threads) +
                           ", \"max_seqs\": " + std::to_string(rt.max_seqs) +
                           ", \"kv_blocks\": " + std::to_string(rt.kv_blocks);
    }
    run.reps = b.reps;
    for (const Settings* st : s.registry().all_settings())
        for (const auto& spec : st->specs())
            run.settings.push_back({st->plugin() + "." + spec.key, setting_text(st->get(spec.key)), st->is_set(spec.key)});
    spdlog::info("bench: probing copy bandwidth");
    run.device = probe_device(ex);
    run.load_to_first_token_s = load_to_first_token;
    run.load_phases = engine.load_phases();
    run.first_token_prompt = first_prompt;
    {
        int64_t tokens = 0;
        for (int64_t n : b.pp) tokens = std::max(tokens, n);
        if (tokens == 0) tokens = 512;
        spdlog::info("bench: probing the BF16 GEMM rate ({} x {} x {})", tokens, model.ffn_in, model.ffn_out);
        try {
            run.gemm = probe_gemm_bf16(ex, model.ffn_out, tokens, model.ffn_in);
        } catch (const Error& e) {
            spdlog::warn("bench: {} (gemm_bf16_tflops reported as null)", e.what());
            run.gemm = GemmFacts{};
        }
    }

    std::vector<TestResult> results;
    auto depth_suffix = [](int64_t d) { return d > 0 ? " @ d" + std::to_string(d) : std::string(); };
    for (int64_t depth : b.depth)
        for (int64_t n : b.pp) {
            TestResult r;
            r.test = "pp" + std::to_string(n) + depth_suffix(depth);
            r.n_prompt = n;
            r.n_depth = depth;
            for (int64_t rep = 0; rep <= b.reps; ++rep) {
                const double sec = bench.prompt(n, depth, rep == 0, run.logits_finite);
                if (rep > 0) r.seconds.push_back(sec);
                spdlog::info("bench: {} rep {}: {:.3f} ms", r.test, rep, sec * 1e3);
            }
            results.push_back(std::move(r));
        }
    std::vector<int64_t> mixes{0};
    mixes.insert(mixes.end(), b.mixed.begin(), b.mixed.end());
    for (int64_t depth : b.depth)
        for (int64_t n : b.tg)
            for (int64_t batch : b.batch)
                for (int64_t mixed : mixes) {
                    TestResult r;
                    r.test = "tg" + std::to_string(n) + (batch > 1 ? " b" + std::to_string(batch) : "") +
                             (mixed > 0 ? " + pp" + std::to_string(mixed) : "") + depth_suffix(depth);
                    r.n_gen = n;
                    r.batch = batch;
                    r.n_depth = depth;
                    r.n_mixed = mixed;
                    for (int64_t rep = 0; rep <= b.reps; ++rep) {
                        const double sec = bench.generate(n, batch, depth, rep == 0, run.logits_finite, mixed);
                        if (rep > 0) r.seconds.push_back(sec);
                        spdlog::info("bench: {} rep {}: {:.3f} ms", r.test, rep, sec * 1e3);
                    }
                    const TestResult base = r;
                    results.push_back(std::move(r));
                    if (mixed == 0) ablate_runs(base, cuda_ex, b.ablate, b.reps, results, [&] {
                        bool finite = true;  // the ablated step computes garbage: its logits are not checked
                        return bench.generate(n, batch, depth, false, finite, 0);
                    });
                }
    if (!run.logits_finite) spdlog::warn("bench: the warm-up logits (prefill or decode) contain NaN or Inf");
    run.graphs = engine.graphs_active();
    run.peak_vram_bytes = ex.bytes_allocated();
    if (ex.kind() == DeviceKind::CUDA) run.device.device_used_bytes = device_used_bytes(ex);

    const std::string text = output == "json" ? format_json(model, run, results) : format_markdown(model, run, results);
    std::fputs(text.c_str(), stdout);
    std::fflush(stdout);
    return 0;
}

}  // namespace imp::cli
