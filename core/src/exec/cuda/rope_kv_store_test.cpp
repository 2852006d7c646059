// The fused rope_kv_store kernel against the CPU (q to 1e-5; each cache element within one rounding step of its
// dtype of the CPU's, nearly all bit-equal) for rows of different sequences (each row its own position and slot,
// some rows with slot -1), and rows with slot -1 store nothing.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "exec/cuda/cuda_test_util.h"
#include "imp/error.h"

using namespace imp;
using namespace imp::cuda_test;

namespace {

struct Case {
    int n_head, n_kv, hd, n_rot;
    bool neox, norm, factors;
    float freq_scale;
    int64_t n_tokens, pad;
};

float decode(DType dt, const uint8_t* p, float scale) {
    switch (dt) {
        case DType::F32: {
            float f;
            std::memcpy(&f, p, 4);
            return f;
        }
        case DType::F16: {
            uint16_t h;
            std::memcpy(&h, p, 2);
            return fp16_to_f32(h);
        }
        case DType::BF16: {
            uint16_t h;
            std::memcpy(&h, p, 2);
            return bf16_to_f32(h);
        }
        default: return fp8_e4m3_to_f32(*p) * scale;
    }
}

// Every element of `got` within one rounding step of `ref` (for F32: 1e-5 of the largest value); for the narrow
// types at least 99% bit-equal.
void check_cache(DType dt, const std::vector<uint8_t>& got, const std::vector<uint8_t>& ref, float scale) {
    const size_t es = dtype_size(dt), n = ref.size() / es;
    const int mant = dt == DType::F16 ? 10 : dt == DType::BF16 ? 7 : 3;
    const double floor = dt == DType::F8_E4M3 ? std::ldexp(double(scale), -9) : dt == DType::F16 ? 6e-8 : 1e-37;
    double ref_max = 0;
    for (size_t i = 0; i < n; ++i) ref_max = std::max(ref_max, std::fabs(double(decode(dt, &ref[i * es], scale))));
    size_t equal = 0, bad = 0;
    for (size_t i = 0; i < n; ++i) {
        const double a = decode(dt, &got[i * es], scale), b = decode(dt, &ref[i * es], scale);
        equal += std::memcmp(&got[i * es], &ref[i * es], es) == 0;
        const double step = std::ldexp(std::max(std::fabs(a), std::fabs(b)), -mant) * 1.01 + floor;
        const double tol = dt == DType::F32 ? 1e-5 * ref_max : step;
        if (!(std::fabs(a - b) <= tol) && bad++ < 5) INFO("element " << i << ": gpu " << a << " cpu " << b);
    }
    INFO("elements " << n << ", bit-equal " << equal);
    CHECK(bad == 0);
    if (dt != DType::F32) CHECK(double(equal) >= 0.99 * double(n));
}

void run_case(const Case& c, DType dt) {
    const uint32_t seed = fresh_seed();
    INFO("seed " << seed << " heads " << c.n_head << "/" << c.n_kv << " hd " << c.hd << " n_rot " << c.n_rot
                 << " neox " << c.neox << " norm " << c.norm << " factors " << c.factors << " dtype "
                 << dtype_name(dt) << " tokens " << c.n_tokens << " pad " << c.pad);
    std::mt19937 rng(seed);
    const int64_t qs = int64_t(c.n_head) * c.hd + c.pad, ks = int64_t(c.n_kv) * c.hd + c.pad,
                  vs = int64_t(c.n_kv) * c.hd + 2 * c.pad;
    const auto q = rand_vec(rng, size_t(c.n_tokens * qs), -3.f, 3.f);
    const auto k = rand_vec(rng, size_t(c.n_tokens * ks), -3.f, 3.f);
    const auto v = rand_vec(rng, size_t(c.n_tokens * vs), -2.f, 2.f);
    const auto qn = rand_vec(rng, size_t(c.hd), 0.5f, 1.5f), kn = rand_vec(rng, size_t(c.hd), 0.5f, 1.5f);
    const auto ff = rand_vec(rng, size_t(c.n_rot / 2), 1.f, 8.f);

    // A pool of 16 blocks; row t is sequence t, at a random position whose block maps to the row's slot (distinct
    // slots); every third row of a step with more than two rows is padding (slot -1).
    const int64_t capacity = 256, width = int64_t(c.n_kv) * c.hd;
    const int64_t n = c.n_tokens;
    std::vector<int32_t> all(static_cast<size_t>(capacity));
    std::iota(all.begin(), all.end(), 0);
    std::shuffle(all.begin(), all.end(), rng);
    std::vector<int32_t> pos(static_cast<size_t>(n)), slots(static_cast<size_t>(n)), seqs(static_cast<size_t>(n)),
        qsl(static_cast<size_t>(n) + 1), lens(static_cast<size_t>(n)), tables(static_cast<size_t>(n) * 16, 0);
    for (int64_t t = 0; t < n; ++t) {
        const int32_t slot = all[size_t(t)], blk = int32_t(rng() % 16);
        pos[size_t(t)] = blk * 16 + slot % 16;
        slots[size_t(t)] = n > 2 && t % 3 == 2 ? -1 : slot;
        tables[size_t(t) * 16 + size_t(blk)] = slot / 16;
        seqs[size_t(t)] = int32_t(t);
        qsl[size_t(t) + 1] = int32_t(t) + 1;
        lens[size_t(t)] = pos[size_t(t)] + 1;
    }
    StepBatch hb;
    hb.n_tokens = n;
    hb.n_seqs = int32_t(n);
    hb.token_pos = pos.data();
    hb.token_seq = seqs.data();
    hb.query_start_loc = qsl.data();
    hb.seq_lens = lens.data();
    hb.block_tables = tables.data();
    hb.max_blocks = 16;
    hb.slot_mapping = slots.data();
    hb.max_query_len = 1;
    hb.all_decode = true;
    StepBatch db = hb;
    db.token_pos = to_dev(pos);
    db.token_seq = to_dev(seqs);
    db.query_start_loc = to_dev(qsl);
    db.seq_lens = to_dev(lens);
    db.block_tables = to_dev(tables);
    db.slot_mapping = to_dev(slots);
    KVCacheView kv;
    kv.dtype = dt;
    kv.n_blocks = capacity / 16;
    kv.n_kv_heads = c.n_kv;
    kv.head_dim = c.hd;
    kv.block_size = 16;
    if (dt == DType::F8_E4M3) kv.k_scale = 0.05f, kv.v_scale = 0.02f;
    const size_t bytes = size_t(capacity * width) * dtype_size(dt);
    std::vector<uint8_t> ck(bytes), cv(bytes);
    KVCacheView kc = kv;  // CPU cache, filled with history first
    kc.k = ck.data();
    kc.v = cv.data();
    const auto hk = rand_vec(rng, size_t(capacity * width), -2.f, 2.f), hv = rand_vec(rng, size_t(capacity * width));
    cpu().kv_store(kc, hk.data(), width, hv.data(), width, all.data(), capacity);
    KVCacheView kg = kv;
    kg.k = to_dev(ck);
    kg.v = to_dev(cv);

    RopeParams rp;
    rp.head_dim = c.hd;
    rp.n_rot = c.n_rot;
    rp.base = c.hd >= 128 ? 1000000.f : 10000.f;
    rp.neox = c.neox;
    rp.freq_scale = c.freq_scale;
    const float eps = 1e-6f;

    auto qr = q, kr = k;
    rp.freq_factors = c.factors ? ff.data() : nullptr;
    cpu().rope_kv_store(qr.data(), qs, kr.data(), ks, v.data(), vs, c.norm ? qn.data() : nullptr,
                        c.norm ? kn.data() : nullptr, eps, hb, c.n_head, c.n_kv, rp, kc);
    float* dq = to_dev(q);
    rp.freq_factors = c.factors ? to_dev(ff) : nullptr;
    gpu().rope_kv_store(dq, qs, to_dev(k), ks, to_dev(v), vs, c.norm ? to_dev(qn) : nullptr,
                        c.norm ? to_dev(kn) : nullptr, eps, db, c.n_head, c.n_kv, rp, kg);
    CHECK(max_rel_err(from_dev(dq, q.size()), qr) <= 1e-5);
    check_cache(dt, from_dev(static_cast<uint8_t*>(kg.k), bytes), ck, kv.k_scale);
    check_cache(dt, from_dev(static_cast<uint8_t*>(kg.v), bytes), cv, kv.v_scale);
}

}  // namespace

