// `imp bench`'s timed tests (bench_runner.h): random valid token ids, the engine's own sampler, the executor
// synchronized around each timed part.
#include "cli/bench_runner.h"

#include <chrono>
#include <cmath>

namespace imp::cli {

namespace {

using Clock = std::chrono::steady_clock;

bool all_finite(const std::vector<float>& v) {
    for (float x : v)
        if (!std::isfinite(x)) return false;
    return true;
}

}  // namespace

std::vector<int32_t> BenchRunner::random_ids(int64_t n) {
    std::uniform_int_distribution<int32_t> d(0, int32_t(s_.engine().desc().n_vocab - 1));
    std::vector<int32_t> ids(static_cast<size_t>(n));
    for (auto& t : ids) t = d(rng_);
    return ids;
}

double BenchRunner::prompt(int64_t n, int64_t depth, bool check_logits, bool& finite) {
    Engine& e = s_.engine();
    std::vector<int32_t> ids = random_ids(n);
    std::vector<float> logits;
    if (check_logits) logits.resize(size_t(e.desc().n_vocab));
    e.reset();
    if (depth > 0) {
        const std::vector<int32_t> ctx = random_ids(depth);
        e.forward(ctx.data(), depth);
    }
    ex_.synchronize();
    const auto t0 = Clock::now();
    e.forward(ids.data(), n, check_logits ? logits.data() : nullptr);
    ex_.synchronize();
    const double sec = std::chrono::duration<double>(Clock::now() - t0).count();
    if (check_logits) finite = finite && all_finite(logits);
    return sec;
}

int32_t BenchRunner::first_token(int64_t n) {
    Engine& e = s_.engine();
    std::vector<int32_t> ids = random_ids(n);
    e.forward(ids.data(), n);
    SamplingParams greedy;
    greedy.temperature = 0.f;
    const int32_t tok = e.sample(greedy, 0, nullptr, 0);
    ex_.synchronize();
    return tok;
}

double BenchRunner::generate(int64_t n, int64_t batch, int64_t depth, bool check_logits, bool& finite, int64_t mixed) {
    Engine& e = s_.engine();
    e.reset();
    // The first sequence is the engine's own (forward/sample), as `imp run` decodes; more (and every mixed test's)
    // take add_sequence.
    const bool own = batch == 1 && mixed == 0;
    std::vector<SeqId> ids;
    if (!own)
        for (int64_t i = 0; i < batch; ++i) ids.push_back(e.add_sequence());
    const size_t rows_per_step = size_t(batch) + (mixed > 0 ? 1 : 0);
    std::vector<int32_t> tok = random_ids(int64_t(rows_per_step));
    std::vector<float> logits(check_logits ? rows_per_step * size_t(e.desc().n_vocab) : 0);
    float* out = check_logits ? logits.data() : nullptr;
    if (depth > 0) {
        for (int64_t i = 0; i < batch; ++i) {
            const std::vector<int32_t> ctx = random_ids(depth);
            if (own) {
                e.forward(ctx.data(), depth);
            } else {
                const SeqWork w{ids[size_t(i)], ctx.data(), depth};
                e.step({&w, 1});
            }
        }
    }
    std::vector<SeqWork> work(rows_per_step);
    std::vector<SeqSample> rows(rows_per_step);
    for (size_t i = 0; i < size_t(batch); ++i) work[i] = SeqWork{own ? 0 : ids[i], &tok[i], 1};
    SamplingParams greedy;
    greedy.temperature = 0.f;
    if (own) e.forward(tok.data(), 1, out);
    else e.step({work.data(), size_t(batch)}, out);
    ex_.synchronize();
    if (check_logits) finite = finite && all_finite(logits);
    // The mixed prompts are drawn before the clock starts: one per step.
    std::vector<int32_t> prompts = mixed > 0 ? random_ids(n * mixed) : std::vector<int32_t>{};
    const auto t0 = Clock::now();
    for (int64_t i = 0; i < n; ++i) {
        if (own) {
            tok[0] = e.sample(greedy, uint64_t(i), nullptr, 0);
            e.forward(tok.data(), 1, out);
        } else {
            for (auto& r : rows) r.step = uint64_t(i);
            e.sample({rows.data(), i == 0 ? size_t(batch) : rows_per_step}, tok.data());
            if (mixed > 0) {
                if (i > 0) e.release_sequence(work.back().seq);
                work.back() = SeqWork{e.add_sequence(), prompts.data() + i * mixed, mixed};
            }
            e.step(work, out);
        }
        if (check_logits) finite = finite && all_finite(logits);
    }
    ex_.synchronize();
    const double sec = std::chrono::duration<double>(Clock::now() - t0).count();
    if (mixed > 0 && n > 0) e.release_sequence(work.back().seq);
    for (SeqId id : ids) e.release_sequence(id);
    return sec;
}

}  // namespace imp::cli
