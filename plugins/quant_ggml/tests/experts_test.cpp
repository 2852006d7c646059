// quant_ggml expert weights on the CPU (src/experts_cpu.h): grouped_matmul against a double-precision dense
// reference of each dequantized expert, for every type, top_k 1/2/8, 1/3/17 tokens, unweighted (one output row
// per (token, slot)) and routing-weighted sums, x per token or per slot, y = and y +=, an out-of-range id; the same
// bytes loaded from one contiguous 3-D buffer and from per-expert pointers, on 1 and 3 threads, give identical
// results; x_swiglu ([gate | up] rows) equals the plain matmul on silu(gate) * up. Bound: |y - ref| <= 1e-5 (|y0| +
// sum |weight| sum_c |x_c w_c|) per output, as matmul_test.cpp.
#include <catch2/catch.hpp>

#include "request_util.h"

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "common/max_err.h"
#include "exec/cpu/cpu_executor.h"
#include "experts_check.h"
#include "experts_cpu.h"
#include "experts_reference.h"
#include "ggml_types.h"
#include "imp/error.h"
#include "kernels.h"
#include "test_executor.h"

using namespace imp::ggml;
using namespace imp::ggml::test;

namespace {

constexpr float kPad = 1e30f;  // stride padding of y: must stay untouched

struct Case {
    int64_t n_tokens, top_k;
    bool weighted, x_per_slot, accumulate;
};

// Runs one grouped matmul and returns y ([n_out, ys]); y starts as `init`.
std::vector<float> run(imp::Executor& ex, const imp::ExpertWeights& w, const Case& c, const std::vector<float>& x,
                       int64_t xs, const Routing& rt, const std::vector<float>& init, int64_t ys) {
    std::vector<float> y = init;
    imp::ExpertMatmul m;
    m.x = x.data();
    m.x_stride = xs;
    m.x_per_slot = c.x_per_slot;
    m.ids = rt.ids.data();
    m.weights = c.weighted ? rt.weights.data() : nullptr;
    m.n_tokens = c.n_tokens;
    m.top_k = c.top_k;
    m.y = y.data();
    m.y_stride = ys;
    m.accumulate = c.accumulate;
    w.grouped_matmul(ex, m);
    return y;
}

// Checks y against the reference; returns the number of bad outputs.
int64_t check(const Expected& e, const std::vector<float>& y, int64_t ys, const std::vector<float>& init,
              bool accumulate, double& worst) {
    int64_t bad = 0;
    for (int64_t o = 0; o < e.n_out; ++o) {
        for (int64_t r = 0; r < ys; ++r) {
            const float got = y[size_t(o * ys + r)];
            if (r >= e.rows) {
                bad += got != kPad;
                continue;
            }
            if (e.exact[size_t(o)]) {
                bad += got != (accumulate ? init[size_t(o * ys + r)] : 0.f);
                continue;
            }
            const double ref = e.value[size_t(o * e.rows + r)], mag = e.mag[size_t(o * e.rows + r)];
            const double rel = std::fabs(double(got) - ref) / (mag > 0 ? mag : 1e-30);
            worst = imp::test::worst_of(worst, rel);
            bad += !(rel <= 1e-5);
        }
    }
    return bad;
}

}  // namespace