TEST_CASE("cuda: rope_kv_store matches the CPU (norm, NEOX/normal, partial, GQA, every KV dtype)", "[cuda]") {
    const Case cases[] = {
        {9, 3, 64, 64, false, true, false, 1.f, 5, 0},    {7, 7, 128, 64, true, false, false, 1.f, 3, 3},
        {32, 8, 128, 128, true, true, true, 0.25f, 4, 0}, {5, 1, 80, 40, false, true, true, 1.f, 3, 2},
        {4, 2, 256, 256, true, true, false, 1.f, 2, 0},   {3, 3, 6, 2, true, true, false, 0.5f, 6, 1},
        {1, 1, 64, 32, false, false, true, 1.f, 1, 0},    {6, 2, 128, 128, false, true, false, 1.f, 40, 8},
        {32, 8, 128, 128, true, true, false, 1.f, 1, 0},  {16, 16, 256, 64, false, true, true, 1.f, 3, 0},
    };
    for (const Case& c : cases)
        for (DType dt : {DType::F32, DType::F16, DType::BF16, DType::F8_E4M3}) run_case(c, dt);
}

TEST_CASE("cuda: rope_kv_store stores nothing for slot -1 and rejects bad shapes", "[cuda]") {
    const uint32_t seed = fresh_seed();
    INFO("seed " << seed);
    std::mt19937 rng(seed);
    KVCacheView kv;
    kv.dtype = DType::BF16;
    kv.n_blocks = 2;
    kv.n_kv_heads = 2;
    kv.head_dim = 64;
    kv.block_size = 16;
    const size_t bytes = size_t(kv.n_blocks) * 16 * 2 * 64 * 2;
    std::vector<uint8_t> init(bytes);
    for (auto& b : init) b = uint8_t(rng() & 0x3f);
    kv.k = to_dev(init);
    kv.v = to_dev(init);
    RopeParams rp;
    rp.head_dim = 64;
    rp.n_rot = 64;
    rp.neox = true;
    const auto q = rand_vec(rng, 4 * 64), k = rand_vec(rng, 2 * 64), v = rand_vec(rng, 2 * 64);
    const int32_t pos = 21;
    std::vector<float> qr = q;
    cpu().rope(qr.data(), 4 * 64, &pos, 1, 4, rp);  // q is still rotated
    float* dq = to_dev(q);
    StepBatch b;
    b.n_tokens = 1;
    b.n_seqs = 1;
    b.token_pos = to_dev(std::vector<int32_t>{pos});
    b.token_seq = to_dev(std::vector<int32_t>{0});
    b.query_start_loc = to_dev(std::vector<int32_t>{0, 1});
    b.seq_lens = to_dev(std::vector<int32_t>{pos + 1});
    b.block_tables = to_dev(std::vector<int32_t>{1, 0});
    b.max_blocks = 2;
    b.slot_mapping = to_dev(std::vector<int32_t>{-1});
    b.max_query_len = 1;
    b.all_decode = true;
    gpu().rope_kv_store(dq, 4 * 64, to_dev(k), 2 * 64, to_dev(v), 2 * 64, nullptr, nullptr, 1e-6f, b, 4, 2, rp, kv);
    CHECK(max_rel_err(from_dev(dq, q.size()), qr) <= 1e-5);
    CHECK(from_dev(static_cast<uint8_t*>(kv.k), bytes) == init);
    CHECK(from_dev(static_cast<uint8_t*>(kv.v), bytes) == init);
    b.slot_mapping = to_dev(std::vector<int32_t>{5});  // block 0, row 5: only that row changes
    gpu().rope_kv_store(dq, 4 * 64, to_dev(k), 2 * 64, to_dev(v), 2 * 64, nullptr, nullptr, 1e-6f, b, 4, 2, rp, kv);
    const auto after = from_dev(static_cast<uint8_t*>(kv.v), bytes);
    const size_t row = 2 * 64 * 2;
    CHECK(std::equal(after.begin(), after.begin() + 5 * row, init.begin()));
    CHECK(!std::equal(after.begin() + 5 * row, after.begin() + 6 * row, init.begin() + 5 * row));
    CHECK(std::equal(after.begin() + 6 * row, after.end(), init.begin() + 6 * row));
    RopeParams big = rp;
    big.head_dim = big.n_rot = 512;
    KVCacheView kv512 = kv;
    kv512.head_dim = 512;
    using Catch::Contains;  // the message, not just imp::Error: "no CUDA device" is one too
    CHECK_THROWS_WITH(gpu().rope_kv_store(dq, 0, nullptr, 0, nullptr, 0, nullptr, nullptr, 0.f, b, 4, 2, big, kv512),
                      Contains("cuda rope_kv_store: head_dim 512 is not supported (1..256)"));
    CHECK_THROWS_WITH(gpu().rope_kv_store(dq, 0, nullptr, 0, nullptr, 0, nullptr, nullptr, 0.f, b, 4, 3, rp, kv),
                      Contains("cuda rope_kv_store: 4 heads / 3 KV heads of dim 64 do not fit the KV cache"));
    RopeParams odd = rp;
    odd.n_rot = 63;
    CHECK_THROWS_WITH(gpu().rope_kv_store(dq, 0, nullptr, 0, nullptr, 0, nullptr, nullptr, 0.f, b, 4, 2, odd, kv),
                      Contains("cuda rope_kv_store: n_rot 63 must be even and in (0, head_dim 64]"));
}

