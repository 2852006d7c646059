// CpuExecutor::attention over a KV pool shared by several sequences, against a double-precision reference written
// here that walks each sequence's own contiguous K/V: GQA, every KV dtype, history stored in pieces, blocks of all
// sequences interleaved in shuffled order among junk blocks, padding sequences on the zero block (slot -1); and each
// sequence run alone (n_seqs = 1) gives the same output rows, bit for bit, as the whole batch.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include "common/max_err.h"
#include "exec/cpu/cpu_executor.h"
#include "imp/error.h"

using namespace imp;

namespace {

struct Seq {
    int64_t hist, n_q;  // positions already cached, query rows of this step
    bool pad = false;   // padding: one row at position 0, slot -1, block table all zeros (the zero block)
};
struct Shape {
    int n_head, n_kv_head, head_dim, block_size;
    int64_t q_pad;
    DType dtype;
};

constexpr float kKScale = 0.03125f, kVScale = 0.0625f;  // F8_E4M3 cache scales (they differ so a swap shows)

std::vector<float> rnd(std::mt19937& g, size_t n, float lo, float hi) {
    std::uniform_real_distribution<float> d(lo, hi);
    std::vector<float> v(n);
    for (auto& x : v) {
        do x = d(g);
        while (x == 0.f);
    }
    return v;
}

double round_kv(float v, DType t, float scale) {
    if (t == DType::F16) return fp16_to_f32(f32_to_fp16(v));
    if (t == DType::BF16) return bf16_to_f32(f32_to_bf16(v));
    if (t == DType::F8_E4M3) return fp8_e4m3_to_f32(f32_to_fp8_e4m3(v / scale)) * scale;
    return v;
}

// One step over several sequences: the host metadata, Q, each sequence's contiguous K/V, the pool they went to.
struct Scene {
    Shape sh;
    std::vector<Seq> seqs;
    int64_t kvw = 0, qs = 0, n_tokens = 0;
    int32_t max_blocks = 0;
    std::vector<int32_t> pos, seq, qsl, lens, tables, slots, state;
    std::vector<float> q;
    std::vector<std::vector<float>> k, v;  // [length, kvw] per sequence; zeros for padding
    KVCacheView kv;