TEST_CASE("quant_ggml experts: grouped_matmul equals the dense reference per expert, every type",
          "[quant_ggml][experts]") {
    INFO("kernels " << test_kernels().name);
    std::mt19937 rng(std::random_device{}());
    const uint32_t seed = rng();
    rng.seed(seed);
    INFO("seed " << seed);
    TestExecutor ex1(1);
    imp::CpuExecutor ex3(3);
    const int64_t n_expert = 9, rows = 37;
    for (int ti = 0; ti < kTypeCount; ++ti) {
        const TypeInfo& t = type_info(Type(ti));
        const int64_t cols = t.block == 1 ? 203 : (t.block == 32 ? 7 * 32 : 2 * 256);
        const RandomExperts w = random_experts(t.name, n_expert, rows, cols, rng);
        const auto contiguous = expert_pointers(w.raw.data(), n_expert, rows, w.row_bytes);
        const auto a1 = make_cpu_experts("blk.0.ffn_up_exps.weight", t.type, n_expert, rows, cols, contiguous, ex1, test_kernels());
        const auto b1 = make_cpu_experts("blk.0.ffn_up_exps.weight", t.type, n_expert, rows, cols, w.per_expert(), ex1, test_kernels());
        const auto a3 = make_cpu_experts("blk.0.ffn_up_exps.weight", t.type, n_expert, rows, cols, contiguous, ex3, test_kernels());
        const auto b3 = make_cpu_experts("blk.0.ffn_up_exps.weight", t.type, n_expert, rows, cols, w.per_expert(), ex3, test_kernels());
        REQUIRE(a1->n_expert() == n_expert);
        REQUIRE(a1->rows() == rows);
        REQUIRE(a1->cols() == cols);
        CHECK(a1->type() == t.name);
        CHECK(a1->bytes() == w.raw.size());
        CHECK(a1->bytes() == cpu_experts_bytes("e", t.type, n_expert, rows, cols));
        CHECK(a1->workspace_bytes(17, 8) == 0);
        for (const int64_t n_tokens : {1, 3, 17})
            for (const int64_t top_k : {1, 2, 8})
                for (const bool weighted : {false, true})
                    for (const bool x_per_slot : {false, true})
                        for (const bool accumulate : {false, true}) {
                            const Case c{n_tokens, top_k, weighted, x_per_slot, accumulate};
                            INFO("type " << t.name << ", tokens " << n_tokens << ", top_k " << top_k
                                         << (weighted ? ", weighted" : "") << (x_per_slot ? ", x per slot" : "")
                                         << (accumulate ? ", accumulate" : ""));
                            const int64_t n_pairs = n_tokens * top_k, n_out = weighted ? n_tokens : n_pairs;
                            const int64_t xs = cols + 5, ys = rows + 3;
                            const auto x = random_floats(size_t((x_per_slot ? n_pairs : n_tokens) * xs), rng);
                            const Routing rt = random_routing(n_tokens, top_k, n_expert, true, rng);
                            // y: NaN (or random y0 when accumulating) in the used region, kPad in the stride padding.
                            std::vector<float> init(size_t(n_out * ys), kPad);
                            const auto y0 = random_floats(size_t(n_out * rows), rng);
                            for (int64_t o = 0; o < n_out; ++o)
                                for (int64_t r = 0; r < rows; ++r)
                                    init[size_t(o * ys + r)] = accumulate ? y0[size_t(o * rows + r)] : NAN;
                            const Expected e =
                                expected(w, x, xs, x_per_slot, rt, weighted, n_tokens, top_k, accumulate ? &init : nullptr, ys);
                            const auto y = run(ex1, *a1, c, x, xs, rt, init, ys);
                            double worst = 0;
                            const int64_t bad = check(e, y, ys, init, accumulate, worst);
                            INFO("worst relative error " << worst);
                            CHECK(bad == 0);
                            // Per-expert pointers and 3 threads: bit for bit the same.
                            for (const auto* o : {b1.get(), a3.get(), b3.get()}) {
                                imp::Executor& ex = (o == b1.get()) ? static_cast<imp::Executor&>(ex1) : ex3;
                                const auto y2 = run(ex, *o, c, x, xs, rt, init, ys);
                                CHECK(std::memcmp(y.data(), y2.data(), y.size() * 4) == 0);
                            }
                        }
    }
}

