// CpuExecutor memory, threads and elementwise ops (parallel_for, alloc, copy/fill_zero, rms_norm, rope, swiglu,
// add) against naive double-precision implementations written here, on random non-zero inputs. Attention, kv_store,
// rope_kv_store and sample have their own files.
#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <random>
#include <stdexcept>
#include <vector>

#include "common/max_err.h"
#include "exec/cpu/cpu_executor.h"
#include "imp/error.h"

using imp::CpuExecutor;

namespace {

std::vector<float> rnd(size_t n, uint32_t seed, float lo = -1.f, float hi = 1.f) {
    std::mt19937 g(seed);
    std::uniform_real_distribution<float> d(lo, hi);
    std::vector<float> v(n);
    for (auto& x : v) {
        do x = d(g);
        while (x == 0.f);
    }
    return v;
}

}  // namespace

TEST_CASE("cpu parallel_for covers every index exactly once", "[cpu]") {
    for (int threads : {1, 2, 3, 4}) {
        CpuExecutor ex(threads);
        CHECK(ex.threads() == threads);
        for (int64_t n : {0, 1, 2, 7, 64, 1000, 12345}) {
            for (int64_t grain : {1, 3, 16, 5000}) {
                // Catch2 assertions are not thread-safe: the workers only count, the checks run on this thread.
                std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
                std::atomic<int> empty_chunks{0};
                ex.parallel_for(n, grain, [&](int64_t b, int64_t e) {
                    if (b >= e) empty_chunks++;
                    for (int64_t i = b; i < e; ++i) hits[size_t(i)]++;
                });
                REQUIRE(empty_chunks.load() == 0);
                for (auto& h : hits) REQUIRE(h.load() == 1);
            }
        }
    }
}

TEST_CASE("cpu parallel_for survives many small jobs, nesting and exceptions", "[cpu]") {
    CpuExecutor ex(4);
    std::atomic<int64_t> total{0};
    for (int rep = 0; rep < 20000; ++rep)
        ex.parallel_for(8, 1, [&](int64_t b, int64_t e) { total += e - b; });
    CHECK(total.load() == 20000 * 8);

    std::atomic<int64_t> inner{0};
    ex.parallel_for(16, 1, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) ex.parallel_for(10, 1, [&](int64_t b2, int64_t e2) { inner += e2 - b2; });
    });
    CHECK(inner.load() == 160);

    CHECK_THROWS_AS(ex.parallel_for(100, 1, [&](int64_t b, int64_t) {
        if (b == 0) throw std::runtime_error("boom");
    }),
                    std::runtime_error);
    std::atomic<int64_t> after{0};
    ex.parallel_for(100, 1, [&](int64_t b, int64_t e) { after += e - b; });
    CHECK(after.load() == 100);
}

TEST_CASE("cpu alloc is aligned, zeroed and tracked", "[cpu]") {
    CpuExecutor ex(2);
    CHECK(ex.bytes_allocated() == 0);
    for (size_t bytes : {1, 63, 64, 1000, 1 << 20}) {
        auto* p = static_cast<uint8_t*>(ex.alloc(bytes, "test"));
        CHECK(reinterpret_cast<uintptr_t>(p) % 64 == 0);
        for (size_t i = 0; i < bytes; i += 7) REQUIRE(p[i] == 0);
    }
    CHECK(ex.bytes_allocated() >= 1 + 63 + 64 + 1000 + (1 << 20));
    std::vector<float> src = rnd(33, 1), back(33);
    float* d = static_cast<float*>(ex.alloc(33 * 4, "copy"));
    ex.upload(d, src.data(), 33 * 4);
    ex.download(back.data(), d, 33 * 4);
    CHECK(back == src);
}

