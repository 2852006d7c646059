// kv_store + attention for one sequence (the n_seqs = 1 case of a step) against the CPU reference: every KV dtype,
// GQA, head_dim 64/128/256 and odd sizes, shuffled and in-order block tables, history before the rows, prefills
// through the tensor-core and fp32 kernels, decode through the split-KV and one-kernel paths (attention_test_util.h
// states the runs and tolerances), a captured prefill step replayed at other positions with PDL on and off, and
// the shapes attention rejects.
#include <algorithm>
#include <numeric>

#include "exec/cuda/attention_test_util.h"
#include "imp/error.h"

using namespace imp;
using namespace imp::cuda_test;

namespace {

struct AttnCase {
    DType dtype;
    int n_head, n_kv, hd;
    int32_t n_tokens, pos0;
    int64_t capacity;  // positions the block table addresses (max_blocks * 16)
    bool shuffle;
};

void run_case(const AttnCase& t, bool bf16_inputs) {
    const int32_t need = (t.pos0 + t.n_tokens + 15) / 16;
    const int32_t extra = std::max<int32_t>(0, int32_t(t.capacity / 16) - need);
    run_step({t.dtype, t.n_head, t.n_kv, t.hd}, {{t.pos0, t.n_tokens}}, extra, bf16_inputs, t.shuffle);
}

}  // namespace

TEST_CASE("cuda: prefill attention matches the CPU (dtypes, GQA, head dims, paging)", "[cuda][attention]") {
    const AttnCase cases[] = {
        {DType::F32, 8, 2, 64, 37, 0, 128, true},       {DType::F32, 4, 4, 128, 64, 50, 256, false},
        {DType::BF16, 16, 2, 128, 200, 300, 512, true}, {DType::BF16, 8, 1, 256, 33, 17, 64, true},
        {DType::F16, 6, 3, 80, 20, 5, 32, true},         {DType::F32, 4, 2, 33, 9, 100, 128, true},
        {DType::F8_E4M3, 8, 2, 128, 50, 70, 128, true},  {DType::BF16, 32, 8, 128, 512, 0, 512, true},
        {DType::BF16, 32, 2, 64, 3, 9, 16, false},       {DType::F16, 12, 4, 256, 70, 0, 80, true},
        {DType::BF16, 10, 2, 96, 41, 23, 64, true},      {DType::F8_E4M3, 4, 1, 64, 17, 0, 32, false},
        {DType::BF16, 16, 2, 256, 100, 30, 160, true},   {DType::F16, 6, 2, 200, 40, 9, 64, true},  // hd 256 mma
    };
    for (const AttnCase& c : cases) run_case(c, false);
    run_case({DType::BF16, 16, 4, 128, 100, 60, 160, true}, true);
    run_case({DType::BF16, 8, 8, 64, 16, 0, 16, true}, true);
}

TEST_CASE("cuda: tensor-core prefill attention matches the CPU (BF16/F16/FP8, GQA, tails, offsets, paging)",
          "[cuda][attention]") {
    const AttnCase cases[] = {
        {DType::BF16, 8, 8, 64, 17, 0, 32, true},       {DType::BF16, 32, 8, 128, 77, 0, 80, true},
        {DType::BF16, 32, 4, 128, 300, 123, 432, true}, {DType::BF16, 16, 4, 64, 1000, 0, 1008, true},
        {DType::BF16, 8, 1, 128, 1000, 37, 1040, false}, {DType::BF16, 8, 8, 128, 16, 1000, 1024, true},
        {DType::BF16, 12, 3, 96, 45, 10, 64, true},     {DType::BF16, 4, 4, 64, 300, 0, 304, false},
        {DType::BF16, 16, 2, 64, 77, 64, 160, true},    {DType::F16, 16, 16, 128, 77, 45, 128, true},
        {DType::F16, 32, 8, 64, 300, 0, 304, true},     {DType::F16, 16, 2, 128, 17, 500, 528, true},
        {DType::F8_E4M3, 32, 8, 128, 77, 0, 80, true},  {DType::F8_E4M3, 16, 4, 64, 300, 123, 432, true},
        {DType::F8_E4M3, 8, 1, 128, 1000, 37, 1040, false}, {DType::F8_E4M3, 12, 3, 96, 45, 10, 64, true},
    };
    for (const AttnCase& c : cases) run_case(c, false);
    run_case({DType::BF16, 32, 8, 128, 300, 100, 400, true}, true);
    run_case({DType::BF16, 8, 1, 64, 1000, 0, 1008, true}, true);
}

