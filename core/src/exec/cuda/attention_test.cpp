// kv_store + attention (prefill and split-KV decode) against the CPU reference: every KV dtype, GQA, head_dim
// 64/128/256 and odd sizes, paged caches with a shuffled block table, pos0 > 0, and a captured decode graph
// replayed at many lengths. Tolerances (max |gpu - cpu| / max |cpu|): 5e-5 when both read the same cache
// (F32, F16, BF16, FP8 — the stored bytes are checked equal first); 2e-3 for a BF16 cache against a CPU F32
// cache when the inputs are representable in BF16; for arbitrary inputs the BF16 / FP8 rounding of K and V
// itself bounds the difference to a CPU F32 cache (relative L2 <= 1e-2 for BF16, <= 0.1 for FP8 E4M3).
// Prefills the tensor-core kernel takes (BF16 / F16, n_tokens >= 16, head_dim <= 128 a multiple of 8) run it with
// 4 and with 8 warps per CTA (bit-identical: a row's arithmetic does not depend on the CTA) and the fp32 kernel,
// all against the same bounds; the tensor-core and fp32 outputs must differ (so the tensor-core path did run).
// Decode over BF16 / F16 caches with head_dim 64 / 128 and GQA group <= 8 takes the one-kernel decode
// (attention_decode.cuh): checked against the CPU at many positions, with a capacity just above the position and a
// much larger one, against the split-KV path (attention_set_decode_old), for bit-identical repeats, and replayed
// from captured graphs.
#include <algorithm>
#include <cstring>
#include <numeric>

#include "exec/cuda/attention_decode.h"
#include "exec/cuda/attention_mma.h"
#include "exec/cuda/cuda_test_util.h"
#include "imp/error.h"

using namespace imp;
using namespace imp::cuda_test;

