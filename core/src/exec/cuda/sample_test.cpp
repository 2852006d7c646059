// Device sampling against sample_reference: greedy (argmax, lowest id on ties, repetition penalty) and the full
// chain (penalty -> top-k -> top-p -> min-p -> temperature -> draw) for many (seed, step) pairs on the same logits.
// Also: no cudaMalloc while ops run.
#include <string>

#include "exec/cuda/cuda_test_util.h"
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
    gpu().sample(dl, n, p, step, drecent, n_recent, dout);
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
    SamplingParams p;
    p.temperature = 1.f;
    CHECK_THROWS_AS(gpu().sample(nullptr, CudaExecutor::kMaxVocab + 1, p, 0, nullptr, 0, dout), Error);
}

TEST_CASE("cuda: no cudaMalloc or cudaFree while ops run", "[cuda][alloc]") {
    std::mt19937 rng(fresh_seed());
    CudaExecutor& ex = gpu();
    const int64_t n_tok = 64, n_head = 8, n_kv = 2, hd = 128, cap = 256;
    float* x = to_dev(rand_vec(rng, size_t(n_tok * n_head * hd)));
    float* k = to_dev(rand_vec(rng, size_t(n_tok * n_kv * hd)));
    float* w = to_dev(rand_vec(rng, size_t(n_head * hd)));
    float* out = to_dev(std::vector<float>(size_t(n_tok * n_head * hd)));
    std::vector<int32_t> hp(n_tok);
    for (int i = 0; i < n_tok; ++i) hp[size_t(i)] = i;
    int32_t* pos = to_dev(hp);
    KVCacheView kv;
    kv.dtype = DType::BF16;
    kv.capacity = cap;
    kv.n_kv_heads = int(n_kv);
    kv.head_dim = int(hd);
    kv.k = ex.alloc(size_t(cap * n_kv * hd * 2), "K");
    kv.v = ex.alloc(size_t(cap * n_kv * hd * 2), "V");
    float* logits = to_dev(logits_for(rng, 151936, 2.f));
    int32_t* tok = to_dev(std::vector<int32_t>{0});
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
    ap.positions = pos;
    ap.n_tokens = n_tok;
    for (int rep = 0; rep < 3; ++rep) {
        ex.rms_norm(x, w, x, n_tok * n_head, hd, 1e-6f);
        ex.rope(x, n_head * hd, pos, n_tok, int(n_head), rp);
        ex.kv_store(kv, k, n_kv * hd, k, n_kv * hd, pos, n_tok);
        ap.n_tokens = n_tok;
        ex.attention(x, n_head * hd, kv, out, ap);
        ap.n_tokens = 1;
        ex.attention(x, n_head * hd, kv, out, ap);
        ex.swiglu(x, n_head * hd, out, n_head * hd, x, n_tok, n_head * hd);
        ex.add(x, out, n_tok * n_head * hd);
        SamplingParams sp;
        ex.sample(logits, 151936, sp, uint64_t(rep), pos, 8, tok);
        sp.temperature = 0.8f;
        sp.top_k = 0;
        sp.top_p = 0.9f;
        ex.sample(logits, 151936, sp, uint64_t(rep), pos, 8, tok);
    }
    ex.synchronize();
    const CudaAllocStats s1 = cuda_alloc_stats();
    CHECK(s1.mallocs == s0.mallocs);
    CHECK(s1.frees == s0.frees);
}
