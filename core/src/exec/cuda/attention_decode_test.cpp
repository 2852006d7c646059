// Decode attention in graphs and at many lengths: a decode step (kv_store + attention) of 1, 5 or 16 sequences
// captured once and replayed after new positions, new block tables and new slots were written to device memory
// (split-KV path, one-kernel decode with 8 and 4 warps, the tensor-core kernel; a padding sequence in the batch);
// the one-kernel decode against the CPU, the split-KV path and itself (same bits) at positions 0 .. 4000 under a
// block table just wide enough and a much wider one; head_dim 64, 128 and 256 (AttnOptions::decode_hd256 on).
// Tolerance: max |gpu - cpu| / max |cpu| <= 5e-5 (same pool on both).
#include <algorithm>
#include <functional>
#include <numeric>

#include "exec/cuda/attention_test_util.h"

using namespace imp;
using namespace imp::cuda_test;

namespace {

// n_seqs sequences (the last one padding when n_seqs >= 3) over a pool of 1 + real * max_blocks blocks, every block
// but the zero block holding history. Replay i puts sequence 0 at positions[i], the others at random positions
// below max_blocks * 16, and deals the pool's blocks to the sequences in a new random order.
void decode_graph_case(const AttnShape& sh, int n_seqs, int32_t max_blocks, const std::vector<int32_t>& positions,
                       bool old, int warps = 0, int mma_rows = 0) {
    const uint32_t seed = fresh_seed();
    INFO("seed " << seed << " dtype " << dtype_name(sh.dtype) << " heads " << sh.n_head << "/" << sh.n_kv << " hd "
                 << sh.hd << " sequences " << n_seqs << " max_blocks " << max_blocks << " split-KV path " << old
                 << " warps " << warps << " tensor-core decode from " << mma_rows << " rows");
    std::mt19937 rng(seed);
    const bool pad = n_seqs >= 3;
    const int real = pad ? n_seqs - 1 : n_seqs;
    std::vector<SeqSpec> specs(size_t(real), SeqSpec{max_blocks * 16 - 1, 1});
    if (pad) specs.push_back({0, 1, true});
    Step st = make_step(specs, 0, rng, 0);  // n_blocks = 1 + real * max_blocks
    REQUIRE(st.max_blocks == max_blocks);
    Pool pool = make_pool(sh.dtype, st.n_blocks, sh.n_kv, sh.hd);
    const int64_t width = int64_t(sh.n_kv) * sh.hd, qn = int64_t(sh.n_head) * sh.hd;
    std::vector<int32_t> all(size_t((st.n_blocks - 1) * 16));
    std::iota(all.begin(), all.end(), 16);
    store_rows(pool, rand_vec(rng, all.size() * size_t(width), -2.f, 2.f),
               rand_vec(rng, all.size() * size_t(width), -2.f, 2.f), width, all);

    const size_t n = size_t(n_seqs);
    float* dq = to_dev(std::vector<float>(n * size_t(qn)));
    float* dk = to_dev(std::vector<float>(n * size_t(width)));
    float* dv = to_dev(std::vector<float>(n * size_t(width)));
    float* dout = to_dev(std::vector<float>(n * size_t(qn)));
    const AttentionParams p = attn_params(sh);
    CudaExecutor& ex = gpu();
    const AttnOptionsGuard guard;
    const bool old_default = gpu().attention_options().decode_split;
    gpu().attention_options().decode_split = old;
    gpu().attention_options().decode_warps = warps;
    gpu().attention_options().decode_hd256 = true;  // head_dim 256 takes the one-kernel decode too
    gpu().attention_options().decode_mma_rows = mma_rows;
    const CudaAllocStats before = cuda_alloc_stats();
    const StepBatch gb = st.batch(true);
    REQUIRE(gb.query_start_loc);  // what the tensor-core decode reads
    ex.capture_begin();
    ex.kv_store(pool.g, dk, width, dv, width, gb.slot_mapping, gb.n_tokens);
    ex.attention(dq, qn, pool.g, dout, p, gb);
    const int graph = ex.capture_end();
    {  // the kernel the options chose is the one in the graph
        int mma = 0;
        for (const auto& name : ex.graph_kernel_names(graph)) mma += name.find("attn_mma_kernel") != std::string::npos;
        CHECK(mma == (mma_rows > 0 && n_seqs >= mma_rows ? 1 : 0));
    }
    gpu().attention_options().decode_split = old_default;
    gpu().attention_options().decode_warps = 0;
    gpu().attention_options().decode_hd256 = guard.saved.decode_hd256;
    gpu().attention_options().decode_mma_rows = guard.saved.decode_mma_rows;
    std::uniform_int_distribution<int32_t> any_pos(0, max_blocks * 16 - 1);
    std::vector<int32_t> blocks(size_t(st.n_blocks - 1));
    std::iota(blocks.begin(), blocks.end(), 1);
    for (int32_t pos0 : positions) {
        std::shuffle(blocks.begin(), blocks.end(), rng);
        for (int s = 0; s < real; ++s) {
            std::copy_n(blocks.begin() + s * max_blocks, max_blocks, st.tables.begin() + s * max_blocks);
            st.token_pos[size_t(s)] = s == 0 ? pos0 : any_pos(rng);
            st.slots[size_t(s)] = st.slot_of(s, st.token_pos[size_t(s)]);
            st.seq_lens[size_t(s)] = st.token_pos[size_t(s)] + 1;
        }
        st.upload();
        INFO("position of sequence 0: " << pos0);
        const auto q = rand_vec(rng, n * size_t(qn), -3.f, 3.f);
        const auto k = rand_vec(rng, n * size_t(width), -2.f, 2.f);
        const auto v = rand_vec(rng, n * size_t(width), -2.f, 2.f);
        ex.upload(dq, q.data(), q.size() * 4);
        ex.upload(dk, k.data(), k.size() * 4);
        ex.upload(dv, v.data(), v.size() * 4);
        ex.replay(graph);
        const auto got = from_dev(dout, n * size_t(qn));
        cpu().kv_store(pool.c, k.data(), width, v.data(), width, st.slots.data(), int64_t(n));
        std::vector<float> ref(n * size_t(qn));
        cpu().attention(q.data(), qn, pool.c, ref.data(), p, st.batch(false));
        CHECK(max_rel_err(got, ref) <= 5e-5);
        ex.replay(graph);  // same inputs again (the step rewrites the same K/V): same bits
        CHECK(from_dev(dout, n * size_t(qn)) == got);
    }
    CHECK(cuda_alloc_stats().mallocs == before.mallocs);
}

}  // namespace

