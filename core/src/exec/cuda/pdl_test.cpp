// Programmatic dependent launch: a chain of dependent ops (every core kernel: rms_norm, swiglu, rope_kv_store,
// rope, kv_store, prefill (tensor-core and fp32) and split-KV decode attention with its combine, add, copy /
// fill_zero, and the sampling kernels, batched greedy rows included) over steps of one and of several sequences
// gives bit-identical results with PDL off, with PDL on, and replayed from a graph captured with PDL on.
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <utility>
#include <vector>

#include "exec/cuda/step_test_util.h"

using namespace imp;
using namespace imp::cuda_test;

namespace {

constexpr int kHeads = 8, kKv = 2, kHd = 64, kLayers = 3;
constexpr int64_t kEmbd = int64_t(kHeads) * kHd, kKvW = int64_t(kKv) * kHd, kVocab = 5000;

struct State {
    std::vector<float> hidden, logits;
    std::vector<uint8_t> k, v, k2, v2;
    std::vector<int32_t> tokens;
    std::vector<float> carry;
    bool operator==(const State&) const = default;
};

struct Chain {
    Step st;
    int64_t n = 1;
    std::vector<float> h_hidden, h_logits, h_w, h_qn, h_kn;
    std::vector<uint8_t> h_cache;
    std::vector<int32_t> h_recent;
    float *hidden, *logits, *w, *qn, *kn, *xn, *q, *k, *v, *att, *carry;
    int32_t *recent, *tokens;
    KVCacheView kv[kLayers], kv2;
    size_t cache_bytes = 0;

    Chain(std::mt19937& rng, const std::vector<SeqSpec>& seqs) : st(make_step(seqs, 4, rng, 5)), n(st.n_tokens) {
        h_hidden = rand_vec(rng, size_t(n * kEmbd), -2.f, 2.f);
        h_logits = rand_vec(rng, size_t(3 * kVocab), -4.f, 4.f);
        h_w = rand_vec(rng, size_t(kEmbd), 0.5f, 1.5f);
        h_qn = rand_vec(rng, size_t(kHd), 0.5f, 1.5f);
        h_kn = rand_vec(rng, size_t(kHd), 0.5f, 1.5f);
        h_recent = {3, 17, 3, 99};
        // A BF16 pool whose every block but the zero block holds history (bytes of random values from the CPU's
        // kv_store).
        const int64_t slots = st.n_blocks * 16;
        cache_bytes = size_t(slots * kKvW) * 2;
        h_cache.resize(cache_bytes);
        KVCacheView c;
        c.dtype = DType::BF16;
        c.n_blocks = st.n_blocks;
        c.n_kv_heads = kKv;
        c.head_dim = kHd;
        c.k = c.v = h_cache.data();
        std::vector<int32_t> all(size_t(slots - 16));
        std::iota(all.begin(), all.end(), 16);
        const auto hist = rand_vec(rng, all.size() * size_t(kKvW));
        cpu().kv_store(c, hist.data(), kKvW, hist.data(), kKvW, all.data(), int64_t(all.size()));
        hidden = to_dev(h_hidden);
        logits = to_dev(h_logits);
        w = to_dev(h_w);
        qn = to_dev(h_qn);
        kn = to_dev(h_kn);
        xn = to_dev(std::vector<float>(size_t(n * kEmbd)));
        q = to_dev(std::vector<float>(size_t(n * kEmbd)));
        k = to_dev(std::vector<float>(size_t(n * kEmbd)));
        v = to_dev(std::vector<float>(size_t(n * kEmbd)));
        att = to_dev(std::vector<float>(size_t(n * kEmbd)));
        carry = to_dev(std::vector<float>(size_t(2 * kEmbd)));
        recent = to_dev(h_recent);
        tokens = to_dev(std::vector<int32_t>(5));
        for (auto* c2 : {&kv[0], &kv[1], &kv[2], &kv2}) {
            *c2 = c;
            c2->k = to_dev(h_cache);
            c2->v = to_dev(h_cache);
        }
    }

    void reset() {
        gpu().upload(hidden, h_hidden.data(), h_hidden.size() * 4);
        gpu().upload(logits, h_logits.data(), h_logits.size() * 4);
        for (auto* c : {&kv[0], &kv[1], &kv[2], &kv2}) {
            gpu().upload(c->k, h_cache.data(), cache_bytes);
            gpu().upload(c->v, h_cache.data(), cache_bytes);
        }
        const std::vector<int32_t> zero(5, 0);
        gpu().upload(tokens, zero.data(), 20);
        const std::vector<float> zs(size_t(2 * kEmbd), 0.f);
        gpu().upload(carry, zs.data(), zs.size() * 4);
    }