// kv_store of rows of several sequences through a slot mapping with -1 entries: the bytes equal the CPU's, and the
// rows with -1 leave the pool as it was.
TEST_CASE("cuda: kv_store writes rows to their slots and skips slot -1 (every KV dtype)", "[cuda]") {
    const uint32_t seed = fresh_seed();
    INFO("seed " << seed);
    std::mt19937 rng(seed);
    const int n_kv = 3, hd = 40;
    const int64_t n_blocks = 9, width = int64_t(n_kv) * hd, stride = width + 3, n = 50;
    std::vector<int32_t> all(size_t(n_blocks * 16));
    std::iota(all.begin(), all.end(), 0);
    std::shuffle(all.begin(), all.end(), rng);
    std::vector<int32_t> slots(all.begin(), all.begin() + n);
    for (size_t i = 0; i < slots.size(); i += 4) slots[i] = -1;
    for (DType dt : {DType::F32, DType::F16, DType::BF16, DType::F8_E4M3}) {
        INFO("dtype " << dtype_name(dt));
        KVCacheView kv;
        kv.dtype = dt;
        kv.n_blocks = n_blocks;
        kv.n_kv_heads = n_kv;
        kv.head_dim = hd;
        if (dt == DType::F8_E4M3) kv.k_scale = 0.05f, kv.v_scale = 0.02f;
        const size_t bytes = size_t(n_blocks * 16 * width) * dtype_size(dt);
        std::vector<uint8_t> ck(bytes), cv(bytes);
        for (auto* b : {&ck, &cv})
            for (auto& x : *b) x = uint8_t(rng() & 0x3b);  // finite in every dtype
        KVCacheView kg = kv;
        kg.k = to_dev(ck);
        kg.v = to_dev(cv);
        kv.k = ck.data();
        kv.v = cv.data();
        const auto k = rand_vec(rng, size_t(n * stride), -3.f, 3.f), v = rand_vec(rng, size_t(n * stride), -2.f, 2.f);
        gpu().kv_store(kg, to_dev(k), stride, to_dev(v), stride, to_dev(slots), n);
        const auto before = ck;
        cpu().kv_store(kv, k.data(), stride, v.data(), stride, slots.data(), n);
        CHECK(ck != before);
        CHECK(from_dev(static_cast<uint8_t*>(kg.k), bytes) == ck);
        CHECK(from_dev(static_cast<uint8_t*>(kg.v), bytes) == cv);
    }
}
