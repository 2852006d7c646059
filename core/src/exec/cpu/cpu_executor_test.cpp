// CpuExecutor ops against naive double-precision implementations written here, on random non-zero inputs.
#include <atomic>
#include <catch2/catch.hpp>

#include <numeric>
#include <cmath>
#include <cstdint>
#include <random>
#include <stdexcept>
#include <vector>

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

// max |a - b| / max |b| over the vectors (b is the double reference).
double rel_err(const std::vector<float>& a, const std::vector<double>& b) {
    REQUIRE(a.size() == b.size());
    double md = 0, mr = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        md = std::max(md, std::abs(double(a[i]) - b[i]));
        mr = std::max(mr, std::abs(b[i]));
    }
    return mr > 0 ? md / mr : md;
}

}  // namespace

TEST_CASE("cpu parallel_for covers every index exactly once", "[cpu]") {
    for (int threads : {1, 2, 3, 4}) {
        CpuExecutor ex(threads);
        CHECK(ex.threads() == threads);
        for (int64_t n : {0, 1, 2, 7, 64, 1000, 12345}) {
            for (int64_t grain : {1, 3, 16, 5000}) {
                std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
                ex.parallel_for(n, grain, [&](int64_t b, int64_t e) {
                    REQUIRE(b < e);
                    for (int64_t i = b; i < e; ++i) hits[size_t(i)]++;
                });
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
            CHECK(rel_err(y, ref) < 2e-6);
            ex.rms_norm(x.data(), with_w ? w.data() : nullptr, x.data(), rows, n, eps);  // in place
            CHECK(rel_err(x, ref) < 2e-6);
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
        CHECK(rel_err(x, ref) < 2e-6);
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
        CHECK(rel_err(out, ref) < 2e-6);

        auto a = rnd(size_t(rows * n), 5), b = rnd(size_t(rows * n), 6);
        std::vector<double> sum(a.size());
        for (size_t i = 0; i < a.size(); ++i) sum[i] = double(a[i]) + b[i];
        ex.add(a.data(), b.data(), int64_t(a.size()));
        CHECK(rel_err(a, sum) < 1e-7);
    }
}

namespace {

struct AttnCase {
    int n_head, n_kv_head, head_dim;
    int64_t pos0, n_tokens, capacity, q_pad;
    imp::DType dtype;
};

constexpr float kF8Scale = 0.03125f;

float round_kv(float v, imp::DType t) {
    if (t == imp::DType::F16) return imp::fp16_to_f32(imp::f32_to_fp16(v));
    if (t == imp::DType::BF16) return imp::bf16_to_f32(imp::f32_to_bf16(v));
    if (t == imp::DType::F8_E4M3) return imp::fp8_e4m3_to_f32(imp::f32_to_fp8_e4m3(v / kF8Scale)) * kF8Scale;
    return v;
}

std::vector<int32_t> iota_positions(int64_t from, int64_t n) {
    std::vector<int32_t> p(size_t(std::max<int64_t>(n, 0)));
    for (int64_t i = 0; i < n; ++i) p[size_t(i)] = int32_t(from + i);
    return p;
}

// Fills positions [0, pos0) with history, then stores the batch with kv_store and runs attention; compares with
// a naive double softmax over the rounded K/V values.
void check_attention(CpuExecutor& ex, const AttnCase& c) {
    const int64_t kvw = int64_t(c.n_kv_head) * c.head_dim;
    const int64_t qs = int64_t(c.n_head) * c.head_dim + c.q_pad;
    const int64_t total = c.pos0 + c.n_tokens;
    auto K = rnd(size_t(total * kvw), 11 + uint32_t(c.pos0)), V = rnd(size_t(total * kvw), 12 + uint32_t(c.n_tokens));
    auto Q = rnd(size_t(c.n_tokens * qs), 13, -2.f, 2.f);
    const size_t es = imp::dtype_size(c.dtype);
    // Paged: blocks of 4 positions in a shuffled physical order, so a wrong block-table lookup shows.
    imp::KVCacheView kv;
    kv.block_size = 4;
    const int64_t n_blocks = (c.capacity + 3) / 4;
    std::vector<int32_t> table(static_cast<size_t>(n_blocks));
    for (int64_t b = 0; b < n_blocks; ++b) table[size_t(b)] = int32_t((b * 5 + 3) % n_blocks);
    if (std::gcd(n_blocks, int64_t(5)) != 1)
        for (int64_t b = 0; b < n_blocks; ++b) table[size_t(b)] = int32_t(n_blocks - 1 - b);
    kv.block_table = table.data();
    kv.k = ex.alloc(size_t(n_blocks * 4 * kvw) * es, "k");
    kv.v = ex.alloc(size_t(n_blocks * 4 * kvw) * es, "v");
    kv.dtype = c.dtype;
    kv.k_scale = kv.v_scale = kF8Scale;
    kv.capacity = c.capacity;
    kv.n_kv_heads = c.n_kv_head;
    kv.head_dim = c.head_dim;
    // History in two kv_store calls with row strides wider than the data, the batch in one more.
    const int64_t ks = kvw + 5;
    std::vector<float> kpad(size_t(total * ks)), vpad(size_t(total * ks));
    for (int64_t t = 0; t < total; ++t)
        for (int64_t i = 0; i < kvw; ++i) {
            kpad[size_t(t * ks + i)] = K[size_t(t * kvw + i)];
            vpad[size_t(t * ks + i)] = V[size_t(t * kvw + i)];
        }
    const int64_t h1 = c.pos0 / 2;
    const auto p1 = iota_positions(0, h1), p2 = iota_positions(h1, c.pos0 - h1), p3 = iota_positions(c.pos0, c.n_tokens);
    ex.kv_store(kv, kpad.data(), ks, vpad.data(), ks, p1.data(), h1);
    ex.kv_store(kv, kpad.data() + h1 * ks, ks, vpad.data() + h1 * ks, ks, p2.data(), c.pos0 - h1);
    ex.kv_store(kv, kpad.data() + c.pos0 * ks, ks, vpad.data() + c.pos0 * ks, ks, p3.data(), c.n_tokens);

    imp::AttentionParams p;
    p.n_head = c.n_head;
    p.n_kv_head = c.n_kv_head;
    p.head_dim = c.head_dim;
    p.scale = float(1.0 / std::sqrt(double(c.head_dim)));
    p.positions = p3.data();
    p.n_tokens = c.n_tokens;
    std::vector<float> out(size_t(c.n_tokens * c.n_head * c.head_dim));
    ex.attention(Q.data(), qs, kv, out.data(), p);

    std::vector<double> ref(out.size());
    const int grp = c.n_head / c.n_kv_head;
    for (int64_t t = 0; t < c.n_tokens; ++t)
        for (int h = 0; h < c.n_head; ++h) {
            const int g = h / grp;
            const int64_t n_ctx = c.pos0 + t + 1;
            std::vector<double> s(static_cast<size_t>(n_ctx));
            double mx = -1e300;
            for (int64_t j = 0; j < n_ctx; ++j) {
                double d = 0;
                for (int i = 0; i < c.head_dim; ++i)
                    d += double(Q[size_t(t * qs + h * c.head_dim + i)]) *
                         round_kv(K[size_t(j * kvw + g * c.head_dim + i)], c.dtype);
                s[size_t(j)] = d * p.scale;
                mx = std::max(mx, s[size_t(j)]);
            }
            double z = 0;
            for (auto& e : s) z += (e = std::exp(e - mx));
            for (int i = 0; i < c.head_dim; ++i) {
                double acc = 0;
                for (int64_t j = 0; j < n_ctx; ++j)
                    acc += s[size_t(j)] * round_kv(V[size_t(j * kvw + g * c.head_dim + i)], c.dtype);
                ref[size_t((t * c.n_head + h) * c.head_dim + i)] = acc / z;
            }
        }
    INFO("heads " << c.n_head << "/" << c.n_kv_head << " hd " << c.head_dim << " pos0 " << c.pos0 << " n "
                  << c.n_tokens << " dtype " << imp::dtype_name(c.dtype));
    CHECK(rel_err(out, ref) < 1e-5);
}

}  // namespace

TEST_CASE("cpu kv_store + attention match the double reference (GQA, pos0 > 0, decode)", "[cpu]") {
    CpuExecutor ex(4);
    using imp::DType;
    const AttnCase cases[] = {
        {4, 4, 16, 0, 9, 16, 0, DType::F32},     {8, 2, 32, 0, 12, 12, 3, DType::F32},
        {6, 2, 24, 13, 5, 40, 0, DType::F32},    {3, 1, 7, 20, 1, 21, 1, DType::F32},
        {4, 2, 64, 37, 1, 64, 0, DType::F32},    {9, 3, 12, 5, 17, 30, 2, DType::F32},
        {4, 2, 16, 11, 6, 20, 0, DType::BF16},   {4, 1, 16, 3, 4, 8, 0, DType::F16},
        {2, 2, 128, 300, 3, 512, 0, DType::F32},  {4, 2, 32, 9, 7, 19, 1, DType::F8_E4M3},
    };
    for (const auto& c : cases) check_attention(ex, c);
}

TEST_CASE("cpu attention and kv_store reject positions past the capacity", "[cpu]") {
    CpuExecutor ex(1);
    imp::KVCacheView kv;
    kv.k = ex.alloc(4 * 8 * 4, "k");
    kv.v = ex.alloc(4 * 8 * 4, "v");
    kv.capacity = 4;
    kv.n_kv_heads = 1;
    kv.head_dim = 8;
    std::vector<float> k(3 * 8, 1.f);
    const int32_t pos[] = {2, 3, 4};
    CHECK_THROWS_WITH(ex.kv_store(kv, k.data(), 8, k.data(), 8, pos, 3), Catch::Contains("capacity 4"));
    imp::AttentionParams p;
    p.n_head = 2;
    p.n_kv_head = 1;
    p.head_dim = 8;
    p.scale = 1.f;
    const int32_t qpos[] = {3, 4};
    p.positions = qpos;
    p.n_tokens = 2;
    std::vector<float> q(2 * 16), out(2 * 16);
    CHECK_THROWS_WITH(ex.attention(q.data(), 16, kv, out.data(), p), Catch::Contains("capacity 4"));
    p.n_kv_head = 2;
    p.positions = pos;
    CHECK_THROWS_AS(ex.attention(q.data(), 16, kv, out.data(), p), imp::Error);
}