TEST_CASE("cpu rms_norm matches the double reference", "[cpu]") {
    CpuExecutor ex(3);
    struct Shape { int64_t rows, n; };
    for (auto [rows, n] : {Shape{1, 1}, Shape{3, 7}, Shape{5, 64}, Shape{2, 1001}, Shape{37, 96}}) {
        for (bool with_w : {true, false}) {
            auto x = rnd(size_t(rows * n), uint32_t(rows * 31 + n));
            auto w = rnd(size_t(n), uint32_t(n + 5), 0.5f, 1.5f);
            const float eps = 1e-5f;
            std::vector<double> ref(x.size());
            for (int64_t r = 0; r < rows; ++r) {
                double ss = 0;
                for (int64_t i = 0; i < n; ++i) ss += double(x[r * n + i]) * x[r * n + i];
                const double s = 1.0 / std::sqrt(ss / double(n) + eps);
                for (int64_t i = 0; i < n; ++i) ref[r * n + i] = x[r * n + i] * s * (with_w ? w[i] : 1.0);
            }
            std::vector<float> y(x.size());
            ex.rms_norm(x.data(), with_w ? w.data() : nullptr, y.data(), rows, n, eps);
            CHECK(imp::test::max_rel_err(y, ref) < 2e-6);
            ex.rms_norm(x.data(), with_w ? w.data() : nullptr, x.data(), rows, n, eps);  // in place
            CHECK(imp::test::max_rel_err(x, ref) < 2e-6);
        }
    }
}

namespace {

// Naive RoPE in double, written from the definition: pair (a, b) of head dims rotated by
// theta_i = pos * freq_scale * base^(-2i/n_rot) / ff_i.
std::vector<double> rope_ref(const std::vector<float>& x, int64_t stride, const std::vector<int32_t>& pos, int n_heads,
                             const imp::RopeParams& p) {
    std::vector<double> y(x.begin(), x.end());
    const int half = p.n_rot / 2;
    for (size_t t = 0; t < pos.size(); ++t)
        for (int h = 0; h < n_heads; ++h)
            for (int i = 0; i < half; ++i) {
                double th = pos[t] * double(p.freq_scale) * std::pow(double(p.base), -2.0 * i / p.n_rot);
                if (p.freq_factors) th /= p.freq_factors[i];
                const int64_t o = int64_t(t) * stride + int64_t(h) * p.head_dim;
                const int64_t a = o + (p.neox ? i : 2 * i), b = o + (p.neox ? i + half : 2 * i + 1);
                y[a] = double(x[a]) * std::cos(th) - double(x[b]) * std::sin(th);
                y[b] = double(x[b]) * std::cos(th) + double(x[a]) * std::sin(th);
            }
    return y;
}

}  // namespace

TEST_CASE("cpu rope matches the double reference (neox, norm, partial, scaled, factors)", "[cpu]") {
    CpuExecutor ex(2);
    struct Case { int head_dim, n_rot, n_heads, n_tokens, pad; int32_t pos0; bool neox; float scale; bool ff; };
    const Case cases[] = {
        {64, 64, 4, 5, 0, 0, true, 1.f, false},   {64, 64, 4, 5, 0, 0, false, 1.f, false},
        {32, 16, 3, 7, 8, 100, true, 1.f, false}, {32, 16, 3, 7, 8, 100, false, 1.f, false},
        {18, 10, 2, 1, 3, 4097, true, 0.25f, true}, {128, 128, 2, 9, 0, 33, false, 1.f, true},
        {6, 2, 5, 3, 1, 7, true, 0.5f, false},
    };
    for (const auto& c : cases) {
        const int64_t stride = int64_t(c.n_heads) * c.head_dim + c.pad;
        auto x = rnd(size_t(stride * c.n_tokens), uint32_t(c.head_dim * 7 + c.n_rot + c.pos0));
        std::vector<int32_t> pos(size_t(c.n_tokens));
        for (int t = 0; t < c.n_tokens; ++t) pos[size_t(t)] = c.pos0 + t;
        std::vector<float> ff = rnd(size_t(c.n_rot / 2), 9, 1.f, 8.f);
        imp::RopeParams p;
        p.head_dim = c.head_dim;
        p.n_rot = c.n_rot;
        p.base = c.ff ? 500000.f : 10000.f;
        p.neox = c.neox;
        p.freq_scale = c.scale;
        p.freq_factors = c.ff ? ff.data() : nullptr;
        auto ref = rope_ref(x, stride, pos, c.n_heads, p);
        ex.rope(x.data(), stride, pos.data(), c.n_tokens, c.n_heads, p);
        INFO("head_dim " << c.head_dim << " n_rot " << c.n_rot << " neox " << c.neox);
        CHECK(imp::test::max_rel_err(x, ref) < 2e-6);
        // Dims past n_rot and row padding are untouched.
        for (int t = 0; t < c.n_tokens; ++t)
            for (int64_t i = 0; i < stride; ++i) {
                const int64_t in_head = i % c.head_dim;
                if (i >= int64_t(c.n_heads) * c.head_dim || in_head >= c.n_rot)
                    REQUIRE(double(x[size_t(t * stride + i)]) == ref[size_t(t * stride + i)]);
            }
    }
    imp::RopeParams bad;
    bad.head_dim = 8;
    bad.n_rot = 9;
    std::vector<float> x(8);
    int32_t pos = 0;
    CHECK_THROWS_AS(ex.rope(x.data(), 8, &pos, 1, 1, bad), imp::Error);
}

