// CpuExecutor::kv_store against the pool layout of KVCacheView computed here (element (slot, head, d) at
// (slot * n_kv_heads + head) * head_dim + d, converted to the KV dtype), slot -1 rows leaving the pool untouched; and
// the bad steps kv_store and attention reject, each with its own message, before writing anything.
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include "exec/cpu/cpu_executor.h"
#include "imp/error.h"

using namespace imp;

namespace {

std::vector<float> rnd(std::mt19937& g, size_t n, float lo, float hi) {
    std::uniform_real_distribution<float> d(lo, hi);
    std::vector<float> v(n);
    for (auto& x : v) {
        do x = d(g);
        while (x == 0.f);
    }
    return v;
}

// The bytes of x in the KV dtype (F8: x / scale).
void put(uint8_t* dst, DType t, float x, float scale) {
    if (t == DType::F32) std::memcpy(dst, &x, 4);
    if (t == DType::F16 || t == DType::BF16) {
        const uint16_t h = t == DType::F16 ? f32_to_fp16(x) : f32_to_bf16(x);
        std::memcpy(dst, &h, 2);
    }
    if (t == DType::F8_E4M3) *dst = f32_to_fp8_e4m3(x / scale);
}

}  // namespace

TEST_CASE("cpu kv_store writes each row to its slot in every KV dtype: slot -1 rows leave the pool untouched",
          "[cpu]") {
    CpuExecutor ex(3);
    uint32_t seed = 7;
    for (DType dt : {DType::F32, DType::F16, DType::BF16, DType::F8_E4M3}) {
        for (auto [n_kv, hd, bs] : {std::tuple{2, 16, 16}, std::tuple{3, 7, 4}, std::tuple{1, 64, 8}}) {
            INFO("dtype " << dtype_name(dt) << " heads " << n_kv << " hd " << hd << " block " << bs);
            std::mt19937 g(seed++);
            const int64_t n_blocks = 6, width = int64_t(n_kv) * hd, n_slots = n_blocks * bs;
            const size_t es = dtype_size(dt), bytes = size_t(n_slots * width) * es;
            KVCacheView kv;
            kv.k = ex.alloc(bytes, "k");
            kv.v = ex.alloc(bytes, "v");
            kv.dtype = dt;
            kv.n_blocks = n_blocks;
            kv.n_kv_heads = n_kv;
            kv.head_dim = hd;
            kv.block_size = bs;
            kv.k_scale = 0.05f;
            kv.v_scale = 0.02f;
            // Random previous contents, written here byte by byte.
            std::vector<uint8_t> ek(bytes), ev(bytes);
            for (auto& b : ek) b = uint8_t(g() % 0x70);  // below 0x7f: no F8 NaN
            for (auto& b : ev) b = uint8_t(g() % 0x70);
            ex.upload(kv.k, ek.data(), bytes);
            ex.upload(kv.v, ev.data(), bytes);
            auto pool_is = [&](const char* what) {
                std::vector<uint8_t> hk(bytes), hv(bytes);
                ex.download(hk.data(), kv.k, bytes);
                ex.download(hv.data(), kv.v, bytes);
                INFO(what);
                CHECK(bool(hk == ek));  // as bools: Catch would print the whole pools on a failure
                CHECK(bool(hv == ev));
            };

            // Rows all -1: nothing changes.
            const int64_t n = 20, ks = width + 3, vs = width + 1;
            const auto k = rnd(g, size_t(n * ks), -2.f, 2.f), v = rnd(g, size_t(n * vs), -2.f, 2.f);
            const std::vector<int32_t> none(size_t(n), -1);
            ex.kv_store(kv, k.data(), ks, v.data(), vs, none.data(), n);
            pool_is("all rows skipped");

            // Distinct shuffled slots, every third row skipped: only those slots change, to the converted rows.
            std::vector<int32_t> slots(static_cast<size_t>(n_slots));
            std::iota(slots.begin(), slots.end(), 0);
            std::shuffle(slots.begin(), slots.end(), g);
            slots.resize(size_t(n));
            for (int64_t t = 0; t < n; t += 3) slots[size_t(t)] = -1;
            for (int64_t t = 0; t < n; ++t) {
                if (slots[size_t(t)] < 0) continue;
                for (int h = 0; h < n_kv; ++h)
                    for (int d = 0; d < hd; ++d) {
                        const size_t e = size_t((int64_t(slots[size_t(t)]) * n_kv + h) * hd + d);
                        put(ek.data() + e * es, dt, k[size_t(t * ks + h * hd + d)], kv.k_scale);
                        put(ev.data() + e * es, dt, v[size_t(t * vs + h * hd + d)], kv.v_scale);
                    }
            }
            ex.kv_store(kv, k.data(), ks, v.data(), vs, slots.data(), n);
            pool_is("mixed rows stored");

            // A slot outside the pool (either end) is rejected before any row is written. The view leaves out the
            // last allocated block, so a missed check shows as a write there rather than as a crash.
            KVCacheView part = kv;
            part.n_blocks = n_blocks - 1;
            const int64_t part_slots = part.n_blocks * bs;
            auto bad = slots;
            for (auto& s : bad) s = s < 0 ? s : int32_t(s % part_slots);
            bad[size_t(n - 1)] = int32_t(part_slots);
            CHECK_THROWS_WITH(ex.kv_store(part, k.data(), ks, v.data(), vs, bad.data(), n),
                              Catch::Contains("kv_store: KV slot " + std::to_string(part_slots) + " of row " +
                                              std::to_string(n - 1) + " is outside the pool of " +
                                              std::to_string(part_slots) + " slots"));
            bad[size_t(n - 1)] = -2;
            CHECK_THROWS_WITH(ex.kv_store(part, k.data(), ks, v.data(), vs, bad.data(), n),
                              Catch::Contains("KV slot -2 of row " + std::to_string(n - 1)));
            pool_is("rejected stores wrote nothing");
        }
    }
}