namespace {

struct AttnCase {
    DType dtype;
    int n_head, n_kv, hd;
    int64_t n_tokens, pos0, capacity;
    bool shuffle;
};

float bf16_round(float x) { return bf16_to_f32(f32_to_bf16(x)); }

// A KV cache on both executors (and an F32 CPU cache for the precision check).
struct Caches {
    KVCacheView g, c, c32;
    std::vector<int32_t> table;
    std::vector<uint8_t> ck, cv;
    std::vector<float> c32k, c32v;
};

Caches make_caches(const AttnCase& t, std::mt19937& rng) {
    Caches cs;
    const int64_t n_blocks = t.capacity / 16;
    cs.table.resize(size_t(n_blocks));
    std::iota(cs.table.begin(), cs.table.end(), 0);
    if (t.shuffle) std::shuffle(cs.table.begin(), cs.table.end(), rng);
    const size_t elems = size_t(t.capacity) * t.n_kv * t.hd;
    const size_t bytes = elems * dtype_size(t.dtype);
    KVCacheView v;
    v.dtype = t.dtype;
    v.capacity = t.capacity;
    v.n_kv_heads = t.n_kv;
    v.head_dim = t.hd;
    v.block_size = 16;
    if (t.dtype == DType::F8_E4M3) v.k_scale = 0.0125f, v.v_scale = 0.01f;
    cs.ck.assign(bytes, 0);
    cs.cv.assign(bytes, 0);
    cs.c = v;
    cs.c.k = cs.ck.data();
    cs.c.v = cs.cv.data();
    cs.c.block_table = t.shuffle ? cs.table.data() : nullptr;
    cs.g = v;
    cs.g.k = gpu().alloc(bytes, "test K");
    cs.g.v = gpu().alloc(bytes, "test V");
    cs.g.block_table = t.shuffle ? to_dev(cs.table) : nullptr;
    cs.c32k.assign(elems, 0.f);
    cs.c32v.assign(elems, 0.f);
    cs.c32 = cs.c;
    cs.c32.dtype = DType::F32;
    cs.c32.k = cs.c32k.data();
    cs.c32.v = cs.c32v.data();
    cs.c32.k_scale = cs.c32.v_scale = 1.f;
    return cs;
}

// Stores rows [p0, p0 + n) of k/v (row stride `stride`) in all caches.
void store(Caches& cs, const std::vector<float>& k, const std::vector<float>& v, int64_t stride, int64_t p0,
           int64_t n) {
    std::vector<int32_t> pos(static_cast<size_t>(n));
    std::iota(pos.begin(), pos.end(), int32_t(p0));
    cpu().kv_store(cs.c, k.data(), stride, v.data(), stride, pos.data(), n);
    cpu().kv_store(cs.c32, k.data(), stride, v.data(), stride, pos.data(), n);
    gpu().kv_store(cs.g, to_dev(k), stride, to_dev(v), stride, to_dev(pos), n);
}

void run_case(const AttnCase& t, bool bf16_inputs) {
    const uint32_t seed = fresh_seed();
    INFO("seed " << seed << " dtype " << dtype_name(t.dtype) << " heads " << t.n_head << "/" << t.n_kv << " hd "
                 << t.hd << " tokens " << t.n_tokens << " pos0 " << t.pos0 << " capacity " << t.capacity
                 << " shuffled " << t.shuffle << " bf16 inputs " << bf16_inputs);
    std::mt19937 rng(seed);
    Caches cs = make_caches(t, rng);
    const int64_t width = int64_t(t.n_kv) * t.hd, kv_stride = width + 4;
    const int64_t total = t.pos0 + t.n_tokens;
    auto k = rand_vec(rng, size_t(total * kv_stride), -2.f, 2.f);
    auto v = rand_vec(rng, size_t(total * kv_stride), -2.f, 2.f);
    if (bf16_inputs)
        for (auto* a : {&k, &v})
            for (auto& x : *a) x = bf16_round(x);
    if (t.pos0 > 0) store(cs, k, v, kv_stride, 0, t.pos0);  // history
    const std::vector<float> kn(k.begin() + t.pos0 * kv_stride, k.end()), vn(v.begin() + t.pos0 * kv_stride, v.end());
    store(cs, kn, vn, kv_stride, t.pos0, t.n_tokens);

    // The stored bytes are the CPU's bytes (conversion, rounding, scale, paging).
    const size_t bytes = cs.ck.size();
    CHECK(from_dev(static_cast<uint8_t*>(cs.g.k), bytes) == cs.ck);
    CHECK(from_dev(static_cast<uint8_t*>(cs.g.v), bytes) == cs.cv);

    const int64_t q_stride = int64_t(t.n_head) * t.hd + 8;
    const auto q = rand_vec(rng, size_t(t.n_tokens * q_stride), -3.f, 3.f);
    std::vector<int32_t> pos(static_cast<size_t>(t.n_tokens));
    std::iota(pos.begin(), pos.end(), int32_t(t.pos0));
    AttentionParams p;
    p.n_head = t.n_head;
    p.n_kv_head = t.n_kv;
    p.head_dim = t.hd;
    p.scale = 1.f / std::sqrt(float(t.hd));
    p.n_tokens = t.n_tokens;
    const size_t out_n = size_t(t.n_tokens) * t.n_head * t.hd;
    std::vector<float> ref(out_n), ref32(out_n);
    p.positions = pos.data();
    cpu().attention(q.data(), q_stride, cs.c, ref.data(), p);
    cpu().attention(q.data(), q_stride, cs.c32, ref32.data(), p);
    p.positions = to_dev(pos);
    const float* dq = to_dev(q);
    const bool tc_case = (t.dtype == DType::BF16 || t.dtype == DType::F16) &&
                         t.n_tokens >= cuda_kernels::kAttnMmaMinTokens && t.hd % 8 == 0 && t.hd <= 128;
    const bool tc_default = cuda_kernels::attention_tensor_cores();
    // Runs: tensor cores with 4 and with 8 warps per CTA, then the fp32 kernel; or the default kernel only.
    const std::vector<int> runs = tc_case ? std::vector<int>{4, 8, 0} : std::vector<int>{-1};
    std::vector<std::vector<float>> outs;
    for (int warps : runs) {
        if (warps >= 0) cuda_kernels::attention_set_tensor_cores(warps > 0);
        cuda_kernels::attention_set_mma_warps(warps);
        float* dout = to_dev(std::vector<float>(out_n, NAN));
        gpu().attention(dq, q_stride, cs.g, dout, p);
        cuda_kernels::attention_set_tensor_cores(tc_default);
        cuda_kernels::attention_set_mma_warps(0);
        const auto got = from_dev(dout, out_n);
        const double e_same = rel_max_err(got, ref), e32 = rel_max_err(got, ref32), l2 = rel_l2_err(got, ref32);
        INFO("run " << warps << " (4/8: tensor-core warps, 0: fp32 kernel, -1: default): err vs same-dtype CPU "
                    << e_same << ", vs F32 CPU max " << e32 << " l2 " << l2);
        CHECK(e_same <= 5e-5);
        if (t.dtype == DType::F32) CHECK(e32 <= 5e-5);
        if (t.dtype == DType::BF16 && bf16_inputs) CHECK(e32 <= 2e-3);
        if (t.dtype == DType::BF16 || t.dtype == DType::F16) CHECK(l2 <= 1e-2);
        if (t.dtype == DType::F8_E4M3) CHECK(l2 <= 0.1);
        outs.push_back(got);
    }
    if (tc_case) {
        CHECK(outs[0] == outs[1]);  // a row's arithmetic does not depend on the CTA size
        CHECK(outs[0] != outs[2]);  // the tensor-core kernel ran
    }
}

// A decode step (kv_store + attention) captured once, replayed at each position of `steps` (position from device
// memory); `old` picks the split-KV path for the capture, `warps` the one-kernel decode's CTA size (0: default).
void decode_graph_case(const AttnCase& t, const std::vector<int32_t>& steps, bool old, int warps = 0) {
    const uint32_t seed = fresh_seed();
    INFO("seed " << seed << " dtype " << dtype_name(t.dtype) << " heads " << t.n_head << "/" << t.n_kv << " hd "
                 << t.hd << " capacity " << t.capacity << " split-KV path " << old << " warps " << warps);
    std::mt19937 rng(seed);
    Caches cs = make_caches(t, rng);
    const int64_t width = int64_t(t.n_kv) * t.hd;
    const auto hk = rand_vec(rng, size_t(t.capacity * width), -2.f, 2.f);
    const auto hv = rand_vec(rng, size_t(t.capacity * width), -2.f, 2.f);
    store(cs, hk, hv, width, 0, t.capacity);  // the whole cache holds history; each step overwrites its position

    const int64_t qn = int64_t(t.n_head) * t.hd;
    float* dq = to_dev(std::vector<float>(size_t(qn)));
    float* dk = to_dev(std::vector<float>(size_t(width)));
    float* dv = to_dev(std::vector<float>(size_t(width)));
    int32_t* dpos = to_dev(std::vector<int32_t>{0});
    float* dout = to_dev(std::vector<float>(size_t(qn)));
    AttentionParams p;
    p.n_head = t.n_head;
    p.n_kv_head = t.n_kv;
    p.head_dim = t.hd;
    p.scale = 1.f / std::sqrt(float(t.hd));
    p.n_tokens = 1;
    p.positions = dpos;
    CudaExecutor& ex = gpu();
    const bool old_default = cuda_kernels::attention_decode_old();
    cuda_kernels::attention_set_decode_old(old);
    cuda_kernels::attention_set_decode_warps(warps);
    const CudaAllocStats before = cuda_alloc_stats();
    ex.capture_begin();
    ex.kv_store(cs.g, dk, width, dv, width, dpos, 1);
    ex.attention(dq, qn, cs.g, dout, p);
    const int graph = ex.capture_end();
    cuda_kernels::attention_set_decode_old(old_default);
    cuda_kernels::attention_set_decode_warps(0);
    for (int32_t step : steps) {
        INFO("position " << step);
        const auto q = rand_vec(rng, size_t(qn), -3.f, 3.f);
        const auto k = rand_vec(rng, size_t(width), -2.f, 2.f);
        const auto v = rand_vec(rng, size_t(width), -2.f, 2.f);
        ex.upload(dq, q.data(), q.size() * 4);
        ex.upload(dk, k.data(), k.size() * 4);
        ex.upload(dv, v.data(), v.size() * 4);
        ex.upload(dpos, &step, 4);
        ex.replay(graph);
        const auto got = from_dev(dout, size_t(qn));
        cpu().kv_store(cs.c, k.data(), width, v.data(), width, &step, 1);
        std::vector<float> ref(static_cast<size_t>(qn));
        AttentionParams pc = p;
        pc.positions = &step;
        cpu().attention(q.data(), qn, cs.c, ref.data(), pc);
        CHECK(rel_max_err(got, ref) <= 5e-5);
        ex.replay(graph);  // same inputs again (the step rewrites the same K/V): same bits
        CHECK(from_dev(dout, size_t(qn)) == got);
    }
    CHECK(cuda_alloc_stats().mallocs == before.mallocs);
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
    };
    for (const AttnCase& c : cases) run_case(c, false);
    run_case({DType::BF16, 16, 4, 128, 100, 60, 160, true}, true);
    run_case({DType::BF16, 8, 8, 64, 16, 0, 16, true}, true);
}

