#include <catch2/catch.hpp>

#include <map>
#include <random>

#include "runtime/sampler.h"

namespace {
std::vector<float> random_logits(int n, uint32_t seed) {
    std::mt19937 g(seed);
    std::normal_distribution<float> d(0.f, 3.f);
    std::vector<float> v(static_cast<size_t>(n));
    for (auto& x : v) x = d(g);
    return v;
}
}  // namespace

TEST_CASE("greedy picks the argmax", "[sampler]") {
    auto l = random_logits(1000, 1);
    imp::SamplingParams p;
    p.temperature = 0;
    auto best = int32_t(std::max_element(l.begin(), l.end()) - l.begin());
    CHECK(imp::sample_reference(l.data(), 1000, p, 0, nullptr, 0) == best);
}

TEST_CASE("repetition penalty demotes a repeated argmax", "[sampler]") {
    std::vector<float> l = {1.f, 5.f, 4.5f, -2.f};
    imp::SamplingParams p;
    p.temperature = 0;
    p.repeat_penalty = 1.5;
    const int32_t r1[] = {0, 3}, r2[] = {1};
    CHECK(imp::sample_reference(l.data(), 4, p, 0, r1, 2) == 1);
    CHECK(imp::sample_reference(l.data(), 4, p, 0, r2, 1) == 2);  // 5/1.5 < 4.5
}

TEST_CASE("same seed, same tokens, a different seed different tokens", "[sampler]") {
    auto l = random_logits(500, 2);
    imp::SamplingParams p;
    p.temperature = 1.5;
    p.top_k = 0;
    p.top_p = 1.0;
    p.min_p = 0;
    p.seed = 42;
    imp::SamplingParams q = p;
    q.seed = 43;
    std::vector<int32_t> ta, tb, tc;
    for (uint64_t i = 0; i < 64; ++i) {
        ta.push_back(imp::sample_reference(l.data(), 500, p, i, nullptr, 0));
        tb.push_back(imp::sample_reference(l.data(), 500, p, i, nullptr, 0));
        tc.push_back(imp::sample_reference(l.data(), 500, q, i, nullptr, 0));
    }
    CHECK(ta == tb);
    CHECK(ta != tc);
}

TEST_CASE("top-k, top-p and min-p restrict the candidates", "[sampler]") {
    auto l = random_logits(200, 3);
    std::vector<int32_t> order(200);
    for (int i = 0; i < 200; ++i) order[size_t(i)] = i;
    std::sort(order.begin(), order.end(), [&](int a, int b) { return l[size_t(a)] > l[size_t(b)]; });
    imp::SamplingParams p;
    p.temperature = 3.0;  // flat enough to visit many tokens
    p.top_k = 5;
    p.top_p = 1.0;
    p.min_p = 0;
    std::map<int32_t, int> hits;
    for (uint64_t i = 0; i < 2000; ++i) hits[imp::sample_reference(l.data(), 200, p, i, nullptr, 0)]++;
    CHECK(hits.size() <= 5);
    for (auto& [t, n] : hits) CHECK(std::find(order.begin(), order.begin() + 5, t) != order.begin() + 5);

    // min-p 1.0 keeps only the top token.
    p.top_k = 0;
    p.min_p = 1.0;
    for (uint64_t i = 0; i < 50; ++i) CHECK(imp::sample_reference(l.data(), 200, p, i, nullptr, 0) == order[0]);

    // top-p tiny keeps only the top token.
    p.min_p = 0;
    p.top_p = 1e-6f;
    for (uint64_t i = 0; i < 50; ++i) CHECK(imp::sample_reference(l.data(), 200, p, i, nullptr, 0) == order[0]);
}

TEST_CASE("temperature sampling follows the softmax distribution", "[sampler]") {
    std::vector<float> l = {0.f, std::log(3.f)};  // p = 0.25, 0.75
    imp::SamplingParams p;
    p.temperature = 1.0;
    p.top_k = 0;
    p.top_p = 1.0;
    p.min_p = 0;
    p.seed = 7;
    int ones = 0;
    const int n = 20000;
    for (uint64_t i = 0; i < uint64_t(n); ++i) ones += imp::sample_reference(l.data(), 2, p, i, nullptr, 0);
    CHECK(std::abs(double(ones) / n - 0.75) < 0.02);
}
