#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>
#include <unordered_set>
#include <utility>
#include <vector>

namespace imp {

namespace {
uint64_t splitmix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}
}  // namespace

double sample_uniform(uint64_t seed, uint64_t step) {
    return double(splitmix64(splitmix64(seed) ^ step) >> 11) * (1.0 / 9007199254740992.0);
}

int32_t sample_reference(const float* logits, int64_t n_vocab, const SamplingParams& p, uint64_t step,
                         const int32_t* recent, int64_t n_recent) {
    std::vector<std::pair<float, int32_t>> cand(static_cast<size_t>(n_vocab));
    for (int64_t i = 0; i < n_vocab; ++i) cand[size_t(i)] = {logits[i], int32_t(i)};
    if (p.repeat_penalty != 1.f && n_recent > 0) {
        std::unordered_set<int32_t> seen(recent, recent + n_recent);
        for (int32_t t : seen) {
            if (t < 0 || t >= n_vocab) continue;
            float& l = cand[size_t(t)].first;
            l = l > 0 ? l / p.repeat_penalty : l * p.repeat_penalty;
        }
    }
    auto by_logit = [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); };
    if (p.temperature <= 0.f) return std::min_element(cand.begin(), cand.end(), by_logit)->second;

    size_t k = cand.size();
    if (p.top_k > 0 && size_t(p.top_k) < k) k = size_t(p.top_k);
    std::partial_sort(cand.begin(), cand.begin() + std::ptrdiff_t(k), cand.end(), by_logit);
    cand.resize(k);

    // Probabilities at temperature 1 for the top-p / min-p filters (temperature is applied last, as llama.cpp).
    std::vector<double> prob(k);
    const double mx = cand[0].first;
    double sum = 0;
    for (size_t i = 0; i < k; ++i) sum += prob[i] = std::exp(double(cand[i].first) - mx);
    for (auto& q : prob) q /= sum;
    if (p.top_p < 1.f) {
        double cum = 0;
        size_t keep = k;
        for (size_t i = 0; i < k; ++i) {
            cum += prob[i];
            if (cum >= double(p.top_p)) {
                keep = i + 1;
                break;
            }
        }
        k = keep;
    }
    if (p.min_p > 0.f) {
        const double floor = double(p.min_p) * prob[0];
        size_t keep = 1;
        while (keep < k && prob[keep] >= floor) ++keep;
        k = keep;
    }
    std::vector<double> w(k);
    double tot = 0;
    for (size_t i = 0; i < k; ++i) tot += w[i] = std::exp((double(cand[i].first) - mx) / double(p.temperature));
    double r = sample_uniform(p.seed, step) * tot;
    for (size_t i = 0; i < k; ++i) {
        r -= w[i];
        if (r < 0) return cand[i].second;
    }
    return cand[k - 1].second;
}

}  // namespace imp