// Decode (one row): the split-KV path and, for BF16 / F16 with head_dim 64 / 128 and group <= 8, the one-kernel
// decode with 8 and 4 warps (run_step runs all three).
TEST_CASE("cuda: decode attention (split over KV blocks) matches the CPU", "[cuda][attention]") {
    const AttnCase cases[] = {
        {DType::BF16, 32, 8, 128, 1, 1000, 4096, true}, {DType::F32, 8, 8, 64, 1, 0, 64, false},
        {DType::F8_E4M3, 16, 4, 256, 1, 777, 2048, true}, {DType::F16, 6, 2, 33, 1, 40, 256, true},
        {DType::BF16, 20, 1, 256, 1, 300, 512, true},   {DType::BF16, 32, 1, 128, 1, 4095, 4096, true},
        {DType::F32, 12, 4, 80, 1, 129, 160, true},     {DType::BF16, 64, 4, 128, 1, 15, 32768, true},
        {DType::F16, 16, 2, 64, 1, 500, 4096, true},
    };
    for (const AttnCase& c : cases) run_case(c, false);
    run_case({DType::BF16, 16, 2, 128, 1, 2000, 2048, true}, true);
}

// A prefill step (kv_store of the chunk at its slots, then attention) captured once with PDL as the executor has
// it, replayed for chunks at other first positions (positions and slots from device memory); the same step run
// directly with PDL off gives the same bits.
TEST_CASE("cuda: a captured tensor-core prefill step replays at other positions, PDL on or off", "[cuda][attention]") {
    const uint32_t seed = fresh_seed();
    INFO("seed " << seed);
    std::mt19937 rng(seed);
    const AttnShape sh{DType::BF16, 16, 4, 128};
    const int32_t n = 77, cap = 256;
    Step st = make_step({{cap - n, n}}, 0, rng);  // one sequence whose table covers [0, 256)
    Pool pool = make_pool(sh.dtype, st.n_blocks, sh.n_kv, sh.hd);
    const int64_t width = int64_t(sh.n_kv) * sh.hd;
    std::vector<int32_t> all(cap);
    for (int32_t p = 0; p < cap; ++p) all[size_t(p)] = st.slot_of(0, p);
    const auto hk = rand_vec(rng, size_t(cap * width), -2.f, 2.f), hv = rand_vec(rng, size_t(cap * width), -2.f, 2.f);
    store_rows(pool, hk, hv, width, all);  // history everywhere; each step overwrites its chunk
    const int64_t qn = int64_t(sh.n_head) * sh.hd;
    const size_t out_n = size_t(n * qn), kv_n = size_t(n * width);
    float* dq = to_dev(std::vector<float>(out_n));
    float* dk = to_dev(std::vector<float>(kv_n));
    float* dv = to_dev(std::vector<float>(kv_n));
    float* dout = to_dev(std::vector<float>(out_n));
    const AttentionParams p = attn_params(sh);
    CudaExecutor& ex = gpu();
    const bool tc_default = gpu().attention_options().tensor_cores, pdl_default = ex.pdl();
    gpu().attention_options().tensor_cores = true;
    const StepBatch gb = st.batch(true);
    auto step = [&] {
        ex.kv_store(pool.g, dk, width, dv, width, gb.slot_mapping, n);
        ex.attention(dq, qn, pool.g, dout, p, gb);
    };
    const CudaAllocStats before = cuda_alloc_stats();
    ex.capture_begin();
    step();
    const int graph = ex.capture_end();
    for (int32_t pos0 : {0, 1, 63, 100, 179}) {
        INFO("first position " << pos0);
        const auto q = rand_vec(rng, out_n, -3.f, 3.f);
        const auto k = rand_vec(rng, kv_n, -2.f, 2.f), v = rand_vec(rng, kv_n, -2.f, 2.f);
        for (int32_t i = 0; i < n; ++i) {
            st.token_pos[size_t(i)] = pos0 + i;
            st.slots[size_t(i)] = st.slot_of(0, pos0 + i);
        }
        st.seq_lens[0] = pos0 + n;
        st.upload();
        ex.upload(dq, q.data(), q.size() * 4);
        ex.upload(dk, k.data(), k.size() * 4);
        ex.upload(dv, v.data(), v.size() * 4);
        ex.replay(graph);
        const auto got = from_dev(dout, out_n);
        cpu().kv_store(pool.c, k.data(), width, v.data(), width, st.slots.data(), n);
        std::vector<float> ref(out_n);
        cpu().attention(q.data(), qn, pool.c, ref.data(), p, st.batch(false));
        CHECK(max_rel_err(got, ref) <= 5e-5);
        ex.set_pdl(!pdl_default);
        step();
        ex.set_pdl(pdl_default);
        CHECK(from_dev(dout, out_n) == got);
    }
    gpu().attention_options().tensor_cores = tc_default;
    CHECK(cuda_alloc_stats().mallocs == before.mallocs);
}