    // Every op reads what the one before it wrote.
    void run() {
        Executor& ex = gpu();
        RopeParams rp;
        rp.head_dim = kHd;
        rp.n_rot = kHd;
        rp.neox = true;
        AttentionParams ap;
        ap.n_head = kHeads;
        ap.n_kv_head = kKv;
        ap.head_dim = kHd;
        ap.scale = 0.125f;
        const StepBatch b = st.batch(true);
        for (int l = 0; l < kLayers; ++l) {
            ex.rms_norm(hidden, w, xn, n, kEmbd, 1e-5f);
            ex.swiglu(xn, kEmbd, hidden, kEmbd, q, n, kEmbd);
            ex.swiglu(hidden, kEmbd, xn, kEmbd, k, n, kEmbd);
            ex.swiglu(q, kEmbd, k, kEmbd, v, n, kEmbd);
            ex.rope_kv_store(q, kEmbd, k, kEmbd, v, kEmbd, qn, kn, 1e-6f, b, kHeads, kKv, rp, kv[l]);
            ex.attention(q, kEmbd, kv[l], att, ap, b);
            ex.add(hidden, att, n * kEmbd);
            ex.rope(k, kEmbd, b.token_pos, n, kHeads, rp);
            ex.kv_store(kv2, k, kEmbd, hidden, kEmbd, b.slot_mapping, n);
            ex.attention(hidden, kEmbd, kv2, xn, ap, b);
            ex.add(hidden, xn, n * kEmbd);
            ex.copy(carry + kEmbd, carry, size_t(kEmbd) * 4);  // carry[1] = carry[0]; carry[0] = 0; carry[0] += h
            ex.fill_zero(carry, size_t(kEmbd) * 4);
            ex.add(carry, hidden, kEmbd);
        }
        ex.add(hidden, carry + kEmbd, kEmbd);
        for (int64_t r = 0; r < 3; ++r) ex.add(logits + r * kVocab, hidden + std::min(r, n - 1) * kEmbd, kEmbd);
        SampleRow rows[3];
        rows[0].p.repeat_penalty = 1.3f;  // greedy with a penalty
        rows[0].step = 7;
        rows[0].n_recent = 4;
        rows[1].p.temperature = 0.9f;
        rows[1].p.top_k = 20;
        rows[1].p.seed = 5;
        rows[1].step = 7;
        rows[2].p.temperature = 0.7f;
        rows[2].p.top_k = 0;
        rows[2].p.top_p = 0.95f;
        rows[2].p.seed = 9;
        rows[2].step = 7;
        ex.sample(logits, kVocab, 3, kVocab, rows, recent, tokens);
        SampleRow plain[2];  // two greedy rows: one batched argmax
        ex.sample(logits + kVocab, kVocab, 2, kVocab, plain, nullptr, tokens + 3);
    }

    State state() {
        gpu().synchronize();
        State s;
        s.hidden = from_dev(hidden, size_t(n * kEmbd));
        s.logits = from_dev(logits, size_t(3 * kVocab));
        s.carry = from_dev(carry, size_t(2 * kEmbd));
        s.k = from_dev(static_cast<uint8_t*>(kv[kLayers - 1].k), cache_bytes);
        s.v = from_dev(static_cast<uint8_t*>(kv[kLayers - 1].v), cache_bytes);
        s.k2 = from_dev(static_cast<uint8_t*>(kv2.k), cache_bytes);
        s.v2 = from_dev(static_cast<uint8_t*>(kv2.v), cache_bytes);
        s.tokens = from_dev(tokens, 5);
        return s;
    }
};

}  // namespace

TEST_CASE("cuda: ops launched with PDL give the same results as without, also from a captured graph", "[cuda]") {
    CudaExecutor& ex = gpu();
    CHECK(ex.pdl() == (ex.cuda()->cc >= 90));  // on by default (CudaOptions::pdl) on sm_90+
    CHECK(ex.cuda()->pdl == ex.pdl());
    const bool saved = ex.pdl();
    const uint32_t seed = fresh_seed();
    INFO("seed " << seed);
    std::mt19937 rng(seed);
    const std::vector<std::vector<SeqSpec>> steps = {
        {{700, 1}}, {{5, 1}}, {{300, 9}}, {{700, 1}, {5, 1}, {0, 1, true}, {90, 1}}, {{300, 20}, {5, 1}, {40, 17}},
    };
    for (const auto& seqs : steps) {
        INFO("sequences " << seqs.size() << ", first: history " << seqs[0].ctx << " rows " << seqs[0].rows);
        Chain c(rng, seqs);
        ex.set_pdl(false);
        c.reset();
        c.run();
        const State ref = c.state();
        CHECK(ref.hidden != c.h_hidden);
        for (int rep = 0; rep < 3; ++rep) {
            ex.set_pdl(true);
            CHECK(ex.pdl() == (ex.cuda()->cc >= 90));
            c.reset();
            c.run();
            CHECK(c.state() == ref);
        }
        ex.set_pdl(true);
        ex.capture_begin();
        c.run();
        const int graph = ex.capture_end();
        for (int rep = 0; rep < 3; ++rep) {
            c.reset();
            ex.replay(graph);
            CHECK(c.state() == ref);
        }
    }
    ex.set_pdl(saved);
}
