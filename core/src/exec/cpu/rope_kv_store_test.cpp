// CpuExecutor::rope_kv_store against the op sequence it replaces (per-head rms_norm of q and k, rope of q and k at
// the step's positions, kv_store at its slot mapping), bit for bit: q, k and both caches, for every KV dtype, NEOX
// and adjacent pairs, partial rotary, GQA, odd head counts, padded row strides, steps of several sequences whose
// blocks are shuffled through the pool, and a padding row (slot -1) that writes nothing.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <cstring>
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

// A step of n_seqs sequences (rows 1..max_rows each, contiguous positions after a random history, slots through
// blocks dealt from a shuffled pool) whose last sequence, when pad, is a padding row: position 0, slot -1.
struct Step {
    std::vector<int32_t> pos, seq, qsl, lens, tables, slots, state;
    int32_t max_blocks = 0;
    int64_t n_blocks = 0;
    StepBatch batch() const {
        StepBatch b;
        b.n_tokens = int64_t(pos.size());
        b.n_seqs = int32_t(lens.size());
        b.token_pos = pos.data();
        b.token_seq = seq.data();
        b.query_start_loc = qsl.data();
        b.seq_lens = lens.data();
        b.block_tables = tables.data();
        b.max_blocks = max_blocks;
        b.slot_mapping = slots.data();
        b.state_slots = state.data();
        return b;
    }
};

Step make_step(std::mt19937& g, int n_seqs, int64_t max_rows, bool pad, int bs) {
    Step st;
    std::vector<int64_t> hist(static_cast<size_t>(n_seqs)), rows(static_cast<size_t>(n_seqs));
    for (int s = 0; s < n_seqs; ++s) {
        const bool is_pad = pad && s == n_seqs - 1;
        hist[size_t(s)] = is_pad ? 0 : int64_t(g() % 100);
        rows[size_t(s)] = is_pad ? 1 : 1 + int64_t(g() % uint64_t(max_rows));
        st.max_blocks = std::max(st.max_blocks, int32_t((hist[size_t(s)] + rows[size_t(s)] + bs - 1) / bs));
    }
    st.n_blocks = int64_t(n_seqs) * st.max_blocks + 1;
    std::vector<int32_t> phys(size_t(st.n_blocks - 1));
    std::iota(phys.begin(), phys.end(), 1);  // block 0: the zero block of padding
    std::shuffle(phys.begin(), phys.end(), g);
    st.tables.assign(size_t(n_seqs * st.max_blocks), 0);
    for (int s = 0; s < n_seqs; ++s) {
        const bool is_pad = pad && s == n_seqs - 1;
        if (!is_pad)
            for (int32_t blk = 0; blk < st.max_blocks; ++blk)
                st.tables[size_t(s * st.max_blocks + blk)] = phys[size_t(s * st.max_blocks + blk)];
        st.qsl.push_back(int32_t(st.pos.size()));
        for (int64_t p = hist[size_t(s)]; p < hist[size_t(s)] + rows[size_t(s)]; ++p) {
            st.pos.push_back(int32_t(p));
            st.seq.push_back(s);
            st.slots.push_back(is_pad ? -1 : st.tables[size_t(s * st.max_blocks + p / bs)] * bs + int32_t(p % bs));
        }
        st.lens.push_back(int32_t(hist[size_t(s)] + rows[size_t(s)]));
        st.state.push_back(s);
    }
    st.qsl.push_back(int32_t(st.pos.size()));
    return st;
}