    int32_t slot_of(size_t s, int64_t p) const {
        const int bs = sh.block_size;
        return tables[s * size_t(max_blocks) + size_t(p / bs)] * bs + int32_t(p % bs);
    }
    StepBatch batch() const {
        StepBatch b;
        b.n_tokens = n_tokens;
        b.n_seqs = int32_t(seqs.size());
        b.token_pos = pos.data();
        b.token_seq = seq.data();
        b.query_start_loc = qsl.data();
        b.seq_lens = lens.data();
        b.block_tables = tables.data();
        b.max_blocks = max_blocks;
        b.slot_mapping = slots.data();
        b.state_slots = state.data();
        b.all_decode = n_tokens == int64_t(seqs.size());
        for (size_t s = 0; s < seqs.size(); ++s) b.max_query_len = std::max(b.max_query_len, qsl[s + 1] - qsl[s]);
        return b;
    }
};

// kv_store of rows [(sequence, position)] of sc.k/sc.v (or of `junk` rows for padding) through a padded copy.
void store_rows(CpuExecutor& ex, const Scene& sc, const std::vector<std::pair<size_t, int64_t>>& rows,
                std::mt19937& g) {
    const int64_t stride = sc.kvw + 5;
    std::vector<float> kp = rnd(g, rows.size() * size_t(stride), -4.f, 4.f), vp = kp;
    std::vector<int32_t> slots(rows.size());
    for (size_t r = 0; r < rows.size(); ++r) {
        const auto [s, p] = rows[r];
        slots[r] = sc.seqs[s].pad ? -1 : sc.slot_of(s, p);
        if (sc.seqs[s].pad) continue;  // junk rows, never written
        std::copy_n(sc.k[s].begin() + p * sc.kvw, sc.kvw, kp.begin() + int64_t(r) * stride);
        std::copy_n(sc.v[s].begin() + p * sc.kvw, sc.kvw, vp.begin() + int64_t(r) * stride);
    }
    ex.kv_store(sc.kv, kp.data(), stride, vp.data(), stride, slots.data(), int64_t(rows.size()));
}

// Pool: block 0 is the zero block, then every sequence's blocks dealt round-robin from a shuffled list (so the
// sequences interleave), then 3 spare blocks; everything but block 0 starts as junk. History goes in three
// kv_store calls over a shuffled mix of all sequences' positions, the step's rows in one more (as a layer does).
Scene build(CpuExecutor& ex, const Shape& sh, const std::vector<Seq>& seqs, uint32_t seed, int32_t extra_blocks = 0) {
    std::mt19937 g(seed);
    Scene sc;
    sc.sh = sh;
    sc.seqs = seqs;
    const int bs = sh.block_size;
    const size_t n = seqs.size();
    sc.kvw = int64_t(sh.n_kv_head) * sh.head_dim;
    sc.qs = int64_t(sh.n_head) * sh.head_dim + sh.q_pad;
    std::vector<int64_t> len(n), nb(n);
    int64_t used = 0;
    for (size_t s = 0; s < n; ++s) {
        len[s] = seqs[s].pad ? 1 : seqs[s].hist + seqs[s].n_q;
        nb[s] = seqs[s].pad ? 0 : (len[s] + bs - 1) / bs;
        used += nb[s];
        sc.max_blocks = std::max(sc.max_blocks, int32_t((len[s] + bs - 1) / bs));
    }
    sc.max_blocks += extra_blocks;
    const int64_t n_blocks = 1 + used + 3;
    std::vector<int32_t> phys(size_t(n_blocks - 1));
    std::iota(phys.begin(), phys.end(), 1);
    std::shuffle(phys.begin(), phys.end(), g);
    sc.tables.assign(n * size_t(sc.max_blocks), 0);
    size_t next = 0;
    for (int64_t blk = 0; blk < sc.max_blocks; ++blk)
        for (size_t s = 0; s < n; ++s)
            if (blk < nb[s]) sc.tables[s * size_t(sc.max_blocks) + size_t(blk)] = phys[next++];

    const size_t es = dtype_size(sh.dtype), pool_bytes = size_t(n_blocks * bs * sc.kvw) * es;
    sc.kv.k = ex.alloc(pool_bytes, "k pool");
    sc.kv.v = ex.alloc(pool_bytes, "v pool");
    sc.kv.dtype = sh.dtype;
    sc.kv.n_blocks = n_blocks;
    sc.kv.n_kv_heads = sh.n_kv_head;
    sc.kv.head_dim = sh.head_dim;
    sc.kv.block_size = bs;
    sc.kv.k_scale = kKScale;
    sc.kv.v_scale = kVScale;
    {
        const int64_t n_slots = n_blocks * bs;
        const auto jk = rnd(g, size_t(n_slots * sc.kvw), -3.f, 3.f), jv = rnd(g, size_t(n_slots * sc.kvw), -3.f, 3.f);
        std::vector<int32_t> all(static_cast<size_t>(n_slots));
        std::iota(all.begin(), all.end(), 0);
        ex.kv_store(sc.kv, jk.data(), sc.kvw, jv.data(), sc.kvw, all.data(), n_slots);
        ex.fill_zero(sc.kv.k, size_t(bs * sc.kvw) * es);
        ex.fill_zero(sc.kv.v, size_t(bs * sc.kvw) * es);
    }
    for (size_t s = 0; s < n; ++s) {
        sc.k.push_back(seqs[s].pad ? std::vector<float>(size_t(sc.kvw)) : rnd(g, size_t(len[s] * sc.kvw), -1.f, 1.f));
        sc.v.push_back(seqs[s].pad ? std::vector<float>(size_t(sc.kvw)) : rnd(g, size_t(len[s] * sc.kvw), -1.f, 1.f));
    }
    std::vector<std::pair<size_t, int64_t>> hist, step;
    for (size_t s = 0; s < n; ++s)
        for (int64_t p = 0; p < (seqs[s].pad ? 0 : seqs[s].hist); ++p) hist.emplace_back(s, p);
    std::shuffle(hist.begin(), hist.end(), g);
    const size_t c1 = hist.size() / 3, c2 = hist.size() - hist.size() / 4;
    store_rows(ex, sc, {hist.begin(), hist.begin() + std::ptrdiff_t(c1)}, g);
    store_rows(ex, sc, {hist.begin() + std::ptrdiff_t(c1), hist.begin() + std::ptrdiff_t(c2)}, g);
    store_rows(ex, sc, {hist.begin() + std::ptrdiff_t(c2), hist.end()}, g);

    for (size_t s = 0; s < n; ++s) {
        sc.qsl.push_back(int32_t(step.size()));
        const int64_t first = seqs[s].pad ? 0 : seqs[s].hist;
        for (int64_t p = first; p < len[s]; ++p) {
            step.emplace_back(s, p);
            sc.pos.push_back(int32_t(p));
            sc.seq.push_back(int32_t(s));
            sc.slots.push_back(seqs[s].pad ? -1 : sc.slot_of(s, p));
        }
        sc.lens.push_back(int32_t(len[s]));
        sc.state.push_back(int32_t(s));
    }
    sc.qsl.push_back(int32_t(step.size()));
    sc.n_tokens = int64_t(step.size());
    store_rows(ex, sc, step, g);
    sc.q = rnd(g, size_t(sc.n_tokens * sc.qs), -2.f, 2.f);
    return sc;
}

AttentionParams params(const Shape& sh) {
    AttentionParams p;
    p.n_head = sh.n_head;
    p.n_kv_head = sh.n_kv_head;
    p.head_dim = sh.head_dim;
    p.scale = float(1.0 / std::sqrt(double(sh.head_dim)));
    return p;
}

// Softmax attention in double over each sequence's contiguous (dtype-rounded) K/V, positions [0, pos] of the row.
std::vector<double> reference(const Scene& sc) {
    const Shape& sh = sc.sh;
    const int hd = sh.head_dim, grp = sh.n_head / sh.n_kv_head;
    const double scale = params(sh).scale;
    std::vector<std::vector<double>> rk, rv;  // each sequence's K/V as the cache holds them
    for (size_t s = 0; s < sc.seqs.size(); ++s) {
        rk.emplace_back(sc.k[s].size());
        rv.emplace_back(sc.v[s].size());
        for (size_t i = 0; i < sc.k[s].size(); ++i) rk[s][i] = round_kv(sc.k[s][i], sh.dtype, kKScale);
        for (size_t i = 0; i < sc.v[s].size(); ++i) rv[s][i] = round_kv(sc.v[s][i], sh.dtype, kVScale);
    }
    std::vector<double> out(size_t(sc.n_tokens * sh.n_head * hd));
    for (int64_t t = 0; t < sc.n_tokens; ++t) {
        const auto& K = rk[size_t(sc.seq[size_t(t)])];
        const auto& V = rv[size_t(sc.seq[size_t(t)])];
        const int64_t n_ctx = sc.pos[size_t(t)] + 1;
        std::vector<double> s(static_cast<size_t>(n_ctx));
        for (int h = 0; h < sh.n_head; ++h) {
            const int64_t kv0 = int64_t(h / grp) * hd;
            double mx = -1e300, z = 0;
            for (int64_t j = 0; j < n_ctx; ++j) {
                double d = 0;
                for (int i = 0; i < hd; ++i)
                    d += double(sc.q[size_t(t * sc.qs + h * hd + i)]) * K[size_t(j * sc.kvw + kv0 + i)];
                mx = std::max(mx, s[size_t(j)] = d * scale);
            }
            for (auto& e : s) z += (e = std::exp(e - mx));
            for (int i = 0; i < hd; ++i) {
                double acc = 0;
                for (int64_t j = 0; j < n_ctx; ++j)
                    acc += s[size_t(j)] * V[size_t(j * sc.kvw + kv0 + i)];
                out[size_t((t * sh.n_head + h) * hd + i)] = acc / z;
            }
        }
    }
    return out;
}

// The whole batch against the reference (padding rows exactly zero), then each sequence alone against the batch.
void check_scene(CpuExecutor& ex, const Scene& sc) {
    const Shape& sh = sc.sh;
    const int64_t ow = int64_t(sh.n_head) * sh.head_dim;
    std::vector<float> out(size_t(sc.n_tokens * ow), 7.f);
    ex.attention(sc.q.data(), sc.qs, sc.kv, out.data(), params(sh), sc.batch());
    CHECK(imp::test::max_rel_err(out, reference(sc)) < 1e-5);
    for (size_t s = 0; s < sc.seqs.size(); ++s) {
        const int64_t r0 = sc.qsl[s], nr = sc.qsl[s + 1] - r0;
        if (sc.seqs[s].pad)
            for (int64_t i = 0; i < ow; ++i) REQUIRE(out[size_t(r0 * ow + i)] == 0.f);
        const std::vector<int32_t> seq0(size_t(nr), 0), qsl1{0, int32_t(nr)};
        StepBatch b;
        b.n_tokens = nr;
        b.n_seqs = 1;
        b.token_pos = sc.pos.data() + r0;
        b.token_seq = seq0.data();
        b.query_start_loc = qsl1.data();
        b.seq_lens = sc.lens.data() + s;
        b.block_tables = sc.tables.data() + s * size_t(sc.max_blocks);
        b.max_blocks = sc.max_blocks;
        b.slot_mapping = sc.slots.data() + r0;
        b.state_slots = sc.state.data() + s;
        b.max_query_len = int32_t(nr);
        b.all_decode = nr == 1;
        std::vector<float> alone(size_t(nr * ow), 7.f);
        ex.attention(sc.q.data() + r0 * sc.qs, sc.qs, sc.kv, alone.data(), params(sh), b);
        INFO("sequence " << s << " of " << sc.seqs.size() << ": " << nr << " rows");
        CHECK(std::memcmp(alone.data(), out.data() + r0 * ow, alone.size() * sizeof(float)) == 0);
    }
}

}  // namespace

