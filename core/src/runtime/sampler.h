// Token sampling on the host: repetition penalty -> top-k -> top-p -> min-p -> temperature -> draw.
// Temperature 0 is greedy (argmax after the penalty). The same seed gives the same tokens.
#pragma once
#include <cstdint>
#include <random>
#include <vector>

namespace imp {

struct SamplerParams {
    double temperature = 0.8;
    int64_t top_k = 40;          // 0 = off
    double top_p = 0.95;         // 1 = off
    double min_p = 0.05;         // 0 = off
    double repeat_penalty = 1.0; // 1 = off
    int64_t repeat_last_n = 64;
    uint64_t seed = 0;
};

class Sampler {
public:
    explicit Sampler(const SamplerParams& p);
    // logits: n_vocab floats; history: tokens so far (prompt + generated), for the repetition penalty.
    int32_t sample(const float* logits, int64_t n_vocab, const std::vector<int32_t>& history);

private:
    double uniform();  // [0, 1), platform-independent
    SamplerParams p_;
    std::mt19937_64 rng_;
    std::vector<std::pair<float, int32_t>> cand_;  // reused between calls
};

}  // namespace imp