void run_case(CpuExecutor& ex, const Case& c, DType dtype, int n_seqs, bool pad, uint32_t seed) {
    INFO("seed " << seed << " heads " << c.n_head << "/" << c.n_kv << " hd " << c.hd << " n_rot " << c.n_rot
                 << " neox " << c.neox << " norm " << c.norm << " factors " << c.factors << " dtype "
                 << dtype_name(dtype) << " sequences " << n_seqs << " (padding " << pad << ") rows <= "
                 << c.n_tokens << " pad " << c.pad);
    std::mt19937 g(seed);
    const int bs = 16;
    const Step st = make_step(g, n_seqs, c.n_tokens, pad, bs);
    const StepBatch b = st.batch();
    const int64_t n_tokens = b.n_tokens;
    const int64_t qs = int64_t(c.n_head) * c.hd + c.pad, ks = int64_t(c.n_kv) * c.hd + c.pad,
                  vs = int64_t(c.n_kv) * c.hd + 2 * c.pad;
    const auto q = rnd(g, size_t(n_tokens * qs), -3.f, 3.f);
    const auto k = rnd(g, size_t(n_tokens * ks), -3.f, 3.f);
    const auto v = rnd(g, size_t(n_tokens * vs), -2.f, 2.f);
    const auto qn = rnd(g, size_t(c.hd), 0.5f, 1.5f), kn = rnd(g, size_t(c.hd), 0.5f, 1.5f);
    const auto ff = rnd(g, size_t(c.n_rot / 2), 1.f, 8.f);

    // The pool starts with random contents in every slot.
    const int64_t n_slots = st.n_blocks * bs, width = int64_t(c.n_kv) * c.hd;
    KVCacheView kv;
    kv.dtype = dtype;
    kv.n_blocks = st.n_blocks;
    kv.n_kv_heads = c.n_kv;
    kv.head_dim = c.hd;
    kv.block_size = bs;
    if (dtype == DType::F8_E4M3) kv.k_scale = 0.05f, kv.v_scale = 0.02f;
    const size_t bytes = size_t(n_slots * width) * dtype_size(dtype);
    std::vector<uint8_t> ck0(bytes), cv0(bytes);
    {
        KVCacheView init = kv;
        init.k = ck0.data();
        init.v = cv0.data();
        std::vector<int32_t> all(static_cast<size_t>(n_slots));
        std::iota(all.begin(), all.end(), 0);
        const auto hk = rnd(g, size_t(n_slots * width), -2.f, 2.f), hv = rnd(g, size_t(n_slots * width), -2.f, 2.f);
        ex.kv_store(init, hk.data(), width, hv.data(), width, all.data(), n_slots);
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
        for (int64_t t = 0; t < n_tokens; ++t) {
            ex.rms_norm(qr.data() + t * qs, qn.data(), qr.data() + t * qs, c.n_head, c.hd, eps);
            ex.rms_norm(kr.data() + t * ks, kn.data(), kr.data() + t * ks, c.n_kv, c.hd, eps);
        }
    }
    ex.rope(qr.data(), qs, b.token_pos, n_tokens, c.n_head, rp);
    ex.rope(kr.data(), ks, b.token_pos, n_tokens, c.n_kv, rp);
    ex.kv_store(kvr, kr.data(), ks, v.data(), vs, b.slot_mapping, n_tokens);

    auto qf = q, kf = k;
    auto ckf = ck0, cvf = cv0;
    KVCacheView kvf = kv;
    kvf.k = ckf.data();
    kvf.v = cvf.data();
    ex.rope_kv_store(qf.data(), qs, kf.data(), ks, v.data(), vs, c.norm ? qn.data() : nullptr,
                     c.norm ? kn.data() : nullptr, eps, b, c.n_head, c.n_kv, rp, kvf);
    // Compared as bools: Catch would print the whole vectors on a failure.
    CHECK(bool(qf == qr));
    CHECK(bool(kf == kr));
    CHECK(bool(ckf == ckr));
    CHECK(bool(cvf == cvr));
    CHECK(bool(ckf != ck0));  // something was stored
    CHECK(bool(qf != q));     // and rotated
    // Only the mapped slots changed: the padding row (slot -1) and every other slot kept their contents.
    const size_t row_bytes = size_t(width) * dtype_size(dtype);
    std::vector<bool> written(size_t(n_slots), false);
    for (int32_t s : st.slots)
        if (s >= 0) written[size_t(s)] = true;
    for (int64_t s = 0; s < n_slots; ++s)
        if (!written[size_t(s)])
            REQUIRE(std::memcmp(ckf.data() + size_t(s) * row_bytes, ck0.data() + size_t(s) * row_bytes,
                                row_bytes) == 0);
}

}  // namespace