TEST_CASE("cpu attention over one sequence matches the double reference (GQA, history, decode, KV dtypes)", "[cpu]") {
    CpuExecutor ex(4);
    struct Case {
        Shape sh;
        int64_t hist, n_q;
        int32_t extra_blocks;
    };
    const Case cases[] = {
        {{4, 4, 16, 4, 0, DType::F32}, 0, 9, 2},       {{8, 2, 32, 4, 3, DType::F32}, 0, 12, 0},
        {{6, 2, 24, 4, 0, DType::F32}, 13, 5, 5},      {{3, 1, 7, 4, 1, DType::F32}, 20, 1, 0},
        {{4, 2, 64, 4, 0, DType::F32}, 37, 1, 6},      {{9, 3, 12, 4, 2, DType::F32}, 5, 17, 1},
        {{4, 2, 16, 4, 0, DType::BF16}, 11, 6, 1},     {{4, 1, 16, 4, 0, DType::F16}, 3, 4, 0},
        {{2, 2, 128, 16, 0, DType::F32}, 300, 3, 12},  {{4, 2, 32, 4, 1, DType::F8_E4M3}, 9, 7, 1},
        {{4, 2, 32, 16, 0, DType::F16}, 40, 33, 0},    {{8, 8, 64, 16, 0, DType::BF16}, 17, 1, 0},
    };
    uint32_t seed = 100;
    for (const auto& c : cases) {
        INFO("heads " << c.sh.n_head << "/" << c.sh.n_kv_head << " hd " << c.sh.head_dim << " block "
                      << c.sh.block_size << " hist " << c.hist << " rows " << c.n_q << " dtype "
                      << dtype_name(c.sh.dtype));
        check_scene(ex, build(ex, c.sh, {{c.hist, c.n_q}}, seed++, c.extra_blocks));
    }
}

