// CpuExecutor::rope_kv_store against the op sequence it replaces (per-head rms_norm of q and k, rope of q and k,
// kv_store), bit for bit: q, k and both caches, for every KV dtype, NEOX and adjacent pairs, partial rotary, GQA,
// odd head counts, padded row strides and a shuffled block table.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <random>
#include <vector>

#include "exec/cpu/cpu_executor.h"
#include "imp/error.h"

using namespace imp;

namespace {

struct Case {
    int n_head, n_kv, hd, n_rot;
    bool neox, norm, factors;
    float freq_scale;
    int64_t n_tokens, pad;
};

std::vector<float> rnd(std::mt19937& g, size_t n, float lo, float hi) {
    std::uniform_real_distribution<float> d(lo, hi);
    std::vector<float> v(n);
    for (auto& x : v) {
        do x = d(g);
        while (x == 0.f);
    }
    return v;
}

void run_case(CpuExecutor& ex, const Case& c, DType dtype, uint32_t seed) {
    INFO("seed " << seed << " heads " << c.n_head << "/" << c.n_kv << " hd " << c.hd << " n_rot " << c.n_rot
                 << " neox " << c.neox << " norm " << c.norm << " factors " << c.factors << " dtype "
                 << dtype_name(dtype) << " tokens " << c.n_tokens << " pad " << c.pad);
    std::mt19937 g(seed);
    const int64_t qs = int64_t(c.n_head) * c.hd + c.pad, ks = int64_t(c.n_kv) * c.hd + c.pad,
                  vs = int64_t(c.n_kv) * c.hd + 2 * c.pad;
    const auto q = rnd(g, size_t(c.n_tokens * qs), -3.f, 3.f);
    const auto k = rnd(g, size_t(c.n_tokens * ks), -3.f, 3.f);
    const auto v = rnd(g, size_t(c.n_tokens * vs), -2.f, 2.f);
    const auto qn = rnd(g, size_t(c.hd), 0.5f, 1.5f), kn = rnd(g, size_t(c.hd), 0.5f, 1.5f);
    const auto ff = rnd(g, size_t(c.n_rot / 2), 1.f, 8.f);

    // A paged cache of 8 blocks of 16 with a shuffled table, random previous contents, distinct positions.
    const int64_t capacity = 128, width = int64_t(c.n_kv) * c.hd;
    std::vector<int32_t> table(8);
    std::iota(table.begin(), table.end(), 0);
    std::shuffle(table.begin(), table.end(), g);
    std::vector<int32_t> all(capacity);
    std::iota(all.begin(), all.end(), 0);
    std::shuffle(all.begin(), all.end(), g);
    const std::vector<int32_t> pos(all.begin(), all.begin() + c.n_tokens);
    KVCacheView kv;
    kv.dtype = dtype;
    kv.capacity = capacity;
    kv.n_kv_heads = c.n_kv;
    kv.head_dim = c.hd;
    kv.block_size = 16;
    kv.block_table = table.data();
    if (dtype == DType::F8_E4M3) kv.k_scale = 0.05f, kv.v_scale = 0.02f;
    const size_t bytes = size_t(capacity * width) * dtype_size(dtype);
    std::vector<uint8_t> ck0(bytes), cv0(bytes);
    {
        KVCacheView init = kv;
        init.k = ck0.data();
        init.v = cv0.data();
        const auto hk = rnd(g, size_t(capacity * width), -2.f, 2.f), hv = rnd(g, size_t(capacity * width), -2.f, 2.f);
        ex.kv_store(init, hk.data(), width, hv.data(), width, all.data(), capacity);
    }

    RopeParams rp;
    rp.head_dim = c.hd;
    rp.n_rot = c.n_rot;
    rp.base = c.hd >= 128 ? 1000000.f : 10000.f;
    rp.neox = c.neox;
    rp.freq_scale = c.freq_scale;
    rp.freq_factors = c.factors ? ff.data() : nullptr;
    const float eps = 1e-6f;

    // The sequence (per-token rms_norm calls, so padded strides are covered the simple way).
    auto qr = q, kr = k;
    auto ckr = ck0, cvr = cv0;
    KVCacheView kvr = kv;
    kvr.k = ckr.data();
    kvr.v = cvr.data();
    if (c.norm) {
        for (int64_t t = 0; t < c.n_tokens; ++t) {
            ex.rms_norm(qr.data() + t * qs, qn.data(), qr.data() + t * qs, c.n_head, c.hd, eps);
            ex.rms_norm(kr.data() + t * ks, kn.data(), kr.data() + t * ks, c.n_kv, c.hd, eps);
        }
    }
    ex.rope(qr.data(), qs, pos.data(), c.n_tokens, c.n_head, rp);
    ex.rope(kr.data(), ks, pos.data(), c.n_tokens, c.n_kv, rp);
    ex.kv_store(kvr, kr.data(), ks, v.data(), vs, pos.data(), c.n_tokens);

    auto qf = q, kf = k;
    auto ckf = ck0, cvf = cv0;
    KVCacheView kvf = kv;
    kvf.k = ckf.data();
    kvf.v = cvf.data();
    ex.rope_kv_store(qf.data(), qs, kf.data(), ks, v.data(), vs, c.norm ? qn.data() : nullptr,
                     c.norm ? kn.data() : nullptr, eps, pos.data(), c.n_tokens, c.n_head, c.n_kv, rp, kvf);
    CHECK(qf == qr);
    CHECK(kf == kr);
    CHECK(ckf == ckr);
    CHECK(cvf == cvr);
    CHECK(ckf != ck0);  // something was stored
}

}  // namespace

