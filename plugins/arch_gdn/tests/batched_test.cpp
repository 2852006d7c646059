// Several sequences in one step through the hybrids on the CPU executor: each sequence keeps its own recurrent
// state slot (conv window + delta-rule state) and KV blocks, so sequences stepped together — joining mid-run, prompts
// spanning several passes, decode rows beside prefill rows — give the logits and greedy tokens of each one alone.
#include <catch2/catch.hpp>

#include <random>
#include <string>
#include <vector>

#include "exec/cpu/cpu_executor.h"
#include "gdn_fixture.h"
#include "imp/model.h"
#include "runtime/engine.h"

using namespace imp;
using namespace imp::test;

namespace {

constexpr int kDecode = 5;

struct Trace {
    std::vector<int32_t> tokens;
    std::vector<float> logits;
};

Trace run_alone(Engine& e, const std::vector<int32_t>& prompt) {
    Trace t;
    const size_t V = size_t(e.desc().n_vocab);
    std::vector<float> lg(V);
    e.reset();
    e.forward(prompt.data(), int64_t(prompt.size()), lg.data());
    for (int i = 0; i < kDecode; ++i) {
        t.logits.insert(t.logits.end(), lg.begin(), lg.end());
        const int32_t tok = e.sample(SamplingParams{}, uint64_t(i), nullptr, 0);
        t.tokens.push_back(tok);
        if (i + 1 < kDecode) e.forward(&tok, 1, lg.data());
    }
    return t;
}

std::vector<Trace> run_together(Engine& e, const std::vector<std::vector<int32_t>>& prompts,
                                const std::vector<int>& join) {
    const size_t n = prompts.size(), V = size_t(e.desc().n_vocab);
    std::vector<Trace> out(n);
    std::vector<SeqId> id(n, -1);
    std::vector<int32_t> next(n);
    for (int step = 0; step < 64; ++step) {
        std::vector<SeqWork> work;
        std::vector<size_t> who;
        for (size_t i = 0; i < n; ++i) {
            if (join[i] == step) {
                id[i] = e.add_sequence();
                work.push_back({id[i], prompts[i].data(), int64_t(prompts[i].size())});
                who.push_back(i);
            } else if (id[i] >= 0) {
                work.push_back({id[i], &next[i], 1});
                who.push_back(i);
            }
        }
        if (work.empty()) continue;
        std::vector<float> lg(work.size() * V);
        e.step(work, lg.data());
        std::vector<SeqSample> rows(work.size());
        for (size_t w = 0; w < work.size(); ++w) rows[w].step = out[who[w]].tokens.size();
        std::vector<int32_t> picked(work.size());
        e.sample(rows, picked.data());
        for (size_t w = 0; w < work.size(); ++w) {
            Trace& t = out[who[w]];
            t.logits.insert(t.logits.end(), lg.begin() + long(w * V), lg.begin() + long((w + 1) * V));
            t.tokens.push_back(picked[w]);
            next[who[w]] = picked[w];
            if (t.tokens.size() == size_t(kDecode)) {
                e.release_sequence(id[who[w]]);  // its slot is reused (zeroed) by a later sequence
                id[who[w]] = -1;
            }
        }
    }
    return out;
}

}  // namespace

TEST_CASE("hybrid sequences stepped together equal each sequence alone (CPU)", "[arch_gdn][batch]") {
    for (const std::string name : {"qwen35moe_tiny.gguf", "qwen3next_tiny"}) {
        INFO(name);
        auto src = open_model(kGdnFixtures + "/" + name);
        CpuExecutor ex(2);
        EngineOptions opt;
        opt.max_seq_len = 128;
        opt.prefill_chunk = 40;
        opt.max_seqs = 4;
        Engine together(*src, gdn_registry(), ex, opt);
        EngineOptions one = opt;
        one.max_seqs = 1;
        Engine alone(*src, gdn_registry(), ex, one);
        std::mt19937 g(12);
        std::vector<std::vector<int32_t>> prompts(7);
        for (size_t i = 0; i < prompts.size(); ++i) {
            prompts[i].resize(i == 0 ? 1 : size_t(1 + g() % 90));
            for (auto& t : prompts[i]) t = int32_t(g() % 320);
        }
        const std::vector<int> join = {0, 0, 1, 2, 6, 7, 9};  // at most 4 alive at once
        const auto got = run_together(together, prompts, join);
        for (size_t i = 0; i < prompts.size(); ++i) {
            INFO("sequence " << i << ", prompt of " << prompts[i].size());
            const Trace ref = run_alone(alone, prompts[i]);
            CHECK(got[i].tokens == ref.tokens);
            CHECK(rel_max(got[i].logits, ref.logits) <= 1e-5);
        }
    }
}