TEST_CASE("cpu rope_kv_store equals rms_norm + rope + rope + kv_store exactly over several sequences", "[cpu]") {
    const Case cases[] = {
        {9, 3, 64, 64, false, true, false, 1.f, 5, 0},    {7, 7, 128, 64, true, false, false, 1.f, 3, 3},
        {32, 8, 128, 128, true, true, true, 0.25f, 4, 0}, {5, 1, 80, 40, false, true, true, 1.f, 3, 2},
        {4, 2, 256, 256, true, true, false, 1.f, 2, 0},   {3, 3, 6, 2, true, true, false, 0.5f, 6, 1},
        {1, 1, 64, 32, false, false, true, 1.f, 1, 0},    {6, 2, 128, 128, false, true, false, 1.f, 17, 8},
    };
    CpuExecutor ex(3);
    uint32_t seed = 1;
    for (const Case& c : cases)
        for (DType dt : {DType::F32, DType::F16, DType::BF16, DType::F8_E4M3})
            for (auto [n_seqs, pad] : {std::pair{1, false}, std::pair{3, true}, std::pair{6, false}})
                run_case(ex, c, dt, n_seqs, pad, seed++);
}

TEST_CASE("cpu rope_kv_store rejects a KV cache of another shape and a slot outside the pool", "[cpu]") {
    CpuExecutor ex(1);
    std::vector<float> q(64, 1.f), k(32, 1.f), v(32, 1.f);
    std::vector<float> ck(8 * 32), cv(8 * 32);  // the view holds the first 4 slots: a missed check writes slot 4
    KVCacheView kv;
    kv.k = ck.data();
    kv.v = cv.data();
    kv.n_blocks = 1;
    kv.n_kv_heads = 2;
    kv.head_dim = 16;
    kv.block_size = 4;
    RopeParams rp;
    rp.head_dim = 16;
    rp.n_rot = 16;
    int32_t pos = 1, seq = 0, qsl[2] = {0, 1}, len = 2, table = 0, slot = 1, state = 0;
    StepBatch b;
    b.n_tokens = 1;
    b.n_seqs = 1;
    b.token_pos = &pos;
    b.token_seq = &seq;
    b.query_start_loc = qsl;
    b.seq_lens = &len;
    b.block_tables = &table;
    b.max_blocks = 1;
    b.slot_mapping = &slot;
    b.state_slots = &state;
    ex.rope_kv_store(q.data(), 64, k.data(), 32, v.data(), 32, nullptr, nullptr, 1e-6f, b, 4, 2, rp, kv);
    CHECK(cv[32] == 1.f);  // v of the row, at slot 1
    slot = 4;
    CHECK_THROWS_WITH(
        ex.rope_kv_store(q.data(), 64, k.data(), 32, v.data(), 32, nullptr, nullptr, 1e-6f, b, 4, 2, rp, kv),
        Catch::Contains("rope_kv_store: KV slot 4 of row 0 is outside the pool of 4 slots"));
    CHECK(std::all_of(cv.begin() + 4 * 32, cv.end(), [](float x) { return x == 0.f; }));
    slot = 1;
    CHECK_THROWS_WITH(
        ex.rope_kv_store(q.data(), 64, k.data(), 32, v.data(), 32, nullptr, nullptr, 1e-6f, b, 4, 1, rp, kv),
        Catch::Contains("rope_kv_store: 1 KV heads of dim 16 do not fit the KV cache (2 heads of dim 16)"));
    rp.head_dim = 8;
    CHECK_THROWS_WITH(
        ex.rope_kv_store(q.data(), 64, k.data(), 32, v.data(), 32, nullptr, nullptr, 1e-6f, b, 4, 2, rp, kv),
        Catch::Contains("2 KV heads of dim 8 do not fit"));
}
