// GPU tests of the MoE and hybrid models (arch_qwen_moe, arch_gdn): greedy decode on an engine with CUDA graphs
// against one without. The same tokens, logits within 1e-4 of the largest (router_probe.h's diff_logits: the same
// top-1 unless the eager reference's top two are closer than that), and no cudaMalloc or cudaFree during the decode
// steps. Header-only; include it after catch2.
#pragma once
#include <cstdint>
#include <vector>

#include "exec/cuda/cuda_executor.h"
#include "router_probe.h"
#include "runtime/engine.h"

namespace imp::test {

inline void compare_graphs_eager(Engine& with, Engine& without, const std::vector<int32_t>& prompt, int steps) {
    std::vector<int32_t> toks[2];
    std::vector<float> lg[2];
    Engine* engines[2] = {&with, &without};
    for (int g = 0; g < 2; ++g) {
        Engine& e = *engines[g];
        e.reset();
        std::vector<float> last(static_cast<size_t>(e.desc().n_vocab));
        e.forward(prompt.data(), int64_t(prompt.size()), last.data());
        const auto before = cuda_alloc_stats();
        for (int i = 0; i < steps; ++i) {
            const int32_t t = e.sample(SamplingParams{}, uint64_t(i), nullptr, 0);
            toks[g].push_back(t);
            e.forward(&t, 1, last.data());
            lg[g].insert(lg[g].end(), last.begin(), last.end());
        }
        const auto after = cuda_alloc_stats();
        CHECK(after.mallocs == before.mallocs);
        CHECK(after.frees == before.frees);
    }
    CHECK(with.graphs_active());
    CHECK_FALSE(without.graphs_active());
    CHECK(toks[0] == toks[1]);
    REQUIRE(lg[0].size() == lg[1].size());
    const LogitsDiff d = diff_logits(lg[1], lg[0], size_t(with.desc().n_vocab), 1e-4);
    INFO("graphs vs eager: max|diff| " << d.max_diff << ", max|ref| " << d.max_ref << "; " << d.first);
    CHECK(d.finite);
    CHECK(d.max_diff <= 1e-4 * d.max_ref);
    CHECK(d.top1_differ == 0);
}

}  // namespace imp::test