TEST_CASE("quant_ggml experts: many tokens on several threads, Q4_K, BF16 and Q8_0", "[quant_ggml][experts]") {
    std::mt19937 rng(23);
    imp::CpuExecutor ex(4);
    for (const char* type : {"Q4_K", "BF16", "Q8_0"}) {
        const Type t = find_type(type)->type;
        const int64_t n_expert = 16, rows = 130, cols = 512;
        const RandomExperts w = random_experts(type, n_expert, rows, cols, rng);
        const auto e = make_cpu_experts("blk.3.ffn_down_exps.weight", t, n_expert, rows, cols,
                                        expert_pointers(w.raw.data(), n_expert, rows, w.row_bytes), ex, test_kernels());
        for (const bool weighted : {false, true}) {
            INFO(type << (weighted ? ", weighted" : ""));
            const Case c{33, 4, weighted, true, false};
            const auto x = random_floats(size_t(33 * 4 * cols), rng);
            const Routing rt = random_routing(33, 4, n_expert, false, rng);
            const int64_t n_out = weighted ? 33 : 33 * 4;
            const std::vector<float> init(size_t(n_out * rows), NAN);
            const Expected ref = expected(w, x, cols, true, rt, weighted, 33, 4, nullptr, rows);
            const auto y = run(ex, *e, c, x, cols, rt, init, rows);
            double worst = 0;
            CHECK(check(ref, y, rows, init, false, worst) == 0);
            INFO("worst relative error " << worst);
        }
    }
}

TEST_CASE("quant_ggml experts: x_swiglu reads [gate | up] rows as silu(gate) * up", "[quant_ggml][experts]") {
    std::mt19937 rng(31);
    TestExecutor ex(2);
    for (const std::string type : {"Q4_K", "Q8_0", "F32"}) {
        const int64_t cols = 256, rows = 20, xs = 2 * cols + 3, n_tokens = 3, top_k = 2;
        const RandomExperts w = random_experts(type, 4, rows, cols, rng);
        const auto e = make_cpu_experts("e", find_type(type)->type, 4, rows, cols, w.per_expert(), ex, test_kernels());
        CHECK_FALSE(e->swiglu_input());  // the block applies SwiGLU itself on the CPU
        const auto x = random_floats(size_t(n_tokens * top_k * xs), rng);
        std::vector<float> act(size_t(n_tokens * top_k * cols));
        for (int64_t p = 0; p < n_tokens * top_k; ++p)
            for (int64_t c = 0; c < cols; ++c) {
                const float g = x[size_t(p * xs + c)], u = x[size_t(p * xs + cols + c)];
                act[size_t(p * cols + c)] = g / (1.f + std::exp(-g)) * u;
            }
        const Routing rt = random_routing(n_tokens, top_k, 4, true, rng);
        for (const bool weighted : {false, true}) {
            INFO(type << (weighted ? ", weighted" : ""));
            const Case c{n_tokens, top_k, weighted, true, false};
            const int64_t n_out = weighted ? n_tokens : n_tokens * top_k;
            const std::vector<float> init(size_t(n_out * rows), kPad);
            imp::ExpertMatmul m;
            std::vector<float> y = init;
            m.x = x.data();
            m.x_stride = xs;
            m.x_per_slot = true;
            m.x_swiglu = true;
            m.ids = rt.ids.data();
            m.weights = weighted ? rt.weights.data() : nullptr;
            m.n_tokens = n_tokens;
            m.top_k = top_k;
            m.y = y.data();
            m.y_stride = rows;
            e->grouped_matmul(ex, m);
            CHECK(y == run(ex, *e, c, act, cols, rt, init, rows));  // the same as the plain matmul on silu(g) * u
            double worst = 0;
            CHECK(check(expected(w, act, cols, true, rt, weighted, n_tokens, top_k, nullptr, rows), y, rows, init,
                        false, worst) == 0);
            m.x_stride = 2 * cols - 1;
            CHECK_THROWS_WITH(e->grouped_matmul(ex, m), Catch::Contains("below 2 x cols 512"));
        }
    }
}