// The captured decode step's cases, dealt into 8 test cases (part k runs the cases k, k + 8, ...) so that each
// sanitizer run, one test case, ends within its limit (4 parts: racecheck stopped one at 528 s).
static void captured_decode_part(size_t part, size_t parts) {
    const std::vector<int32_t> steps{0, 1, 15, 16, 17, 63, 64, 65, 200, 511, 512, 777, 1000, 1023};
    const std::vector<int32_t> far{0, 1, 15, 16, 17, 100, 511, 1000, 4000, 4095, 2047, 31};
    std::vector<std::function<void()>> cases;
    for (bool old : {true, false})
        for (int n : {1, 5, 16})
            cases.push_back([=] { decode_graph_case({DType::BF16, 16, 4, 128}, n, 64, steps, old); });
    cases.push_back([=] { decode_graph_case({DType::BF16, 16, 2, 64}, 1, 256, far, false); });     // group 8, hd 64
    cases.push_back([=] { decode_graph_case({DType::BF16, 16, 2, 64}, 5, 256, far, false, 4); });  // 4-warp CTAs
    cases.push_back([=] { decode_graph_case({DType::F16, 8, 8, 128}, 1, 512, far, false); });      // group 1, table >> position
    cases.push_back([=] { decode_graph_case({DType::BF16, 32, 8, 128}, 1, 1024, far, false); });  // the 8B shape
    cases.push_back([=] { decode_graph_case({DType::BF16, 32, 8, 128}, 1, 1024, far, false, 4); });
    cases.push_back([=] { decode_graph_case({DType::BF16, 32, 8, 128}, 16, 256, far, false); });
    cases.push_back([=] { decode_graph_case({DType::BF16, 32, 8, 128}, 16, 256, far, true); });
    cases.push_back([=] { decode_graph_case({DType::F16, 12, 4, 64}, 3, 128, {0, 5, 16, 700, 2047, 1}, false); });  // group 3
    cases.push_back([=] { decode_graph_case({DType::BF16, 16, 2, 256}, 1, 256, far, false); });  // Qwen3.6 full attention: group 8, hd 256
    cases.push_back([=] { decode_graph_case({DType::BF16, 16, 2, 256}, 5, 256, far, false, 4); });  // 4-warp CTAs (two lanes per key)
    cases.push_back([=] { decode_graph_case({DType::F32, 8, 2, 64}, 5, 64, {0, 5, 16, 700, 1023, 1}, true); });
    // the tensor-core decode (decode_attention_mma_rows): the 8B shape, group 8 / hd 64, hd 256; a threshold above
    // the step's rows leaves the step to the other kernels
    cases.push_back([=] { decode_graph_case({DType::BF16, 32, 8, 128}, 16, 256, far, false, 0, 1); });
    cases.push_back([=] { decode_graph_case({DType::F16, 16, 2, 64}, 5, 256, far, false, 0, 5); });
    cases.push_back([=] { decode_graph_case({DType::BF16, 16, 2, 256}, 5, 256, far, false, 0, 1); });
    cases.push_back([=] { decode_graph_case({DType::BF16, 16, 4, 128}, 5, 64, steps, false, 0, 6); });
    for (size_t i = part; i < cases.size(); i += parts) {
        INFO("case " << i << " of " << cases.size());
        cases[i]();
    }
}