TEST_CASE("cuda: tensor-core prefill attention matches the CPU (BF16/F16, GQA, tails, offsets, paging)",
          "[cuda][attention]") {
    const AttnCase cases[] = {
        {DType::BF16, 8, 8, 64, 17, 0, 32, true},       {DType::BF16, 32, 8, 128, 77, 0, 80, true},
        {DType::BF16, 32, 4, 128, 300, 123, 432, true}, {DType::BF16, 16, 4, 64, 1000, 0, 1008, true},
        {DType::BF16, 8, 1, 128, 1000, 37, 1040, false}, {DType::BF16, 8, 8, 128, 16, 1000, 1024, true},
        {DType::BF16, 12, 3, 96, 45, 10, 64, true},     {DType::BF16, 4, 4, 64, 300, 0, 304, false},
        {DType::BF16, 16, 2, 64, 77, 64, 160, true},    {DType::F16, 16, 16, 128, 77, 45, 128, true},
        {DType::F16, 32, 8, 64, 300, 0, 304, true},     {DType::F16, 16, 2, 128, 17, 500, 528, true},
    };
    for (const AttnCase& c : cases) run_case(c, false);
    run_case({DType::BF16, 32, 8, 128, 300, 100, 400, true}, true);
    run_case({DType::BF16, 8, 1, 64, 1000, 0, 1008, true}, true);
}

