// Attention over steps of several sequences against the CPU (attention_test_util.h: runs and tolerances): N = 1..16
// sequences of different lengths (1..200 rows, chunks that start mid-sequence), their blocks interleaved and
// shuffled in the pool, a padding sequence (zero block, slot -1), prefill and decode rows mixed in one step (the
// tensor-core and fp32 prefill kernels), all-decode steps (split-KV and one-kernel decode), each with a block table
// just wide enough and a much wider one.
#include <vector>

#include "exec/cuda/attention_test_util.h"

using namespace imp;
using namespace imp::cuda_test;

namespace {

// n sequences: rows in [1, max_rows] (a third of them decode rows when `mixed`), history in [0, max_ctx]; the
// padding sequence (when `pad`) in the middle.
std::vector<SeqSpec> random_seqs(std::mt19937& rng, int n, int32_t max_rows, int32_t max_ctx, bool mixed, bool pad) {
    std::uniform_int_distribution<int32_t> rows(1, max_rows), ctx(0, max_ctx);
    std::vector<SeqSpec> s;
    for (int i = 0; i < n; ++i) s.push_back({ctx(rng), mixed && i % 3 == 1 ? 1 : rows(rng)});
    if (pad) s.insert(s.begin() + n / 2, SeqSpec{0, 1, true});
    return s;
}

}  // namespace

TEST_CASE("cuda: attention over several sequences with prefill and decode rows matches the CPU", "[cuda][attention]") {
    std::mt19937 rng(fresh_seed());
    struct Case {
        AttnShape sh;
        int n_seqs;
        bool mixed, pad;
    };
    const Case cases[] = {
        {{DType::BF16, 32, 8, 128}, 1, false, false}, {{DType::BF16, 32, 8, 128}, 2, true, true},
        {{DType::BF16, 32, 8, 128}, 5, true, true},   {{DType::BF16, 16, 2, 128}, 16, true, true},
        {{DType::F16, 16, 2, 64}, 3, false, true},    {{DType::F16, 12, 4, 64}, 8, true, false},
        {{DType::BF16, 12, 3, 96}, 4, true, true},    {{DType::F32, 8, 2, 64}, 5, true, true},
        {{DType::F32, 4, 2, 33}, 3, false, true},     {{DType::F8_E4M3, 8, 2, 128}, 4, true, true},
        {{DType::BF16, 8, 1, 256}, 3, true, true},    {{DType::F16, 6, 3, 80}, 6, false, false},
        // Qwen3.5/3.6 full attention (16 / 2 heads of 256): the tensor-core prefill at head_dim 256
        {{DType::BF16, 16, 2, 256}, 3, true, true},   {{DType::F16, 8, 2, 256}, 2, false, false},
        {{DType::BF16, 6, 2, 200}, 2, true, false},  // head_dim 200: padded to 256
    };
    for (const Case& c : cases)
        for (int32_t extra : {0, 100}) {
            const auto seqs = random_seqs(rng, c.n_seqs, 200, 300, c.mixed, c.pad);
            run_step(c.sh, seqs, extra, false);
        }
    // inputs representable in BF16: the BF16 pool against the F32 CPU pool within 2e-3
    run_step({DType::BF16, 32, 8, 128}, random_seqs(rng, 6, 200, 300, true, true), 7, true);
    // the tensor-core kernel with rows of few sequences only, and one long sequence among short ones
    run_step({DType::BF16, 16, 4, 128}, {{0, 16}, {5, 17}, {0, 1}, {1000, 130}}, 3, false);
    run_step({DType::F16, 8, 8, 64}, {{20, 1}, {0, 200}, {333, 2}, {0, 1, true}, {7, 15}}, 0, false);
    // a server's mixed step: many one-row decodes, then prompt chunks (the tensor-core kernel's grid holds each
    // sequence's tiles plus at most one idle block, found by binary search over the sequences)
    for (int n_dec : {1, 40, 131}) {
        std::uniform_int_distribution<int32_t> ctx(0, 600);
        std::vector<SeqSpec> seqs;
        for (int i = 0; i < n_dec; ++i) seqs.push_back({ctx(rng), 1});
        seqs.push_back({0, 130});
        seqs.push_back({ctx(rng), 17});
        run_step({DType::BF16, 32, 8, 128}, seqs, 3, false);
        run_step({DType::BF16, 16, 2, 256}, seqs, 0, false);
    }
}

TEST_CASE("cuda: decode attention over several sequences matches the CPU (split-KV and one-kernel)",
          "[cuda][attention]") {
    std::mt19937 rng(fresh_seed());
    const AttnShape shapes[] = {
        {DType::BF16, 32, 8, 128}, {DType::F16, 16, 2, 64}, {DType::BF16, 8, 8, 128}, {DType::F16, 12, 4, 64},
        {DType::F32, 8, 2, 64},    {DType::F8_E4M3, 16, 4, 256}, {DType::BF16, 64, 4, 128}, {DType::F16, 6, 2, 33},
        {DType::BF16, 16, 2, 256},  // Qwen3.5/3.6 full attention: the one-kernel decode at head_dim 256
    };
    for (const AttnShape& sh : shapes)
        for (int n : {1, 2, 4, 8, 16})
            for (int32_t extra : {0, 300}) {
                const auto seqs = random_seqs(rng, n, 1, n % 2 ? 2000 : 500, false, n >= 4);
                run_step(sh, seqs, extra, false);
            }
    // a very wide table (the split count of the split-KV path comes from it; the one-kernel decode only when its
    // grid fills the GPU) and short contexts
    run_step({DType::BF16, 32, 8, 128}, random_seqs(rng, 8, 1, 3000, false, true), 2000, false);
    run_step({DType::BF16, 16, 2, 64}, {{0, 1}, {1, 1}, {15, 1}, {16, 1}, {17, 1}, {0, 1, true}}, 0, false);
    run_step({DType::F16, 16, 2, 64}, random_seqs(rng, 32, 1, 1200, false, true), 10, false);
}
