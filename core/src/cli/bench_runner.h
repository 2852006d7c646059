// `imp bench`: the timed tests on one session — ppN (a prompt from a given depth) and tgN (N generated tokens, one
// or several sequences, from a given depth). Each call returns the seconds of the timed part; the prefilled depth
// (llama-bench's -d: that many random tokens already in each sequence's context) runs untimed before it. A tg test
// can carry a new sequence's prompt in every step (bench.mixed), the step a server runs when requests keep arriving.
#pragma once
#include <cstdint>
#include <random>
#include <vector>

#include "cli/session.h"

namespace imp::cli {

class BenchRunner {
public:
    BenchRunner(Session& s, uint64_t seed) : s_(s), ex_(s.executor()), rng_(seed) {}

    // One repetition of ppN after `depth` tokens; seconds of the N-token forward call. check_logits: download the
    // last logits and check they are finite (finite &= ...).
    double prompt(int64_t n, int64_t depth, bool check_logits, bool& finite);
    // The first token of a fresh session: a short prompt, then one greedy sample (returns on the host).
    int32_t first_token(int64_t n);
    // One repetition of tgN with `batch` sequences decoding together, each after `depth` tokens; seconds for the N
    // steps (greedy samples on the device, one token per sequence per step, after one untimed first step).
    // check_logits (the warm-up): every step's logits are downloaded and checked (outside the graph replay).
    // mixed > 0: every step also carries the whole `mixed`-token prompt of a new sequence after the decode rows (as a
    // server's step mixes a new request's prompt into the running decodes; bench.mixed); that row is sampled with the
    // others and the sequence released after the step. The seconds still count `batch` tokens per step.
    double generate(int64_t n, int64_t batch, int64_t depth, bool check_logits, bool& finite, int64_t mixed = 0);

private:
    std::vector<int32_t> random_ids(int64_t n);

    Session& s_;
    Executor& ex_;
    std::mt19937_64 rng_;
};

}  // namespace imp::cli