// A prefill step (kv_store of the chunk, then attention) captured once with PDL as the executor has it, replayed
// for chunks at other first positions (the causal range comes from device positions); the same step run directly
// with PDL off gives the same bits.
TEST_CASE("cuda: a captured tensor-core prefill step replays at other positions, PDL on or off", "[cuda][attention]") {
    const uint32_t seed = fresh_seed();
    INFO("seed " << seed);
    std::mt19937 rng(seed);
    const AttnCase t{DType::BF16, 16, 4, 128, 77, 0, 256, true};
    Caches cs = make_caches(t, rng);
    const int64_t width = int64_t(t.n_kv) * t.hd;
    const auto hk = rand_vec(rng, size_t(t.capacity * width), -2.f, 2.f);
    const auto hv = rand_vec(rng, size_t(t.capacity * width), -2.f, 2.f);
    store(cs, hk, hv, width, 0, t.capacity);  // history everywhere; each step overwrites its chunk
    const int64_t qn = int64_t(t.n_head) * t.hd;
    const size_t out_n = size_t(t.n_tokens * qn), kv_n = size_t(t.n_tokens * width);
    float* dq = to_dev(std::vector<float>(out_n));
    float* dk = to_dev(std::vector<float>(kv_n));
    float* dv = to_dev(std::vector<float>(kv_n));
    int32_t* dpos = to_dev(std::vector<int32_t>(size_t(t.n_tokens)));
    float* dout = to_dev(std::vector<float>(out_n));
    AttentionParams p;
    p.n_head = t.n_head;
    p.n_kv_head = t.n_kv;
    p.head_dim = t.hd;
    p.scale = 1.f / std::sqrt(float(t.hd));
    p.n_tokens = t.n_tokens;
    p.positions = dpos;
    CudaExecutor& ex = gpu();
    const bool tc_default = cuda_kernels::attention_tensor_cores(), pdl_default = ex.pdl();
    cuda_kernels::attention_set_tensor_cores(true);
    auto step = [&] {
        ex.kv_store(cs.g, dk, width, dv, width, dpos, t.n_tokens);
        ex.attention(dq, qn, cs.g, dout, p);
    };
    const CudaAllocStats before = cuda_alloc_stats();
    ex.capture_begin();
    step();
    const int graph = ex.capture_end();
    for (int32_t pos0 : {0, 1, 63, 100, 179}) {
        INFO("first position " << pos0);
        const auto q = rand_vec(rng, out_n, -3.f, 3.f);
        const auto k = rand_vec(rng, kv_n, -2.f, 2.f), v = rand_vec(rng, kv_n, -2.f, 2.f);
        std::vector<int32_t> pos(static_cast<size_t>(t.n_tokens));
        std::iota(pos.begin(), pos.end(), pos0);
        ex.upload(dq, q.data(), q.size() * 4);
        ex.upload(dk, k.data(), k.size() * 4);
        ex.upload(dv, v.data(), v.size() * 4);
        ex.upload(dpos, pos.data(), pos.size() * 4);
        ex.replay(graph);
        const auto got = from_dev(dout, out_n);
        cpu().kv_store(cs.c, k.data(), width, v.data(), width, pos.data(), t.n_tokens);
        std::vector<float> ref(out_n);
        AttentionParams pc = p;
        pc.positions = pos.data();
        cpu().attention(q.data(), qn, cs.c, ref.data(), pc);
        CHECK(rel_max_err(got, ref) <= 5e-5);
        ex.set_pdl(!pdl_default);
        step();
        ex.set_pdl(pdl_default);
        CHECK(from_dev(dout, out_n) == got);
    }
    cuda_kernels::attention_set_tensor_cores(tc_default);
    CHECK(cuda_alloc_stats().mallocs == before.mallocs);
}