TEST_CASE("quant_ggml experts: a token whose ids are all out of range gets zero (or keeps y)",
          "[quant_ggml][experts]") {
    std::mt19937 rng(29);
    TestExecutor ex(2);
    const RandomExperts w = random_experts("Q6_K", 4, 20, 256, rng);
    const auto e = make_cpu_experts("e", Type::Q6_K, 4, 20, 256, w.per_expert(), ex, test_kernels());
    const auto x = random_floats(2 * 256, rng);
    Routing rt = random_routing(2, 2, 4, false, rng);
    rt.ids[2] = 4;  // token 1: both slots out of range
    rt.ids[3] = -7;
    for (const bool acc : {false, true}) {
        const Case c{2, 2, true, false, acc};
        const auto init = random_floats(2 * 20, rng);
        const auto y = run(ex, *e, c, x, 256, rt, init, 20);
        for (int64_t r = 0; r < 20; ++r) CHECK(y[size_t(20 + r)] == (acc ? init[size_t(20 + r)] : 0.f));
        const Expected ref = expected(w, x, 256, false, rt, true, 2, 2, acc ? &init : nullptr, 20);
        for (int64_t r = 0; r < 20; ++r)
            CHECK(std::fabs(y[size_t(r)] - ref.value[size_t(r)]) <= 1e-5 * ref.mag[size_t(r)]);
    }
}

TEST_CASE("quant_ggml experts: load and call errors name the tensor", "[quant_ggml][experts]") {
    std::mt19937 rng(31);
    TestExecutor ex(1);
    const RandomExperts w = random_experts("Q4_0", 3, 8, 64, rng);
    const std::string name = "blk.7.ffn_gate_exps.weight";
    auto ptrs = w.per_expert();
    CHECK_THROWS_WITH(make_cpu_experts(name, Type::Q4_0, 4, 8, 64, ptrs, ex, test_kernels()),
                      Catch::Contains(name) && Catch::Contains("3 expert data pointers for 4"));
    CHECK_THROWS_WITH(make_cpu_experts(name, Type::Q4_0, 3, 8, 48, ptrs, ex, test_kernels()),
                      Catch::Contains(name) && Catch::Contains("Q4_0"));
    CHECK_THROWS_WITH(make_cpu_experts(name, Type::Q4_0, 0, 8, 64, {}, ex, test_kernels()), Catch::Contains(name));
    auto holes = ptrs;
    holes[1] = nullptr;
    CHECK_THROWS_WITH(make_cpu_experts(name, Type::Q4_0, 3, 8, 64, holes, ex, test_kernels()),
                      Catch::Contains(name) && Catch::Contains("expert 1"));
    FakeGpuExecutor gpu;
    CHECK_THROWS_WITH(make_cpu_experts(name, Type::Q4_0, 3, 8, 64, ptrs, gpu, test_kernels()), Catch::Contains("cuda:0"));
    const auto e = make_cpu_experts(name, Type::Q4_0, 3, 8, 64, ptrs, ex, test_kernels());
    const auto x = random_floats(4 * 64, rng);
    std::vector<float> y(4 * 8 * 2);
    const int32_t ids[4] = {0, 1, 2, 0};
    imp::ExpertMatmul m;
    m.x = x.data();
    m.x_stride = 64;
    m.ids = ids;
    m.n_tokens = 2;
    m.top_k = 2;
    m.y = y.data();
    m.y_stride = 8;
    CHECK_NOTHROW(e->grouped_matmul(ex, m));
    CHECK_THROWS_WITH(e->grouped_matmul(gpu, m), Catch::Contains(name) && Catch::Contains("cuda:0"));
    auto bad = m;
    bad.y_stride = 7;
    CHECK_THROWS_WITH(e->grouped_matmul(ex, bad), Catch::Contains(name) && Catch::Contains("strides"));
    bad = m;
    bad.x_per_slot = true;
    bad.x_stride = 32;
    CHECK_THROWS_WITH(e->grouped_matmul(ex, bad), Catch::Contains("strides"));
    bad = m;
    bad.top_k = 0;
    CHECK_THROWS_WITH(e->grouped_matmul(ex, bad), Catch::Contains("top_k 0"));
    bad = m;
    bad.ids = nullptr;
    CHECK_THROWS_AS(e->grouped_matmul(ex, bad), imp::Error);
    bad = m;
    bad.n_tokens = 0;
    bad.y = nullptr;
    CHECK_NOTHROW(e->grouped_matmul(ex, bad));  // nothing to do
    // One token, weighted: a single y row, so y_stride is not used.
    bad = m;
    bad.n_tokens = 1;
    bad.weights = x.data();
    bad.y_stride = 0;
    CHECK_NOTHROW(e->grouped_matmul(ex, bad));
}
