// Device sampling against sample_reference: greedy (argmax, lowest id on ties, repetition penalty) and the full
// chain (penalty -> top-k -> top-p -> min-p -> temperature -> draw) for many (seed, step) pairs on the same logits;
// several rows in one call (each with its own parameters, seed, step and recent tokens; runs of plain greedy rows
// batched; small top-k and penalized greedy rows batched 64 per launch pair) against the CPU executor's per-row
// picks. Also: no cudaMalloc while ops run.
#include <cmath>
#include <iterator>
#include <limits>
#include <string>

#include "exec/cuda/step_test_util.h"
#include "imp/error.h"
#include "runtime/sampler.h"

using namespace imp;
using namespace imp::cuda_test;

namespace {

std::vector<float> logits_for(std::mt19937& rng, int64_t n, float spread) {
    std::normal_distribution<float> d(0.f, spread);
    std::vector<float> l(static_cast<size_t>(n));
    for (auto& x : l) x = d(rng);
    return l;
}

int32_t gpu_sample(const float* dl, int64_t n, const SamplingParams& p, uint64_t step, const int32_t* drecent,
                   int64_t n_recent, int32_t* dout) {
    SampleRow row;
    row.p = p;
    row.step = step;
    row.n_recent = n_recent;
    gpu().sample(dl, n, 1, n, &row, drecent, dout);
    return from_dev(dout, 1)[0];
}

}  // namespace

TEST_CASE("cuda: greedy sampling is the CPU argmax (ties to the lowest id, penalty applied)", "[cuda][sample]") {
    const uint32_t seed = fresh_seed();
    INFO("seed " << seed);
    std::mt19937 rng(seed);
    int32_t* dout = to_dev(std::vector<int32_t>{-1});
    for (int64_t n : {int64_t(1), int64_t(1000), int64_t(32000), int64_t(151936), int64_t(262144)}) {
        INFO("vocab " << n);
        auto l = logits_for(rng, n, 3.f);
        SamplingParams p;
        p.temperature = 0.f;
        const float* dl = to_dev(l);
        CHECK(gpu_sample(dl, n, p, 0, nullptr, 0, dout) == sample_reference(l.data(), n, p, 0, nullptr, 0));
        if (n < 10) continue;
        // ties: the maximum at several ids, the lowest wins
        const float mx = *std::max_element(l.begin(), l.end()) + 1.f;
        for (int64_t i : {n - 1, n / 2, int64_t(7)}) l[size_t(i)] = mx;
        dl = to_dev(l);
        CHECK(gpu_sample(dl, n, p, 0, nullptr, 0, dout) == 7);
        // repetition penalty pushes the winner down (recent holds duplicates and out-of-range ids)
        p.repeat_penalty = 1.5f;
        const std::vector<int32_t> recent = {7, 3, 7, int32_t(n / 2), -4, int32_t(n + 5), int32_t(n - 1)};
        const int32_t want = sample_reference(l.data(), n, p, 0, recent.data(), int64_t(recent.size()));
        CHECK(gpu_sample(dl, n, p, 0, to_dev(recent), int64_t(recent.size()), dout) == want);
        CHECK(want != 7);
    }
}