TEST_CASE("cuda: decode attention (split over KV blocks) matches the CPU", "[cuda][attention]") {
    const AttnCase cases[] = {
        {DType::BF16, 32, 8, 128, 1, 1000, 4096, true}, {DType::F32, 8, 8, 64, 1, 0, 64, false},
        {DType::F8_E4M3, 16, 4, 256, 1, 777, 2048, true}, {DType::F16, 6, 2, 33, 1, 40, 256, true},
        {DType::BF16, 20, 1, 256, 1, 300, 512, true},   {DType::BF16, 32, 1, 128, 1, 4095, 4096, true},
        {DType::F32, 12, 4, 80, 1, 129, 160, true},     {DType::BF16, 64, 4, 128, 1, 15, 32768, true},
        {DType::F16, 16, 2, 64, 1, 500, 4096, true},
    };
    // BF16 / F16 cases with head_dim 64 / 128 and group <= 8 take the one-kernel decode by default: run them on
    // the split-KV path too
    const bool old_default = cuda_kernels::attention_decode_old();
    for (bool old : {false, true}) {
        cuda_kernels::attention_set_decode_old(old);
        for (const AttnCase& c : cases) run_case(c, false);
        run_case({DType::BF16, 16, 2, 128, 1, 2000, 2048, true}, true);
    }
    cuda_kernels::attention_set_decode_old(old_default);
}

TEST_CASE("cuda: attention rejects shapes it cannot run", "[cuda][attention]") {
    KVCacheView kv;
    kv.dtype = DType::BF16;
    kv.capacity = 16;
    kv.n_kv_heads = 1;
    kv.head_dim = 320;
    AttentionParams p;
    p.n_head = 1;
    p.n_kv_head = 1;
    p.head_dim = 320;
    p.n_tokens = 1;
    CHECK_THROWS_AS(gpu().attention(nullptr, 320, kv, nullptr, p), Error);
    kv.head_dim = p.head_dim = 64;
    p.n_kv_head = 2;
    CHECK_THROWS_AS(gpu().attention(nullptr, 64, kv, nullptr, p), Error);
    p.n_kv_head = 1;
    kv.dtype = DType::I8;
    CHECK_THROWS_AS(gpu().attention(nullptr, 64, kv, nullptr, p), Error);
    CHECK_THROWS_AS(gpu().kv_store(kv, nullptr, 64, nullptr, 64, nullptr, 1), Error);
}

TEST_CASE("cuda: a captured decode step (kv_store + attention) replays at every length", "[cuda][attention]") {
    const std::vector<int32_t> steps{0, 1, 15, 16, 17, 63, 64, 65, 200, 511, 512, 777, 1000, 1023};
    for (bool old : {true, false}) decode_graph_case({DType::BF16, 16, 4, 128, 1, 0, 1024, true}, steps, old);
    const std::vector<int32_t> far{0, 1, 15, 16, 17, 100, 511, 1000, 4000, 4095, 2047, 31};
    decode_graph_case({DType::BF16, 16, 2, 64, 1, 0, 4096, true}, far, false);     // group 8, hd 64
    decode_graph_case({DType::BF16, 16, 2, 64, 1, 0, 4096, true}, far, false, 4);  // 4-warp CTAs
    decode_graph_case({DType::F16, 8, 8, 128, 1, 0, 8192, true}, far, false);      // group 1, capacity >> position
    decode_graph_case({DType::BF16, 32, 8, 128, 1, 0, 16384, true}, far, false);   // the 8B shape
    decode_graph_case({DType::BF16, 32, 8, 128, 1, 0, 16384, true}, far, false, 4);
    decode_graph_case({DType::F16, 12, 4, 64, 1, 0, 2048, false}, {0, 5, 16, 700, 2047, 1}, false);  // group 3
}

