// CpuExecutor::sample over several rows with their own parameters (greedy, temperature + top-k, top-p, min-p,
// repetition penalty with per-row recent windows in one shared buffer) equals sample_reference row by row; the
// inputs are built so that mixing up rows, parameters, steps or recent windows would change the answer.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <random>
#include <set>
#include <vector>

#include "exec/cpu/cpu_executor.h"
#include "runtime/sampler.h"

using namespace imp;

namespace {

std::vector<float> rnd(std::mt19937& g, size_t n, float lo, float hi) {
    std::uniform_real_distribution<float> d(lo, hi);
    std::vector<float> v(n);
    for (auto& x : v) {
        do x = d(g);
        while (x == 0.f);
    }
    return v;
}

SamplingParams sp(float temperature, int32_t top_k, float top_p, float min_p, float penalty, uint64_t seed) {
    SamplingParams p;
    p.temperature = temperature;
    p.top_k = top_k;
    p.top_p = top_p;
    p.min_p = min_p;
    p.repeat_penalty = penalty;
    p.seed = seed;
    return p;
}

}  // namespace

TEST_CASE("cpu sample of several rows with their own parameters equals sample_reference row by row", "[cpu]") {
    CpuExecutor ex(2);
    const int64_t n_vocab = 1000, stride = n_vocab + 24;
    std::mt19937 g(91);
    const std::vector<SamplingParams> params = {
        sp(0.f, 40, 1.f, 0.f, 1.f, 0),          // greedy
        sp(0.f, 40, 1.f, 0.f, 1.5f, 0),         // greedy with a repetition penalty
        sp(0.8f, 20, 1.f, 0.f, 1.f, 11),        // temperature + top-k
        sp(1.0f, 0, 0.9f, 0.f, 1.f, 12),        // top-p
        sp(1.2f, 0, 1.f, 0.05f, 1.f, 13),       // min-p
        sp(0.7f, 50, 0.95f, 0.02f, 1.3f, 14),   // everything, with a penalty
        sp(1.5f, 0, 1.f, 0.f, 1.f, 15),         // plain temperature over the whole vocabulary
        sp(0.f, 0, 1.f, 0.f, 1.1f, 0),          // greedy, penalty, empty window
    };
    const int64_t n_rows = int64_t(params.size());
    // Logits: random, with padding past n_vocab that would win if it were read.
    auto logits = rnd(g, size_t(n_rows * stride), -4.f, 4.f);
    for (int64_t r = 0; r < n_rows; ++r)
        for (int64_t i = n_vocab; i < stride; ++i) logits[size_t(r * stride + i)] = 100.f;
    // Greedy rows with a penalty: their argmax (raised to lead clearly) sits in their window, so the penalty flips it.
    std::vector<int32_t> recent = {5, 6, 7};  // a shared buffer; each row's window starts at its own offset
    std::vector<SampleRow> rows(static_cast<size_t>(n_rows));
    for (int64_t r = 0; r < n_rows; ++r) {
        SampleRow& row = rows[size_t(r)];
        row.p = params[size_t(r)];
        row.step = uint64_t(3 * r + 1);
        float* l = logits.data() + r * stride;
        const int32_t top = int32_t(std::max_element(l, l + n_vocab) - l);
        if (row.p.repeat_penalty != 1.f && r != n_rows - 1) {
            l[top] = 4.5f;
            row.recent_offset = int64_t(recent.size());
            for (int i = 0; i < 6; ++i) recent.push_back(int32_t(g() % uint64_t(n_vocab)));
            recent.push_back(top);
            row.n_recent = 7;
        }
    }
    std::vector<int32_t> out(size_t(n_rows), -1);
    std::vector<int32_t> expect(static_cast<size_t>(n_rows));
    auto run = [&]() {
        ex.sample(logits.data(), stride, n_rows, n_vocab, rows.data(), recent.data(), out.data());
        for (int64_t r = 0; r < n_rows; ++r) {
            const SampleRow& row = rows[size_t(r)];
            expect[size_t(r)] = sample_reference(logits.data() + r * stride, n_vocab, row.p, row.step,
                                                 recent.data() + row.recent_offset, row.n_recent);
        }
        CHECK(out == expect);
    };
    run();
    // The checks can fail: penalties change the greedy picks, and the rows pick different tokens.
    for (int64_t r : {int64_t(1), int64_t(5)}) {
        const SampleRow& row = rows[size_t(r)];
        const float* l = logits.data() + r * stride;
        const int32_t top = int32_t(std::max_element(l, l + n_vocab) - l);
        SamplingParams greedy = row.p;
        greedy.temperature = 0.f;
        CHECK(sample_reference(l, n_vocab, greedy, 0, recent.data() + row.recent_offset, row.n_recent) != top);
        CHECK(sample_reference(l, n_vocab, greedy, 0, recent.data(), 3) == top);  // another window: no effect
    }
    CHECK(std::set<int32_t>(out.begin(), out.end()).size() >= size_t(n_rows) - 1);

    // Many steps: the draws follow each row's (seed, step); the sampled rows do not always pick the same token.
    std::vector<std::set<int32_t>> seen(static_cast<size_t>(n_rows));
    for (int it = 0; it < 40; ++it) {
        for (auto& row : rows) row.step += 7;
        run();
        for (int64_t r = 0; r < n_rows; ++r) seen[size_t(r)].insert(out[size_t(r)]);
    }
    for (int64_t r = 0; r < n_rows; ++r) {
        INFO("row " << r);
        if (params[size_t(r)].temperature <= 0.f) CHECK(seen[size_t(r)].size() == 1);
        else CHECK(seen[size_t(r)].size() > 1);
    }

    // One row alone gives the same token as in the batch.
    ex.sample(logits.data() + 4 * stride, stride, 1, n_vocab, rows.data() + 4, recent.data(), out.data());
    CHECK(out[0] == expect[4]);
    // Zero rows touch nothing.
    out.assign(out.size(), -1);
    ex.sample(logits.data(), stride, 0, n_vocab, rows.data(), recent.data(), out.data());
    CHECK(out[0] == -1);
}
