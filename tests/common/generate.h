// Test helper: generation through an Engine with its device sampler, as `imp run` does.
#pragma once
#include <cstdint>
#include <vector>

#include "runtime/engine.h"

namespace imp::test {

// Resets the engine, runs `prompt`, then samples n tokens (greedy when p.temperature <= 0), feeding each back.
inline std::vector<int32_t> generate(Engine& e, const std::vector<int32_t>& prompt, const SamplingParams& p, int n) {
    e.reset();
    e.forward(prompt.data(), int64_t(prompt.size()));
    std::vector<int32_t> out;
    for (int i = 0; i < n; ++i) {
        const int32_t t = e.sample(p, uint64_t(i), nullptr, 0);
        out.push_back(t);
        if (i + 1 < n) e.forward(&t, 1);
    }
    return out;
}

}  // namespace imp::test