TEST_CASE("cpu rope_kv_store equals rms_norm + rope + rope + kv_store exactly", "[cpu]") {
    const Case cases[] = {
        {9, 3, 64, 64, false, true, false, 1.f, 5, 0},    {7, 7, 128, 64, true, false, false, 1.f, 3, 3},
        {32, 8, 128, 128, true, true, true, 0.25f, 4, 0}, {5, 1, 80, 40, false, true, true, 1.f, 3, 2},
        {4, 2, 256, 256, true, true, false, 1.f, 2, 0},   {3, 3, 6, 2, true, true, false, 0.5f, 6, 1},
        {1, 1, 64, 32, false, false, true, 1.f, 1, 0},    {6, 2, 128, 128, false, true, false, 1.f, 17, 8},
    };
    std::random_device rd;
    CpuExecutor ex(3);
    for (const Case& c : cases)
        for (DType dt : {DType::F32, DType::F16, DType::BF16, DType::F8_E4M3}) run_case(ex, c, dt, rd());
}

TEST_CASE("cpu rope_kv_store rejects a KV cache of another shape and positions past the capacity", "[cpu]") {
    CpuExecutor ex(1);
    std::vector<float> q(64, 1.f), k(32, 1.f), v(32, 1.f);
    std::vector<float> ck(4 * 32), cv(4 * 32);
    KVCacheView kv;
    kv.k = ck.data();
    kv.v = cv.data();
    kv.capacity = 4;
    kv.n_kv_heads = 2;
    kv.head_dim = 16;
    kv.block_size = 4;
    RopeParams rp;
    rp.head_dim = 16;
    rp.n_rot = 16;
    const int32_t ok = 1, bad = 4;
    ex.rope_kv_store(q.data(), 64, k.data(), 32, v.data(), 32, nullptr, nullptr, 1e-6f, &ok, 1, 4, 2, rp, kv);
    CHECK_THROWS_WITH(
        ex.rope_kv_store(q.data(), 64, k.data(), 32, v.data(), 32, nullptr, nullptr, 1e-6f, &bad, 1, 4, 2, rp, kv),
        Catch::Contains("capacity 4"));
    CHECK_THROWS_AS(
        ex.rope_kv_store(q.data(), 64, k.data(), 32, v.data(), 32, nullptr, nullptr, 1e-6f, &ok, 1, 4, 1, rp, kv),
        Error);
    rp.head_dim = 8;
    CHECK_THROWS_AS(
        ex.rope_kv_store(q.data(), 64, k.data(), 32, v.data(), 32, nullptr, nullptr, 1e-6f, &ok, 1, 4, 2, rp, kv),
        Error);
}
