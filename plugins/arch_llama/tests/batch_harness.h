// Shared by the batched tests (arch_llama, arch_qwen_moe, arch_gdn): a sequence run alone through an engine, and several run
// together through Engine::step with sequences joining mid-run, each recording its greedy tokens and the logits
// they were picked from.
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "imp/model.h"
#include "runtime/engine.h"

namespace imp::test {

struct Trace {
    std::vector<int32_t> tokens;   // greedy continuation
    std::vector<float> logits;     // [steps, n_vocab]: logits each token was picked from
};

// One sequence alone: prompt, then n_decode greedy tokens.
inline Trace run_alone(Engine& e, const std::vector<int32_t>& prompt, int n_decode) {
    Trace t;
    const size_t V = size_t(e.desc().n_vocab);
    std::vector<float> lg(V);
    e.reset();
    e.forward(prompt.data(), int64_t(prompt.size()), lg.data());
    for (int i = 0; i < n_decode; ++i) {
        t.logits.insert(t.logits.end(), lg.begin(), lg.end());
        const int32_t tok = e.sample(SamplingParams{}, uint64_t(i), nullptr, 0);
        t.tokens.push_back(tok);
        if (i + 1 < n_decode) e.forward(&tok, 1, lg.data());
    }
    return t;
}

// All sequences through one engine: sequence i joins at step join[i] (its prompt in that step, beside the other
// sequences' decode rows) and leaves after n_decode tokens; finished sequences are released at once.
inline std::vector<Trace> run_together(Engine& e, const std::vector<std::vector<int32_t>>& prompts,
                                       const std::vector<int>& join, int n_decode) {
    const size_t n = prompts.size(), V = size_t(e.desc().n_vocab);
    std::vector<Trace> out(n);
    std::vector<SeqId> id(n, -1);
    std::vector<int32_t> next(n);
    for (int step = 0;; ++step) {
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
        if (work.empty()) {
            if (std::all_of(join.begin(), join.end(), [&](int j) { return j < step; })) break;
            continue;
        }
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
            if (t.tokens.size() == size_t(n_decode)) {
                e.release_sequence(id[who[w]]);
                id[who[w]] = -1;
            }
        }
    }
    return out;
}

}  // namespace imp::test
