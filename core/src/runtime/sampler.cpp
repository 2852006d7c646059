#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>
#include <unordered_set>

namespace imp {

Sampler::Sampler(const SamplerParams& p) : p_(p), rng_(p.seed) {}

double Sampler::uniform() { return double(rng_() >> 11) * (1.0 / 9007199254740992.0); }

int32_t Sampler::sample(const float* logits, int64_t n_vocab, const std::vector<int32_t>& history) {
    cand_.resize(size_t(n_vocab));
    for (int64_t i = 0; i < n_vocab; ++i) cand_[size_t(i)] = {logits[i], int32_t(i)};

    if (p_.repeat_penalty != 1.0 && p_.repeat_last_n != 0) {
        const size_t n = p_.repeat_last_n < 0 ? history.size() : std::min(history.size(), size_t(p_.repeat_last_n));
        std::unordered_set<int32_t> seen(history.end() - std::ptrdiff_t(n), history.end());
        for (int32_t t : seen) {
            if (t < 0 || t >= n_vocab) continue;
            float& l = cand_[size_t(t)].first;
            l = l > 0 ? float(l / p_.repeat_penalty) : float(l * p_.repeat_penalty);
        }
    }

    auto by_logit = [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); };
    if (p_.temperature <= 0.0) return std::min_element(cand_.begin(), cand_.end(), by_logit)->second;

    size_t k = cand_.size();
    if (p_.top_k > 0 && size_t(p_.top_k) < k) k = size_t(p_.top_k);
    std::partial_sort(cand_.begin(), cand_.begin() + std::ptrdiff_t(k), cand_.end(), by_logit);
    cand_.resize(k);

    // Probabilities at temperature 1 for the top-p / min-p filters (llama.cpp applies temperature last too).
    std::vector<double> prob(k);
    const double mx = cand_[0].first;
    double sum = 0;
    for (size_t i = 0; i < k; ++i) sum += prob[i] = std::exp(double(cand_[i].first) - mx);
    for (auto& q : prob) q /= sum;

    if (p_.top_p < 1.0) {
        double cum = 0;
        size_t keep = k;
        for (size_t i = 0; i < k; ++i) {
            cum += prob[i];
            if (cum >= p_.top_p) { keep = i + 1; break; }
        }
        k = keep;
    }
    if (p_.min_p > 0.0) {
        const double floor = p_.min_p * prob[0];
        size_t keep = 1;
        while (keep < k && prob[keep] >= floor) ++keep;
        k = keep;
    }

    // Temperature, then draw.
    std::vector<double> w(k);
    double tot = 0;
    for (size_t i = 0; i < k; ++i) tot += w[i] = std::exp((double(cand_[i].first) - mx) / p_.temperature);
    double r = uniform() * tot;
    for (size_t i = 0; i < k; ++i) {
        r -= w[i];
        if (r < 0) return cand_[i].second;
    }
    return cand_[k - 1].second;
}

}  // namespace imp