TEST_CASE("cpu attention rejects a bad step: sequence, position, block, heads, empty pool", "[cpu]") {
    CpuExecutor ex(1);
    KVCacheView kv;
    kv.n_blocks = 8;
    kv.block_size = 4;
    kv.n_kv_heads = 1;
    kv.head_dim = 8;
    kv.k = ex.alloc(8 * 4 * 8 * 4, "k");
    kv.v = ex.alloc(8 * 4 * 8 * 4, "v");
    std::mt19937 g(3);
    {
        const auto h = rnd(g, 8 * 4 * 8, -1.f, 1.f);
        ex.upload(kv.k, h.data(), h.size() * 4);
        ex.upload(kv.v, h.data(), h.size() * 4);
    }
    // Two sequences, max_blocks 3 (12 positions each): rows 0-1 of sequence 0, row 2 of sequence 1.
    std::vector<int32_t> pos{5, 6, 2}, seq{0, 0, 1}, qsl{0, 2, 3}, lens{7, 3}, slots{5, 6, 30}, state{0, 1};
    std::vector<int32_t> tables{3, 1, 0, 7, 0, 0};
    StepBatch b;
    b.n_tokens = 3;
    b.n_seqs = 2;
    b.token_pos = pos.data();
    b.token_seq = seq.data();
    b.query_start_loc = qsl.data();
    b.seq_lens = lens.data();
    b.block_tables = tables.data();
    b.max_blocks = 3;
    b.slot_mapping = slots.data();
    b.state_slots = state.data();
    b.max_query_len = 2;
    AttentionParams p;
    p.n_head = 2;
    p.n_kv_head = 1;
    p.head_dim = 8;
    p.scale = 0.35f;
    const auto q = rnd(g, 3 * 16, -1.f, 1.f);
    std::vector<float> out(3 * 16);
    ex.attention(q.data(), 16, kv, out.data(), p, b);  // the good step runs

    seq[2] = 2;
    CHECK_THROWS_WITH(ex.attention(q.data(), 16, kv, out.data(), p, b),
                      Catch::Contains("attention: row 2 names sequence 2 of 2"));
    seq[2] = -1;
    CHECK_THROWS_WITH(ex.attention(q.data(), 16, kv, out.data(), p, b), Catch::Contains("names sequence -1 of 2"));
    seq[2] = 1;
    pos[1] = 12;
    CHECK_THROWS_WITH(ex.attention(q.data(), 16, kv, out.data(), p, b),
                      Catch::Contains("attention: position 12 of row 1 is outside the 12 positions a sequence can hold"));
    pos[1] = 6;
    tables[1] = 8;
    CHECK_THROWS_WITH(ex.attention(q.data(), 16, kv, out.data(), p, b),
                      Catch::Contains("attention: block 8 of sequence 0 is outside the pool of 8 blocks"));
    tables[1] = 1;
    tables[3] = -1;
    CHECK_THROWS_WITH(ex.attention(q.data(), 16, kv, out.data(), p, b),
                      Catch::Contains("block -1 of sequence 1 is outside the pool of 8 blocks"));
    tables[3] = 7;
    p.n_kv_head = 2;
    CHECK_THROWS_WITH(ex.attention(q.data(), 16, kv, out.data(), p, b),
                      Catch::Contains("do not fit the KV cache (1 heads of dim 8)"));
    p.n_kv_head = 1;
    KVCacheView empty = kv;
    empty.n_blocks = 0;
    CHECK_THROWS_WITH(ex.attention(q.data(), 16, empty, out.data(), p, b),
                      Catch::Contains("attention: KV pool of 0 blocks of 4 positions"));
    ex.attention(q.data(), 16, kv, out.data(), p, b);  // good again
}