// Each refusal is asserted by its message: "no CUDA device" is an imp::Error too, so a bare CHECK_THROWS_AS would
// pass on a machine without a GPU.
TEST_CASE("cuda: attention rejects shapes and steps it cannot run", "[cuda][attention]") {
    using Catch::Contains;
    gpu();  // no device: fails here
    std::mt19937 rng(fresh_seed());
    Step st = make_step({{0, 1}}, 0, rng);
    const StepBatch b = st.batch(true);
    KVCacheView kv;
    kv.dtype = DType::BF16;
    kv.n_blocks = st.n_blocks;
    kv.n_kv_heads = 1;
    kv.head_dim = 320;
    AttentionParams p;
    p.n_head = 1;
    p.n_kv_head = 1;
    p.head_dim = 320;
    CHECK_THROWS_WITH(gpu().attention(nullptr, 320, kv, nullptr, p, b),
                      Contains("cuda attention: head_dim 320 is not supported (1..256)"));
    kv.head_dim = p.head_dim = 64;
    p.n_kv_head = 2;
    CHECK_THROWS_WITH(gpu().attention(nullptr, 64, kv, nullptr, p, b),
                      Contains("cuda attention: 1 heads / 2 KV heads of dim 64 do not fit the KV cache (1 heads"));
    p.n_kv_head = 1;
    kv.dtype = DType::I8;
    CHECK_THROWS_WITH(gpu().attention(nullptr, 64, kv, nullptr, p, b),
                      Contains("cuda attention: KV cache dtype I8 is not supported"));
    CHECK_THROWS_WITH(gpu().kv_store(kv, nullptr, 64, nullptr, 64, b.slot_mapping, 1),
                      Contains("cuda kv_store: KV cache dtype I8 is not supported"));
    kv.dtype = DType::BF16;
    StepBatch bad = b;
    bad.block_tables = nullptr;
    CHECK_THROWS_WITH(gpu().attention(nullptr, 64, kv, nullptr, p, bad),
                      Contains("cuda attention: step of 1 rows needs n_seqs > 0"));
    bad = b;
    bad.n_tokens = 2;  // all_decode with two rows for one sequence
    CHECK_THROWS_WITH(gpu().attention(nullptr, 64, kv, nullptr, p, bad),
                      Contains("cuda attention: an all-decode step has one row per sequence, but 2 rows for 1"));
    bad = b;
    bad.max_blocks = 0;
    CHECK_THROWS_WITH(gpu().attention(nullptr, 64, kv, nullptr, p, bad),
                      Contains("cuda attention: KV block size 16 and block-table width 0 must be positive"));
}