TEST_CASE("cuda: sampling with temperature/top-k/top-p/min-p picks the reference's token", "[cuda][sample]") {
    const uint32_t seed = fresh_seed();
    INFO("seed " << seed);
    std::mt19937 rng(seed);
    int32_t* dout = to_dev(std::vector<int32_t>{-1});
    struct Set {
        float temperature;
        int32_t top_k;
        float top_p, min_p, penalty;
    };
    const Set sets[] = {
        {0.8f, 40, 1.f, 0.f, 1.f},   {1.0f, 0, 0.9f, 0.f, 1.f},     {0.7f, 0, 1.f, 0.05f, 1.f},
        {1.2f, 100, 0.95f, 0.02f, 1.1f}, {0.3f, 1, 1.f, 0.f, 1.f},  {1.5f, 0, 1.f, 0.f, 1.3f},
        {0.9f, 50, 0.5f, 0.1f, 1.f},  {2.0f, 0, 0.99f, 0.001f, 1.f},
    };
    for (int64_t n : {int64_t(1000), int64_t(151936)}) {
        const auto l = logits_for(rng, n, n > 1000 ? 2.f : 1.f);
        const float* dl = to_dev(l);
        std::vector<int32_t> recent(64);
        std::uniform_int_distribution<int32_t> td(0, int32_t(n - 1));
        for (auto& r : recent) r = td(rng);
        recent[5] = recent[9];
        const int32_t* drecent = to_dev(recent);
        for (const Set& s : sets) {
            SamplingParams p;
            p.temperature = s.temperature;
            p.top_k = s.top_k;
            p.top_p = s.top_p;
            p.min_p = s.min_p;
            p.repeat_penalty = s.penalty;
            int mismatches = 0, distinct = 0;
            std::vector<int32_t> seen;
            for (int i = 0; i < 60; ++i) {
                p.seed = rng();
                const uint64_t step = uint64_t(i) * 7919u + 3u;
                const int32_t want = sample_reference(l.data(), n, p, step, recent.data(), int64_t(recent.size()));
                const int32_t got = gpu_sample(dl, n, p, step, drecent, int64_t(recent.size()), dout);
                if (got != want) {
                    ++mismatches;
                    UNSCOPED_INFO("seed " << p.seed << " step " << step << " cpu " << want << " gpu " << got);
                }
                if (std::find(seen.begin(), seen.end(), want) == seen.end()) seen.push_back(want), ++distinct;
            }
            INFO("vocab " << n << " T " << s.temperature << " top_k " << s.top_k << " top_p " << s.top_p
                          << " min_p " << s.min_p << " penalty " << s.penalty << " distinct tokens " << distinct);
            CHECK(mismatches == 0);
            if (s.top_k != 1) CHECK(distinct > 1);  // the draws really sample
        }
    }
    SampleRow row;
    row.p.temperature = 1.f;
    const std::string too_big = "cuda sample: vocabulary of " + std::to_string(CudaExecutor::kMaxVocab + 1) +
                                " exceeds the sampler's maximum";
    CHECK_THROWS_WITH(gpu().sample(nullptr, 0, 1, CudaExecutor::kMaxVocab + 1, &row, nullptr, dout),
                      Catch::Contains(too_big));
    row.p.temperature = 0.f;
    CHECK_THROWS_WITH(gpu().sample(nullptr, 0, 1, CudaExecutor::kMaxVocab + 1, &row, nullptr, dout),
                      Catch::Contains(too_big));
}

