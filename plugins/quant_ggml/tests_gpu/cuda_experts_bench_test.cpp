// quant_ggml expert weights, decode timing (hidden: run with "[.bench]", not part of the gpu label): one token
// routed to top_k 8 of 128 experts at the Qwen3-30B-A3B shapes (gate/up [768, 2048], down [2048, 768]); GB/s =
// device bytes of the 8 selected experts / time per grouped matmul, unweighted (8 output rows) and weighted (the
// sum into one row: GEMV + reduce kernel), next to the dense GEMV of the same bytes (one [8 * rows, cols] weight).
// A CUDA graph of 32 calls, each with its own random ids, over enough copies of the experts to defeat the L2 cache;
// median of 15 replays.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "cuda_experts.h"
#include "cuda_weight.h"
#include "experts_bench_util.h"
#include "experts_check.h"
#include "gpu_test_util.h"
#include "imp/dtype.h"
#include "request_util.h"

using namespace imp::ggml;
using namespace imp::ggml::test;

TEST_CASE("quant_ggml cuda experts bench: one-token grouped GEMV at Qwen3-30B-A3B shapes", "[.bench]") {
    auto ex = make_gpu();
    std::printf("device %s, %d SMs\n", ex->name().c_str(), ex->cuda()->sm_count);
    std::printf("%-5s %-12s %22s %22s %22s\n", "type", "shape", "experts GB/s (us)", "weighted GB/s (us)",
                "dense same bytes");
    constexpr int64_t kExperts = 128, kTopK = 8;
    constexpr int kCalls = 32;
    std::mt19937 rng(77);
    uint64_t seed = 1;
    struct Shape {
        int64_t rows, cols;
        const char* label;
    };
    for (const std::string type : {"Q4_K", "Q6_K", "Q8_0", "Q4_0", "Q5_K", "BF16"}) {
        const TypeInfo& t = *find_type(type);
        for (const Shape s : {Shape{768, 2048, "768x2048"}, Shape{2048, 768, "2048x768"}}) {
            const auto raw = fast_random(t, kExperts * s.rows * s.cols, seed++);
            const uint64_t rb = uint64_t(s.cols / t.block) * uint64_t(t.bytes);
            const auto ptrs = expert_pointers(raw.data(), kExperts, s.rows, rb);
            std::vector<std::unique_ptr<imp::ExpertWeights>> ws;
            ws.push_back(cuda::load_experts("bench", t.type, kExperts, s.rows, s.cols, ptrs, *ex));
            const uint64_t all = ws[0]->bytes(), selected = all / kExperts * kTopK;
            const size_t copies = size_t(std::clamp<uint64_t>((uint64_t(512) << 20) / all + 1, 2, 16));
            while (ws.size() < copies) ws.push_back(cuda::load_experts("bench", t.type, kExperts, s.rows, s.cols, ptrs, *ex));
            // Per call: 8 distinct random experts and weights.
            std::vector<int32_t> ids;
            std::vector<float> wts;
            std::vector<int32_t> perm(kExperts);
            for (int c = 0; c < kCalls; ++c) {
                std::iota(perm.begin(), perm.end(), 0);
                std::shuffle(perm.begin(), perm.end(), rng);
                ids.insert(ids.end(), perm.begin(), perm.begin() + kTopK);
                for (int j = 0; j < kTopK; ++j) wts.push_back(0.125f);
            }
            const int32_t* idd = device_copy(*ex, ids);
            const float* wd = device_copy(*ex, wts);
            const float* x = device_copy(*ex, random_activations(size_t(s.cols), rng));
            auto* y = static_cast<float*>(ex->alloc(size_t(kTopK * s.rows) * 4, "y"));
            ex->reserve_workspace(ws[0]->workspace_bytes(1, kTopK));
            double sec[2];
            for (const bool weighted : {false, true}) {
                for (int c = 0; c < kCalls; ++c) {  // warm-up outside the capture
                    imp::ExpertMatmul m;
                    m.x = x;
                    m.x_stride = s.cols;
                    m.ids = idd + c * kTopK;
                    m.weights = weighted ? wd + c * kTopK : nullptr;
                    m.n_tokens = 1;
                    m.top_k = kTopK;
                    m.y = y;
                    m.y_stride = s.rows;
                    ws[size_t(c) % ws.size()]->grouped_matmul(*ex, m);
                }
                ex->capture_begin();
                for (int c = 0; c < kCalls; ++c) {
                    imp::ExpertMatmul m;
                    m.x = x;
                    m.x_stride = s.cols;
                    m.ids = idd + c * kTopK;
                    m.weights = weighted ? wd + c * kTopK : nullptr;
                    m.n_tokens = 1;
                    m.top_k = kTopK;
                    m.y = y;
                    m.y_stride = s.rows;
                    ws[size_t(c) % ws.size()]->grouped_matmul(*ex, m);
                }
                sec[weighted] = time_graph(*ex, ex->capture_end()) / kCalls;
            }
            // Dense baseline: one [8 * rows, cols] weight (the first 8 experts' bytes), copies against the L2.
            imp::TensorInfo ti;
            ti.name = "bench.dense";
            ti.type = type;
            ti.shape = {kTopK * s.rows, s.cols};
            ti.data = raw.data();
            ti.nbytes = uint64_t(kTopK * s.rows) * rb;
            imp::WeightSource src;
            src.main = &ti;
            std::vector<std::unique_ptr<imp::Weight>> dense;
            dense.push_back(GgmlFormat().load(test::request_for(src), *ex));
            const size_t dcopies =
                size_t(std::clamp<uint64_t>((uint64_t(512) << 20) / dense[0]->bytes() + 1, 2, 48));
            while (dense.size() < dcopies) dense.push_back(cuda::clone_weight(*dense[0], *ex));
            for (const auto& d : dense) d->matmul(*ex, x, s.cols, y, kTopK * s.rows, 1, false);
            ex->capture_begin();
            for (const auto& d : dense) d->matmul(*ex, x, s.cols, y, kTopK * s.rows, 1, false);
            const double dsec = time_graph(*ex, ex->capture_end()) / double(dense.size());
            const auto cell = [](double bytes, double sec) {
                char b[64];
                std::snprintf(b, sizeof b, "%7.0f (%6.2f)", bytes / sec * 1e-9, sec * 1e6);
                return std::string(b);
            };
            std::printf("%-5s %-12s %22s %22s %22s\n", type.c_str(), s.label, cell(double(selected), sec[0]).c_str(),
                        cell(double(selected), sec[1]).c_str(), cell(double(dense[0]->bytes()), dsec).c_str());
            std::fflush(stdout);
        }
    }
}