TEST_CASE("cpu attention over 1..16 sequences in one call matches the reference and each sequence alone",
          "[cpu]") {
    CpuExecutor ex(3);
    const Shape shapes[] = {{4, 2, 32, 16, 0, DType::F32}, {6, 3, 16, 4, 5, DType::F16},
                            {8, 2, 24, 16, 0, DType::BF16}, {2, 1, 16, 8, 2, DType::F8_E4M3}};
    std::mt19937 g(2024);
    for (int n = 1; n <= 16; ++n) {
        const Shape& sh = shapes[n % 4];
        std::vector<Seq> seqs;
        for (int s = 0; s < n; ++s) {
            // Half decode rows, half prompts of 1..200; histories of 0..150, some empty.
            const int64_t n_q = g() % 2 ? 1 : 1 + int64_t(g() % 200);
            const int64_t hist = g() % 4 == 0 ? 0 : int64_t(g() % 151);
            seqs.push_back({hist, n_q});
        }
        // Padding sequences as a decode bucket has them (at the end), and one in the middle for good measure.
        if (n >= 3) seqs[size_t(n - 1)] = {0, 1, true};
        if (n >= 8) seqs[size_t(n / 2)] = {0, 1, true};
        if (n == 16) seqs[14] = {0, 1, true};
        INFO(n << " sequences, heads " << sh.n_head << "/" << sh.n_kv_head << " hd " << sh.head_dim << " block "
               << sh.block_size << " dtype " << dtype_name(sh.dtype));
        check_scene(ex, build(ex, sh, seqs, uint32_t(500 + n), int32_t(n % 3)));
    }
    // A decode-only batch (all_decode) of 16 with long histories.
    std::vector<Seq> dec;
    for (int s = 0; s < 16; ++s) dec.push_back({int64_t(g() % 300), 1, s >= 13});
    check_scene(ex, build(ex, shapes[0], dec, 77));
}
