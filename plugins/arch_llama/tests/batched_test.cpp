// Several sequences in one step on the CPU executor: the same greedy tokens and bit-identical logits as each
// sequence run alone, with sequences joining and leaving mid-run; KV blocks of released sequences are reused
// without leaking state; a full KV pool and too many sequences are refused with a clear error, before anything runs.
#include <catch2/catch.hpp>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "exec/cpu/cpu_executor.h"
#include "batch_harness.h"
#include "fixture_registry.h"
#include "imp/error.h"
#include "imp/model.h"
#include "runtime/engine.h"

using namespace imp;
using namespace imp::test;

namespace {

constexpr int kDecode = 6;

std::vector<std::vector<int32_t>> random_prompts(int n, int64_t n_vocab, uint32_t seed) {
    std::mt19937 g(seed);
    std::uniform_int_distribution<int> len(1, 200);
    std::uniform_int_distribution<int32_t> tok(0, int32_t(n_vocab - 1));
    std::vector<std::vector<int32_t>> p(static_cast<size_t>(n));
    for (auto& v : p) {
        v.resize(size_t(len(g)));
        for (auto& x : v) x = tok(g);
    }
    p[0].resize(1);  // a one-token prompt is the first step's decode row
    return p;
}

}  // namespace

TEST_CASE("sequences stepped together equal each sequence alone (CPU, bit for bit)", "[arch_llama][batch]") {
    for (const std::string name : {"llama_tiny.gguf", "qwen3_tiny"}) {
        INFO(name);
        auto src = open_model(kFixtures + "/" + name);
        CpuExecutor ex(2);
        EngineOptions opt;
        opt.max_seq_len = 256;
        opt.prefill_chunk = 96;  // prompts span several passes, and passes mix sequences
        opt.max_seqs = 16;
        Engine together(*src, full_registry(), ex, opt);
        EngineOptions one = opt;
        one.max_seqs = 1;
        Engine alone(*src, full_registry(), ex, one);
        const auto prompts = random_prompts(16, together.desc().n_vocab, 7);
        std::vector<int> join(16);
        for (int i = 0; i < 16; ++i) join[size_t(i)] = i < 6 ? 0 : (i * 3) % 11;  // six at once, the rest later
        const auto got = run_together(together, prompts, join, kDecode);
        for (size_t i = 0; i < prompts.size(); ++i) {
            INFO("sequence " << i << ", prompt of " << prompts[i].size() << ", joins at step " << join[i]);
            const Trace ref = run_alone(alone, prompts[i], kDecode);
            CHECK(got[i].tokens == ref.tokens);
            CHECK(got[i].logits == ref.logits);
        }
        CHECK(together.free_kv_blocks() == together.plan().kv_blocks - 1);  // every block back in the pool
    }
}

TEST_CASE("a released sequence's KV blocks are reused without leaking its state", "[arch_llama][batch]") {
    auto src = open_model(kFixtures + "/llama3_tiny");
    CpuExecutor ex(2);
    EngineOptions opt;
    opt.max_seq_len = 64;
    opt.max_seqs = 2;
    opt.kv_blocks = 4;  // exactly the 4 blocks of 16 that the 60-token sequence a needs
    Engine e(*src, full_registry(), ex, opt);
    std::vector<int32_t> a(60), b(40);
    for (size_t i = 0; i < a.size(); ++i) a[i] = int32_t((i * 37 + 5) % size_t(e.desc().n_vocab));
    for (size_t i = 0; i < b.size(); ++i) b[i] = int32_t((i * 11 + 3) % size_t(e.desc().n_vocab));
    const size_t V = size_t(e.desc().n_vocab);
    // b alone on a fresh engine.
    std::vector<float> fresh(V), reused(V);
    {
        Engine f(*src, full_registry(), ex, opt);
        const SeqId s = f.add_sequence();
        f.step(std::vector<SeqWork>{{s, b.data(), int64_t(b.size())}}, fresh.data());
    }
    // a fills 4 blocks, is released; b then takes (some of) the same blocks.
    const SeqId sa = e.add_sequence();
    e.step(std::vector<SeqWork>{{sa, a.data(), int64_t(a.size())}});
    CHECK(e.free_kv_blocks() == 0);
    e.release_sequence(sa);
    CHECK(e.free_kv_blocks() == 4);
    const SeqId sb = e.add_sequence();
    e.step(std::vector<SeqWork>{{sb, b.data(), int64_t(b.size())}}, reused.data());
    CHECK(reused == fresh);
}