TEST_CASE("cuda: sampling several rows with their own parameters picks the CPU's token per row", "[cuda][sample]") {
    const uint32_t seed = fresh_seed();
    INFO("seed " << seed);
    std::mt19937 rng(seed);
    struct Set {
        float temperature;
        int32_t top_k;
        float top_p, min_p, penalty;
        int64_t n_recent;
    };
    // plain greedy rows in runs of 1, 3 and 2 between rows that draw or carry a penalty
    const Set sets[] = {
        {0.f, 40, 1.f, 0.f, 1.f, 0},     {0.8f, 40, 1.f, 0.f, 1.f, 0},    {0.f, 40, 1.f, 0.f, 1.f, 0},
        {0.f, 0, 1.f, 0.f, 1.3f, 0},     {0.f, 40, 1.f, 0.f, 1.f, 20},    {0.f, 40, 1.f, 0.f, 1.3f, 20},
        {1.0f, 0, 0.9f, 0.f, 1.f, 10},   {0.7f, 0, 1.f, 0.05f, 1.2f, 30}, {1.2f, 100, 0.95f, 0.02f, 1.1f, 5},
        {0.3f, 1, 1.f, 0.f, 1.f, 0},     {0.f, 40, 1.f, 0.f, 1.f, 0},     {0.f, 40, 1.f, 0.f, 1.f, 0},
        {2.0f, 0, 0.99f, 0.001f, 1.f, 0}, {0.9f, 50, 0.5f, 0.1f, 1.f, 0},
    };
    const int64_t n_rows = int64_t(std::size(sets));
    for (int64_t n : {int64_t(1000), int64_t(32000), int64_t(151936)}) {
        INFO("vocab " << n);
        const int64_t stride = n + 13;
        std::vector<float> l(size_t(stride * n_rows));
        for (int64_t r = 0; r < n_rows; ++r) {
            const auto row = logits_for(rng, n, n > 1000 ? 2.f : 1.f);
            std::copy(row.begin(), row.end(), l.begin() + r * stride);
        }
        // recent tokens of all rows in one buffer, each row at its own offset (the rows' maxima among them)
        std::vector<int32_t> recent;
        std::vector<SampleRow> rows(static_cast<size_t>(n_rows));
        std::uniform_int_distribution<int32_t> td(0, int32_t(n - 1));
        for (int64_t r = 0; r < n_rows; ++r) {
            const Set& s = sets[r];
            SampleRow& row = rows[size_t(r)];
            row.p.temperature = s.temperature;
            row.p.top_k = s.top_k;
            row.p.top_p = s.top_p;
            row.p.min_p = s.min_p;
            row.p.repeat_penalty = s.penalty;
            row.p.seed = rng();
            row.step = rng() % 100000u;
            row.recent_offset = int64_t(recent.size());
            row.n_recent = s.n_recent;
            const float* lr = l.data() + r * stride;
            const int32_t top = int32_t(std::max_element(lr, lr + n) - lr);
            for (int64_t i = 0; i < s.n_recent; ++i) recent.push_back(i == 0 ? top : td(rng));
        }
        std::vector<int32_t> want(size_t(n_rows), -1);
        cpu().sample(l.data(), stride, n_rows, n, rows.data(), recent.data(), want.data());
        int32_t* dout = to_dev(std::vector<int32_t>(size_t(n_rows), -1));
        const float* dl = to_dev(l);
        const int32_t* drecent = to_dev(recent);
        for (int rep = 0; rep < 2; ++rep) {  // the draws are a function of (seed, step): same picks again
            gpu().sample(dl, stride, n_rows, n, rows.data(), drecent, dout);
            CHECK(from_dev(dout, size_t(n_rows)) == want);
        }
        // each row alone gives the same pick
        for (int64_t r = 0; r < n_rows; ++r) {
            gpu().sample(dl + r * stride, stride, 1, n, &rows[size_t(r)], drecent, dout + r);
        }
        CHECK(from_dev(dout, size_t(n_rows)) == want);
    }
}

TEST_CASE("cuda: many greedy rows in one call (batched argmax) are the CPU's argmax per row", "[cuda][sample]") {
    const uint32_t seed = fresh_seed();
    INFO("seed " << seed);
    std::mt19937 rng(seed);
    for (int64_t n_rows : {int64_t(2), int64_t(8), int64_t(33), int64_t(300)}) {
        const int64_t n = n_rows > 100 ? 5000 : 151936, stride = n + 1;
        INFO("rows " << n_rows << " vocab " << n);
        std::vector<float> l(size_t(stride * n_rows));
        for (int64_t r = 0; r < n_rows; ++r) {
            const auto row = logits_for(rng, n, 3.f);
            std::copy(row.begin(), row.end(), l.begin() + r * stride);
            if (r % 5 == 1) {  // ties: the maximum at several ids, the lowest wins
                const float mx = *std::max_element(row.begin(), row.end()) + 1.f;
                for (int64_t i : {n - 1, n / 2, int64_t(7)}) l[size_t(r * stride + i)] = mx;
            }
        }
        std::vector<SampleRow> rows(static_cast<size_t>(n_rows));  // greedy, no penalty
        std::vector<int32_t> want(size_t(n_rows), -1);
        cpu().sample(l.data(), stride, n_rows, n, rows.data(), nullptr, want.data());
        int32_t* dout = to_dev(std::vector<int32_t>(size_t(n_rows), -1));
        gpu().sample(to_dev(l), stride, n_rows, n, rows.data(), nullptr, dout);
        const auto got = from_dev(dout, size_t(n_rows));
        CHECK(got == want);
        for (int64_t r = 1; r < n_rows; r += 5) CHECK(got[size_t(r)] == 7);
    }
}

