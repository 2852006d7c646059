// Token sampling reference: repetition penalty -> top-k -> top-p -> min-p -> temperature -> draw.
// Temperature <= 0 is greedy (argmax after the penalty; ties to the lowest id). The draw for step `step` is a pure
// function of (seed, step), so executors (CPU, CUDA) that implement the same chain pick the same token.
#pragma once
#include <cstdint>

#include "imp/executor.h"

namespace imp {

// Uniform number in [0, 1) for (seed, step): splitmix64 of the pair, top 53 bits.
double sample_uniform(uint64_t seed, uint64_t step);

// recent: the last n_recent tokens (host) for the repetition penalty.
int32_t sample_reference(const float* logits, int64_t n_vocab, const SamplingParams& p, uint64_t step,
                         const int32_t* recent, int64_t n_recent);

}  // namespace imp