// The one-kernel decode (8- and 4-warp CTAs) against the CPU (same cache), against the split-KV path, and against
// itself (same bits),
// at positions 0 .. 4000 with a capacity just above the position and a much larger one (views of one shuffled
// cache: a smaller capacity keeps the first entries of the block table).
TEST_CASE("cuda: one-kernel decode attention matches the CPU (BF16/F16, hd 64/128, GQA 1/4/8, capacities)",
          "[cuda][attention]") {
    const int64_t cap = 8192;
    const int32_t positions[] = {0, 1, 15, 16, 17, 100, 511, 1000, 4000};
    const bool old_default = cuda_kernels::attention_decode_old();
    for (DType dt : {DType::BF16, DType::F16})
        for (int hd : {64, 128})
            for (int group : {1, 4, 8}) {
                const int n_kv = hd == 128 && group == 4 ? 8 : 2;
                const AttnCase t{dt, n_kv * group, n_kv, hd, 1, 0, cap, true};
                const uint32_t seed = fresh_seed();
                INFO("seed " << seed << " dtype " << dtype_name(dt) << " heads " << t.n_head << "/" << n_kv << " hd "
                             << hd);
                std::mt19937 rng(seed);
                Caches cs = make_caches(t, rng);
                const int64_t width = int64_t(n_kv) * hd;
                const auto hk = rand_vec(rng, size_t(cap * width), -2.f, 2.f);
                const auto hv = rand_vec(rng, size_t(cap * width), -2.f, 2.f);
                store(cs, hk, hv, width, 0, cap);
                const int64_t qn = int64_t(t.n_head) * hd;
                float* dq = to_dev(std::vector<float>(size_t(qn)));
                int32_t* dpos = to_dev(std::vector<int32_t>{0});
                float* dout = to_dev(std::vector<float>(size_t(qn)));
                AttentionParams p;
                p.n_head = t.n_head;
                p.n_kv_head = n_kv;
                p.head_dim = hd;
                p.scale = 1.f / std::sqrt(float(hd));
                p.n_tokens = 1;
                for (int32_t pos : positions)
                    for (int64_t c : {(int64_t(pos) + 16) / 16 * 16, cap}) {
                        INFO("position " << pos << " capacity " << c);
                        KVCacheView gv = cs.g, cv = cs.c;
                        gv.capacity = cv.capacity = c;
                        const auto q = rand_vec(rng, size_t(qn), -3.f, 3.f);
                        gpu().upload(dq, q.data(), q.size() * 4);
                        gpu().upload(dpos, &pos, 4);
                        std::vector<float> ref(static_cast<size_t>(qn));
                        p.positions = &pos;
                        cpu().attention(q.data(), qn, cv, ref.data(), p);
                        p.positions = dpos;
                        // one-kernel decode with 8 warps, again, with 4 warps, again; split-KV
                        std::vector<float> got[5];
                        for (int run = 0; run < 5; ++run) {
                            cuda_kernels::attention_set_decode_old(run == 4);
                            cuda_kernels::attention_set_decode_warps(run < 2 ? 8 : 4);
                            gpu().upload(dout, std::vector<float>(size_t(qn), NAN).data(), size_t(qn) * 4);
                            gpu().attention(dq, qn, gv, dout, p);
                            got[run] = from_dev(dout, size_t(qn));
                        }
                        cuda_kernels::attention_set_decode_old(old_default);
                        cuda_kernels::attention_set_decode_warps(0);
                        INFO("err 8 warps " << rel_max_err(got[0], ref) << " 4 warps " << rel_max_err(got[2], ref)
                                            << " split-KV " << rel_max_err(got[4], ref));
                        CHECK(rel_max_err(got[0], ref) <= 5e-5);
                        CHECK(rel_max_err(got[2], ref) <= 5e-5);
                        CHECK(rel_max_err(got[4], ref) <= 5e-5);
                        CHECK(got[0] == got[1]);
                        CHECK(got[2] == got[3]);
                        if (pos >= 100) CHECK(got[0] != got[4]);  // the one-kernel path did run
                    }
            }
}
