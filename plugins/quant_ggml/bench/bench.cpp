// quant_ggml_bench: times GgmlWeight::matmul on the core's CpuExecutor (not a test; prints ms and GB/s of weight
// bytes).
// Usage: quant_ggml_bench [--model file.gguf] [threads ...]   (default threads: 1 2)
// With --model: also times one decode step's worth of matvecs over every 2-D weight of the model (all the matmul
// work of one token, the tied output projection counted once more for the logits).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "exec/cpu/cpu_executor.h"
#include "ggml_format.h"
#include "imp/model.h"
#include "kernels.h"
#include "random_weights.h"
#include "request_util.h"

using namespace imp::ggml;

namespace {

struct Case {
    const char* type;
    int64_t rows, cols, n_tokens;
};

void run(const Case& c, int threads) {
    std::mt19937 rng(1);
    const TypeInfo& t = *find_type(c.type);
    const auto raw = test::random_blocks(t, c.rows * c.cols / t.block, rng);
    imp::TensorInfo ti;
    ti.name = "bench.weight";
    ti.type = c.type;
    ti.shape = {c.rows, c.cols};
    ti.data = raw.data();
    ti.nbytes = raw.size();
    imp::CpuExecutor ex(threads);
    GgmlFormat f;
    imp::WeightSource src;
    src.main = &ti;
    const auto w = f.load(test::request_for(src), ex);
    std::vector<float> x(static_cast<size_t>(c.n_tokens * c.cols)), y(static_cast<size_t>(c.n_tokens * c.rows));
    std::normal_distribution<float> nd;
    for (auto& v : x) v = nd(rng);
    using clk = std::chrono::steady_clock;
    // Warm up, then take the best of many short timed batches (the build machine is shared: short batches are
    // less likely to be preempted, and the minimum is what the code can do).
    w->matmul(ex, x.data(), c.cols, y.data(), c.rows, c.n_tokens, false);
    const double bytes = double(w->bytes());
    int iters = std::max(1, int(5e6 / (bytes + 1.0) / double(c.n_tokens)));
    double best = 1e30;
    for (int rep = 0; rep < 60; ++rep) {
        const auto t0 = clk::now();
        for (int i = 0; i < iters; ++i) w->matmul(ex, x.data(), c.cols, y.data(), c.rows, c.n_tokens, false);
        best = std::min(best, std::chrono::duration<double>(clk::now() - t0).count() / iters);
    }
    const double gflop = 2.0 * double(c.rows) * double(c.cols) * double(c.n_tokens) * 1e-9;
    std::printf("%-6s %6lld x %-6lld tokens %4lld  threads %d  %9.3f ms  %7.2f GB/s  %7.2f GFLOP/s\n", c.type,
                (long long)c.rows, (long long)c.cols, (long long)c.n_tokens, threads, best * 1e3, bytes / best * 1e-9,
                gflop / best);
}

void run_model(const std::string& path, int threads) {
    auto model = imp::open_model(path);
    imp::CpuExecutor ex(threads);
    GgmlFormat f;
    std::vector<std::unique_ptr<imp::Weight>> ws;
    for (const auto& t : model->tensors()) {
        if (t.shape.size() != 2) continue;
        imp::WeightSource src;
        src.main = &t;
        const imp::WeightRequest req = test::request_for(src);
        if (f.plan(req, ex).accepted) ws.push_back(f.load(req, ex));
    }
    int64_t max_dim = 0;
    double bytes = 0;
    for (const auto& w : ws) {
        max_dim = std::max({max_dim, w->rows(), w->cols()});
        bytes += double(w->bytes());
    }
    std::vector<float> x(static_cast<size_t>(max_dim), 0.5f), y(static_cast<size_t>(max_dim));
    double best = 1e30;
    for (int rep = 0; rep < 20; ++rep) {
        const auto t0 = std::chrono::steady_clock::now();
        for (const auto& w : ws) w->matmul(ex, x.data(), w->cols(), y.data(), w->rows(), 1, false);
        best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    std::printf("model  %zu weights, %.1f MB  threads %d  %9.3f ms per token of matvecs  (%.1f tok/s bound)\n",
                ws.size(), bytes * 1e-6, threads, best * 1e3, 1.0 / best);
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<int> threads;
    std::string model;
    for (int i = 1; i < argc; ++i) {
        if (std::string(argv[i]) == "--model" && i + 1 < argc) {
            model = argv[++i];
        } else {
            threads.push_back(std::atoi(argv[i]));
        }
    }
    if (threads.empty()) threads = {1, 2};
    std::printf("kernels: %s\n", kernels_best().name);
    const Case cases[] = {
        {"Q4_1", 576, 1536, 1}, {"Q4_1", 1536, 576, 1}, {"Q8_0", 49152, 576, 1},
        {"Q4_0", 1536, 576, 1}, {"Q4_K", 1536, 768, 1}, {"Q6_K", 1536, 768, 1},
        {"F16", 1536, 576, 1},  {"F32", 1536, 576, 1},  {"Q4_1", 1536, 576, 64},
    };
    for (const auto& c : cases)
        for (int t : threads) run(c, t);
    if (!model.empty())
        for (int t : threads) run_model(model, t);
    return 0;
}
