// quant_ggml expert weights, prefill timing (hidden: run with "[.bench]", not part of the gpu label): the 8-token
// grouped GEMV (path 2) against the grouped GEMM (path 3) in one process, at the Qwen3-30B-A3B expert shapes as the
// MoE block calls them: gate|up [1536, 2048] on x per token (unweighted), down [2048, 768] on x per slot with the
// routing weights (GEMM + weighted sum). 64 / 512 / 2048 tokens, top_k 8 of 128 experts (random distinct ids per
// token). Prints microseconds per call (median of 15 replays of a graph of 4 calls), TFLOP/s (2 pairs rows cols)
// and the weight bytes of the experts touched per second.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdio>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "cuda_experts.h"
#include "experts_bench_util.h"
#include "experts_check.h"
#include "gpu_test_util.h"

using namespace imp::ggml;
using namespace imp::ggml::test;

TEST_CASE("quant_ggml cuda experts bench: prefill grouped GEMV vs grouped GEMM at Qwen3-30B-A3B shapes",
          "[.bench]") {
    auto ex = make_gpu();
    std::printf("device %s, %d SMs\n", ex->name().c_str(), ex->cuda()->sm_count);
    std::printf("%-5s %-10s %6s %28s %28s\n", "type", "shape", "tokens", "GEMV us (TFLOP/s, GB/s)",
                "GEMM us (TFLOP/s, GB/s)");
    constexpr int64_t kExperts = 128, kTopK = 8, kMaxTokens = 2048;
    constexpr int kCalls = 4;
    std::mt19937 rng(99);
    uint64_t seed = 7;
    struct Shape {
        int64_t rows, cols;
        bool down;
        const char* label;
    };
    for (const std::string type : {"Q4_K", "Q6_K", "Q8_0"}) {
        const TypeInfo& t = *find_type(type);
        for (const Shape s : {Shape{1536, 2048, false, "gate|up"}, Shape{2048, 768, true, "down"}}) {
            const auto raw = fast_random(t, kExperts * s.rows * s.cols, seed++);
            const uint64_t rb = uint64_t(s.cols / t.block) * uint64_t(t.bytes);
            const auto w = cuda::load_experts("bench", t.type, kExperts, s.rows, s.cols,
                                              expert_pointers(raw.data(), kExperts, s.rows, rb), *ex);
            ex->reserve_workspace(w->workspace_bytes(kMaxTokens, kTopK));
            const float* x = device_copy(*ex, random_activations(size_t(kMaxTokens * kTopK * s.cols), rng));
            auto* y = static_cast<float*>(ex->alloc(size_t(kMaxTokens * kTopK * s.rows) * 4, "y"));
            for (const int64_t n_tokens : {64, 512, 2048}) {
                std::vector<int32_t> ids;
                std::vector<int32_t> perm(kExperts);
                for (int64_t tk = 0; tk < n_tokens; ++tk) {
                    std::iota(perm.begin(), perm.end(), 0);
                    std::shuffle(perm.begin(), perm.end(), rng);
                    ids.insert(ids.end(), perm.begin(), perm.begin() + kTopK);
                }
                const int32_t* idd = device_copy(*ex, ids);
                const float* wd = device_copy(*ex, std::vector<float>(ids.size(), 0.125f));
                std::vector<bool> used(kExperts, false);
                for (const int32_t id : ids) used[size_t(id)] = true;
                const double touched = double(std::count(used.begin(), used.end(), true)) * double(w->bytes()) /
                                       double(kExperts);
                const double flops = 2.0 * double(n_tokens * kTopK) * double(s.rows) * double(s.cols);
                imp::ExpertMatmul m;
                m.x = x;
                m.x_stride = s.cols;
                m.x_per_slot = s.down;
                m.ids = idd;
                m.weights = s.down ? wd : nullptr;
                m.n_tokens = n_tokens;
                m.top_k = kTopK;
                m.y = y;
                m.y_stride = s.rows;
                m.accumulate = s.down;
                double sec[2];
                for (const int path : {2, 3}) {
                    cuda::set_experts_plan(*w, {path, 0, 0});
                    w->grouped_matmul(*ex, m);  // warm-up outside the capture
                    ex->capture_begin();
                    for (int c = 0; c < kCalls; ++c) w->grouped_matmul(*ex, m);
                    sec[path - 2] = time_graph(*ex, ex->capture_end()) / kCalls;
                }
                const auto cell = [&](double sc) {
                    char b[64];
                    std::snprintf(b, sizeof b, "%9.1f (%6.1f, %6.0f)", sc * 1e6, flops / sc * 1e-12,
                                  touched / sc * 1e-9);
                    return std::string(b);
                };
                std::printf("%-5s %-10s %6lld %28s %28s\n", type.c_str(), s.label, static_cast<long long>(n_tokens),
                            cell(sec[0]).c_str(), cell(sec[1]).c_str());
                std::fflush(stdout);
            }
        }
    }
}