TEST_CASE("cuda: many drawing rows in one call (batched top-k, 64 rows per launch pair) pick the CPU's tokens",
          "[cuda][sample]") {
    // 200 rows (140 of them on the batched top-k path: three launch pairs of 64, 64, 12) mixing what it takes (top_k
    // 1..64 with top-p, min-p, penalties; greedy rows with a penalty) with what it does not (top_k 0 or above 64: the
    // full sort; plain greedy: the batched argmax); ties at the maximum inside a slice and across slice boundaries;
    // greedy rows where applying the penalty twice to a repeated recent token would change the pick, and with a NaN
    // logit (never picked); recent ids outside the vocabulary and at slice edges. The picks equal the CPU
    // executor's, row for row.
    const uint32_t seed = fresh_seed();
    INFO("seed " << seed);
    std::mt19937 rng(seed);
    for (int64_t n : {int64_t(2049), int64_t(151936), int64_t(262144)}) {
        INFO("vocab " << n);
        const int64_t n_rows = 200, stride = n + 7;
        std::vector<float> l(size_t(stride * n_rows));
        std::vector<int32_t> recent;
        std::vector<SampleRow> rows(static_cast<size_t>(n_rows));
        std::uniform_int_distribution<int32_t> td(0, int32_t(n - 1));
        std::uniform_real_distribution<float> uf(0.f, 1.f);
        for (int64_t r = 0; r < n_rows; ++r) {
            const auto row = logits_for(rng, n, r % 3 == 0 ? 1.f : 2.5f);
            std::copy(row.begin(), row.end(), l.begin() + r * stride);
            const float mx = *std::max_element(row.begin(), row.end());
            float* lr = l.data() + r * stride;
            const int kind = int(r % 10);
            if (r % 7 == 2)  // a tie at the maximum: in a slice, at a slice edge, across slices
                for (int64_t i : {int64_t(5), int64_t(6), int64_t(9), int64_t(2047), int64_t(2048), n - 1})
                    if (i < n) lr[i] = mx + 1.f;
            if (kind == 1 && r % 7 != 2) {
                // Greedy with a penalty p of 1.1-2.1 on the top token (listed twice in recent): its logit L (far
                // above the rest, positive: divided by p) against a runner-up at L / p^1.5, which wins only if the
                // penalty were applied twice.
                lr[20] = 10.f * (std::fabs(mx) + 1.f);
                if (r % 4 == 1) lr[11] = std::numeric_limits<float>::quiet_NaN();  // never the argmax
            }
            SampleRow& sr = rows[size_t(r)];
            sr.p.temperature = kind == 0 ? 0.f : kind == 1 ? 0.f : 0.3f + 1.5f * uf(rng);
            sr.p.top_k = kind == 2 ? 0 : kind == 3 ? 100 : kind == 4 ? 1 : kind == 5 ? 64 : 1 + int32_t(rng() % 64);
            sr.p.top_p = kind % 2 ? 0.5f + 0.5f * uf(rng) : 1.f;
            sr.p.min_p = kind == 6 ? 0.05f : kind == 7 ? 0.2f : 0.f;
            sr.p.repeat_penalty = kind == 1 || kind == 8 || kind == 3 ? 1.1f + uf(rng) : 1.f;
            sr.p.seed = rng();
            sr.step = rng() % 100000u;
            sr.recent_offset = int64_t(recent.size());
            sr.n_recent = sr.p.repeat_penalty != 1.f ? 4 + int64_t(rng() % 60) : 0;
            int32_t top = 0;
            for (int32_t i = 1; i < n; ++i)  // the first maximum, NaN skipped
                if (lr[i] > lr[top] || std::isnan(lr[top])) top = i;
            if (kind == 1 && r % 7 != 2) lr[30] = lr[top] / std::pow(sr.p.repeat_penalty, 1.5f);
            for (int64_t i = 0; i < sr.n_recent; ++i) {
                const int32_t odd[] = {-3, int32_t(n + 5), 2047, 2048};  // outside, past the vocabulary, slice edges
                recent.push_back(i < 2 ? top : i < 6 && kind != 1 ? odd[i - 2] : td(rng));
            }
        }
        std::vector<int32_t> want(size_t(n_rows), -1);
        cpu().sample(l.data(), stride, n_rows, n, rows.data(), recent.data(), want.data());
        int32_t* dout = to_dev(std::vector<int32_t>(size_t(n_rows), -1));
        const float* dl = to_dev(l);
        const int32_t* drecent = to_dev(recent);
        gpu().sample(dl, stride, n_rows, n, rows.data(), drecent, dout);
        const auto got = from_dev(dout, size_t(n_rows));
        for (int64_t r = 0; r < n_rows; ++r) {
            INFO("row " << r << " T " << rows[size_t(r)].p.temperature << " top_k " << rows[size_t(r)].p.top_k
                        << " top_p " << rows[size_t(r)].p.top_p << " min_p " << rows[size_t(r)].p.min_p
                        << " penalty " << rows[size_t(r)].p.repeat_penalty << " recent "
                        << rows[size_t(r)].n_recent);
            CHECK(got[size_t(r)] == want[size_t(r)]);
        }
    }
}