TEST_CASE("cpu swiglu and add match the double reference", "[cpu]") {
    CpuExecutor ex(3);
    for (auto [rows, n] : {std::pair<int64_t, int64_t>{1, 1}, {3, 173}, {17, 4096}}) {
        const int64_t gs = n + 3, us = 2 * n + 1;
        auto g = rnd(size_t(rows * gs), 3, -6.f, 6.f), u = rnd(size_t(rows * us), 4);
        std::vector<double> ref(size_t(rows * n));
        for (int64_t r = 0; r < rows; ++r)
            for (int64_t i = 0; i < n; ++i) {
                const double gv = g[r * gs + i];
                ref[r * n + i] = gv / (1.0 + std::exp(-gv)) * u[r * us + i];
            }
        std::vector<float> out(size_t(rows * n));
        ex.swiglu(g.data(), gs, u.data(), us, out.data(), rows, n);
        CHECK(imp::test::max_rel_err(out, ref) < 2e-6);

        auto a = rnd(size_t(rows * n), 5), b = rnd(size_t(rows * n), 6);
        std::vector<double> sum(a.size());
        for (size_t i = 0; i < a.size(); ++i) sum[i] = double(a[i]) + b[i];
        ex.add(a.data(), b.data(), int64_t(a.size()));
        CHECK(imp::test::max_rel_err(a, sum) < 1e-7);
    }
}

TEST_CASE("cpu copy and fill_zero move exactly the bytes asked for", "[cpu]") {
    CpuExecutor ex(2);
    for (size_t bytes : {size_t(0), size_t(1), size_t(7), size_t(64), size_t(4096 + 3)}) {
        INFO(bytes << " bytes");
        const size_t guard = 16, total = bytes + 2 * guard;
        auto* a = static_cast<uint8_t*>(ex.alloc(total, "a"));
        auto* b = static_cast<uint8_t*>(ex.alloc(total, "b"));
        std::mt19937 g(uint32_t(bytes) + 1);
        std::vector<uint8_t> ha(total), hb(total);
        for (auto& x : ha) x = uint8_t(1 + g() % 255);
        for (auto& x : hb) x = uint8_t(1 + g() % 255);
        ex.upload(a, ha.data(), total);
        ex.upload(b, hb.data(), total);
        // b[guard, guard + bytes) = a[guard, guard + bytes); the guards of b keep their bytes.
        ex.copy(b + guard, a + guard, bytes);
        std::vector<uint8_t> back(total);
        ex.download(back.data(), b, total);
        for (size_t i = 0; i < total; ++i) REQUIRE(back[i] == (i >= guard && i < guard + bytes ? ha[i] : hb[i]));
        // a[guard, guard + bytes) = 0; the rest of a unchanged.
        ex.fill_zero(a + guard, bytes);
        ex.download(back.data(), a, total);
        for (size_t i = 0; i < total; ++i) REQUIRE(back[i] == (i >= guard && i < guard + bytes ? 0 : ha[i]));
    }
    // A state slot copied to another, then the first cleared (what the engine does with recurrent state).
    const size_t slot = 3 * 1000 * 4;
    auto* pool = static_cast<float*>(ex.alloc(3 * slot, "state pool"));
    std::vector<float> s1 = rnd(3 * 1000, 8);
    ex.upload(pool + slot / 4, s1.data(), slot);
    ex.copy(pool + 2 * slot / 4, pool + slot / 4, slot);
    ex.fill_zero(pool + slot / 4, slot);
    std::vector<float> got(3 * 3000);
    ex.download(got.data(), pool, 3 * slot);
    CHECK(bool(std::vector<float>(got.begin() + 6000, got.end()) == s1));
    CHECK(std::all_of(got.begin(), got.begin() + 6000, [](float x) { return x == 0.f; }));
}