#define CAPTURED_DECODE(K)                                                                                      \
    TEST_CASE("cuda: a captured decode step (kv_store + attention) replays at every length and block table (part " \
              #K " of 8)",                                                                                      \
              "[cuda][attention]") {                                                                            \
        captured_decode_part(K - 1, 8);                                                                         \
    }
CAPTURED_DECODE(1)
CAPTURED_DECODE(2)
CAPTURED_DECODE(3)
CAPTURED_DECODE(4)
CAPTURED_DECODE(5)
CAPTURED_DECODE(6)
CAPTURED_DECODE(7)
CAPTURED_DECODE(8)
#undef CAPTURED_DECODE

// One sequence over a pool of 8192 positions; a narrower table is a prefix of the wide one.
TEST_CASE("cuda: one-kernel decode attention matches the CPU (BF16/F16, hd 64/128/256, GQA 1/4/8, table widths)",
          "[cuda][attention]") {
    const int32_t cap = 8192;
    const int32_t positions[] = {0, 1, 15, 16, 17, 100, 511, 1000, 4000};
    const AttnOptionsGuard guard;
    const bool old_default = gpu().attention_options().decode_split;
    gpu().attention_options().decode_hd256 = true;  // [plugin.core] decode_attention_hd256
    for (DType dt : {DType::BF16, DType::F16})
        for (int hd : {64, 128, 256})  // 256: Qwen3.5/3.6 full attention (16 / 2 heads: group 8)
            // hd 256 also at groups 2, 3 and 6 (its GP 2 instance; padded head slots in GP 4 and 8)
            for (int group : hd == 256 ? std::vector<int>{1, 2, 3, 6, 8} : std::vector<int>{1, 4, 8}) {
                const int n_kv = hd == 128 && group == 4 ? 8 : 2;
                const AttnShape sh{dt, n_kv * group, n_kv, hd};
                const uint32_t seed = fresh_seed();
                INFO("seed " << seed << " dtype " << dtype_name(dt) << " heads " << sh.n_head << "/" << n_kv << " hd "
                             << hd);
                std::mt19937 rng(seed);
                Step full = make_step({{cap - 1, 1}}, 0, rng, 0);
                Pool pool = make_pool(dt, full.n_blocks, n_kv, hd);
                const int64_t width = int64_t(n_kv) * hd;
                std::vector<int32_t> all(static_cast<size_t>(cap));
                for (int32_t i = 0; i < cap; ++i) all[size_t(i)] = full.slot_of(0, i);
                store_rows(pool, rand_vec(rng, size_t(cap * width), -2.f, 2.f),
                           rand_vec(rng, size_t(cap * width), -2.f, 2.f), width, all);
                const int64_t qn = int64_t(sh.n_head) * hd;
                float* dq = to_dev(std::vector<float>(size_t(qn)));
                float* dout = to_dev(std::vector<float>(size_t(qn)));
                const AttentionParams p = attn_params(sh);
                for (int32_t pos : positions)
                    for (int32_t mb : {(pos + 16) / 16, cap / 16}) {
                        INFO("position " << pos << " table width " << mb << " blocks");
                        Step st = full;
                        st.d_pos = st.d_seq = st.d_qsl = st.d_lens = st.d_tables = st.d_slots = nullptr;
                        st.max_blocks = mb;
                        st.tables.resize(size_t(mb));
                        st.token_pos = {pos};
                        st.slots = {st.slot_of(0, pos)};
                        st.seq_lens = {pos + 1};
                        st.upload();
                        const auto q = rand_vec(rng, size_t(qn), -3.f, 3.f);
                        gpu().upload(dq, q.data(), q.size() * 4);
                        std::vector<float> ref(static_cast<size_t>(qn));
                        cpu().attention(q.data(), qn, pool.c, ref.data(), p, st.batch(false));
                        // one-kernel decode with 8 warps, again, with 4 warps, again; split-KV
                        std::vector<float> got[5];
                        for (int run = 0; run < 5; ++run) {
                            gpu().attention_options().decode_split = run == 4;
                            gpu().attention_options().decode_warps = run < 2 ? 8 : 4;
                            gpu().upload(dout, std::vector<float>(size_t(qn), NAN).data(), size_t(qn) * 4);
                            gpu().attention(dq, qn, pool.g, dout, p, st.batch(true));
                            got[run] = from_dev(dout, size_t(qn));
                        }
                        gpu().attention_options().decode_split = old_default;
                        gpu().attention_options().decode_warps = 0;
                        INFO("err 8 warps " << max_rel_err(got[0], ref) << " 4 warps " << max_rel_err(got[2], ref)
                                            << " split-KV " << max_rel_err(got[4], ref));
                        CHECK(max_rel_err(got[0], ref) <= 5e-5);
                        CHECK(max_rel_err(got[2], ref) <= 5e-5);
                        CHECK(max_rel_err(got[4], ref) <= 5e-5);
                        CHECK(got[0] == got[1]);
                        CHECK(got[2] == got[3]);
                        if (pos >= 100) CHECK(got[0] != got[4]);  // the one-kernel path did run
                    }
            }
}