TEST_CASE("cuda: no cudaMalloc or cudaFree while ops run", "[cuda][alloc]") {
    std::mt19937 rng(fresh_seed());
    CudaExecutor& ex = gpu();
    const int64_t n_head = 8, n_kv = 2, hd = 128;
    Step pre = make_step({{0, 40}, {10, 24}}, 2, rng);  // 64 prefill rows of two sequences
    Step dec = make_step({{63, 1}, {40, 1}, {0, 1, true}}, 2, rng);
    const int64_t n_tok = pre.n_tokens;
    float* x = to_dev(rand_vec(rng, size_t(n_tok * n_head * hd)));
    float* k = to_dev(rand_vec(rng, size_t(n_tok * n_kv * hd)));
    float* w = to_dev(rand_vec(rng, size_t(n_head * hd)));
    float* out = to_dev(std::vector<float>(size_t(n_tok * n_head * hd)));
    KVCacheView kv;
    kv.dtype = DType::BF16;
    kv.n_blocks = std::max(pre.n_blocks, dec.n_blocks);
    kv.n_kv_heads = int(n_kv);
    kv.head_dim = int(hd);
    kv.k = ex.alloc(size_t(kv.n_blocks * 16 * n_kv * hd * 2), "K");
    kv.v = ex.alloc(size_t(kv.n_blocks * 16 * n_kv * hd * 2), "V");
    const int64_t vocab = 151936;
    float* logits = to_dev(logits_for(rng, 3 * vocab, 2.f));
    int32_t* tok = to_dev(std::vector<int32_t>(3, 0));
    void* state = ex.alloc(4096, "state slots");
    ex.synchronize();
    const CudaAllocStats s0 = cuda_alloc_stats();
    RopeParams rp;
    rp.head_dim = int(hd);
    rp.n_rot = int(hd);
    AttentionParams ap;
    ap.n_head = int(n_head);
    ap.n_kv_head = int(n_kv);
    ap.head_dim = int(hd);
    ap.scale = 0.088f;
    for (int rep = 0; rep < 3; ++rep) {
        const StepBatch pb = pre.batch(true), db = dec.batch(true);
        ex.rms_norm(x, w, x, n_tok * n_head, hd, 1e-6f);
        ex.rope(x, n_head * hd, pb.token_pos, n_tok, int(n_head), rp);
        ex.kv_store(kv, k, n_kv * hd, k, n_kv * hd, pb.slot_mapping, n_tok);
        ex.attention(x, n_head * hd, kv, out, ap, pb);
        ex.attention(x, n_head * hd, kv, out, ap, db);
        ex.rope_kv_store(x, n_head * hd, k, n_kv * hd, k, n_kv * hd, w, w, 1e-6f, db, int(n_head), int(n_kv), rp, kv);
        ex.swiglu(x, n_head * hd, out, n_head * hd, x, n_tok, n_head * hd);
        ex.add(x, out, n_tok * n_head * hd);
        ex.copy(static_cast<char*>(state) + 2048, state, 2048);
        ex.fill_zero(state, 2048);
        SampleRow rows[3];
        rows[1].p.temperature = 0.8f;
        rows[1].p.top_k = 0;
        rows[1].p.top_p = 0.9f;
        rows[1].step = uint64_t(rep);
        rows[2].p.repeat_penalty = 1.2f;
        rows[2].n_recent = 8;
        ex.sample(logits, vocab, 3, vocab, rows, pb.token_pos, tok);
        ex.sample(logits, vocab, 1, vocab, rows, nullptr, tok);
    }
    ex.synchronize();
    const CudaAllocStats s1 = cuda_alloc_stats();
    CHECK(s1.mallocs == s0.mallocs);
    CHECK(s1.frees == s0.frees);
}