TEST_CASE("a full KV pool or too many sequences is refused before anything runs", "[arch_llama][batch]") {
    auto src = open_model(kFixtures + "/llama_tiny.gguf");
    CpuExecutor ex(1);
    EngineOptions opt;
    opt.max_seq_len = 64;
    opt.max_seqs = 2;
    opt.kv_blocks = 3;
    Engine e(*src, full_registry(), ex, opt);
    std::vector<int32_t> t(70, 1);
    const SeqId s0 = e.add_sequence(), s1 = e.add_sequence();
    CHECK_THROWS_WITH(e.add_sequence(), Catch::Contains("all 2 are in use") && Catch::Contains("runtime.max_seqs"));
    e.step(std::vector<SeqWork>{{s0, t.data(), 30}});  // 2 blocks
    CHECK(e.position(s0) == 30);
    // s0 + 20 needs two more blocks and s1 + 20 two: 4 > 1 free. Nothing runs, nothing moves.
    CHECK_THROWS_WITH(e.step(std::vector<SeqWork>{{s0, t.data(), 20}, {s1, t.data(), 20}}),
                      Catch::Contains("KV pool exhausted") && Catch::Contains("4 more blocks") &&
                          Catch::Contains("1 of 3 are free"));
    CHECK(e.position(s0) == 30);
    CHECK(e.position(s1) == 0);
    CHECK(e.free_kv_blocks() == 1);
    CHECK_THROWS_WITH(e.step(std::vector<SeqWork>{{s1, t.data(), 65}}), Catch::Contains("context overflow"));
    CHECK_THROWS_WITH(e.step(std::vector<SeqWork>{{s0, t.data(), 1}, {s0, t.data(), 1}}), Catch::Contains("twice"));
    CHECK_THROWS_WITH(e.step(std::vector<SeqWork>{{7, t.data(), 1}}), Catch::Contains("unknown sequence id 7"));
    e.release_sequence(s0);
    CHECK(e.free_kv_blocks() == 3);
    CHECK_THROWS_WITH(e.release_sequence(s0), Catch::Contains("unknown sequence id"));
}

TEST_CASE("prefix caching: a prompt started on kept KV blocks gives the logits of running it whole", "[arch_llama][batch]") {
    // EngineOptions::prefix_cache: sequence a runs prompt p and decodes, is released; b's prompt shares p's first 40
    // tokens, so it starts on a's first two 16-token blocks and runs the other 28 tokens; its logits (prompt end and
    // decode steps) equal those of the whole prompt on an engine without the cache, bit for bit on the CPU.
    for (const std::string name : {"llama_tiny.gguf", "qwen3_tiny"}) {
        INFO(name);
        auto src = open_model(kFixtures + "/" + name);
        CpuExecutor ex(2);
        EngineOptions opt;
        opt.max_seq_len = 128;
        opt.max_seqs = 2;
        opt.prefill_chunk = 24;  // prompts in several passes
        EngineOptions on = opt;
        on.prefix_cache = true;
        Engine cached(*src, full_registry(), ex, on), plain(*src, full_registry(), ex, opt);
        REQUIRE(cached.prefix_cache());
        REQUIRE_FALSE(plain.prefix_cache());
        const int64_t n_vocab = cached.desc().n_vocab;
        const size_t V = size_t(n_vocab);
        std::vector<int32_t> p(50), q(60);
        for (size_t i = 0; i < p.size(); ++i) p[i] = int32_t((i * 37 + 5) % size_t(n_vocab));
        for (size_t i = 0; i < q.size(); ++i) q[i] = i < 40 ? p[i] : int32_t((i * 13 + 1) % size_t(n_vocab));
        const SeqId a = cached.add_sequence();
        CHECK(cached.attach_prefix(a, p) == 0);  // nothing kept yet
        cached.step(std::vector<SeqWork>{{a, p.data(), int64_t(p.size())}});
        for (int32_t t : {3, 9, 27}) cached.step(std::vector<SeqWork>{{a, &t, 1}});
        cached.release_sequence(a);
        const SeqId b = cached.add_sequence();
        REQUIRE(cached.attach_prefix(b, q) == 32);
        CHECK(cached.position(b) == 32);
        const SeqId r = plain.add_sequence();
        std::vector<float> got(V), ref(V);
        cached.step(std::vector<SeqWork>{{b, q.data() + 32, int64_t(q.size()) - 32}}, got.data());
        plain.step(std::vector<SeqWork>{{r, q.data(), int64_t(q.size())}}, ref.data());
        CHECK(got == ref);
        for (int32_t t : {5, 77, 2}) {
            cached.step(std::vector<SeqWork>{{b, &t, 1}}, got.data());
            plain.step(std::vector<SeqWork>{{r, &t, 1}}, ref.data());
            CHECK(got == ref);
        }
        // The whole of p again (a's blocks, and the block a's decode tokens filled: p is 50 tokens + 3 decoded).
        cached.release_sequence(b);
        const SeqId c = cached.add_sequence();
        std::vector<int32_t> pa = p;
        for (int32_t t : {3, 9, 27}) pa.push_back(t);
        CHECK(cached.attach_prefix(c, pa) == 48);
        cached.release_sequence(c);
        CHECK(cached.free_kv_blocks() == cached.plan().kv_blocks - 1);  // kept blocks nobody holds are free
    }
}
