// GgmlFormat weights on the CPU: matmul (y = W x and y += W x) against a double-precision dot of the dequantized
// rows, get_rows against dequantize, the dot kernels of every build, and the load-time checks and their messages.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "common/max_err.h"
#include "exec/cpu/cpu_executor.h"
#include "ggml_format.h"
#include "ggml_types.h"
#include "imp/error.h"
#include "kernels.h"
#include "random_weights.h"
#include "request_util.h"
#include "test_executor.h"

using namespace imp::ggml;
using imp::ggml::test::TestExecutor;

namespace {

struct Tensor {
    std::vector<uint8_t> raw;
    imp::TensorInfo info;
    imp::WeightSource src() const {
        imp::WeightSource s;
        s.main = &info;
        return s;
    }
};

Tensor random_tensor(const std::string& type, std::vector<int64_t> shape, std::mt19937& rng) {
    const TypeInfo& t = *find_type(type);
    int64_t n = 1;
    for (auto d : shape) n *= d;
    Tensor tt;
    tt.raw = test::random_blocks(t, n / t.block, rng);
    tt.info.name = "blk.0.ffn_up.weight";
    tt.info.type = type;
    tt.info.shape = std::move(shape);
    tt.info.data = tt.raw.data();
    tt.info.nbytes = tt.raw.size();
    return tt;
}

std::vector<float> random_activations(int64_t n, std::mt19937& rng) {
    std::normal_distribution<float> nd(0.f, 1.f);
    std::vector<float> v(static_cast<size_t>(n));
    for (auto& x : v) {
        x = nd(rng);
        if (x == 0.f) x = 0.5f;  // non-zero inputs
    }
    return v;
}

// Checks y (row stride ys) against a double dot of W's dequantized rows with x (row stride xs), plus y0 (same
// layout as y) when given (an accumulating matmul). The bound is relative to |y0| + sum |x_c w_c| (what fp32
// accumulation error scales with).
void check_matmul(const std::vector<float>& wdq, int64_t rows, int64_t cols, const std::vector<float>& x, int64_t xs,
                  const std::vector<float>& y, int64_t ys, int64_t n_tokens, const std::vector<float>* y0 = nullptr) {
    int64_t bad = 0;
    double worst = 0;
    for (int64_t t = 0; t < n_tokens; ++t)
        for (int64_t r = 0; r < rows; ++r) {
            const double init = y0 ? double((*y0)[size_t(t * ys + r)]) : 0.0;
            double ref = init, mag = std::fabs(init);
            for (int64_t c = 0; c < cols; ++c) {
                const double p = double(wdq[size_t(r * cols + c)]) * double(x[size_t(t * xs + c)]);
                ref += p;
                mag += std::fabs(p);
            }
            const double got = y[size_t(t * ys + r)];
            const double rel = std::fabs(got - ref) / (mag > 0 ? mag : 1e-30);
            worst = imp::test::worst_of(worst, rel);
            if (!(rel <= 1e-5)) ++bad;
        }
    INFO("worst relative error " << worst);
    CHECK(bad == 0);
}

}  // namespace

TEST_CASE("quant_ggml: matmul equals a double dot of the dequantized rows, for every type", "[quant_ggml][matmul]") {
    INFO("kernels " << test::test_kernels().name);
    std::mt19937 rng(7);
    GgmlFormat f;
    // rows not a multiple of the thread count nor of the 4-row tile; cols a few blocks (odd counts for 32-blocks).
    // Executors: the test one with 1 and 3 threads, and the core's CpuExecutor with 3.
    TestExecutor ex1(1), ex3(3);
    imp::CpuExecutor cpu3(3);
    for (imp::Executor* exp :
         {static_cast<imp::Executor*>(&ex1), static_cast<imp::Executor*>(&ex3), static_cast<imp::Executor*>(&cpu3)}) {
        imp::Executor& ex = *exp;
        const int threads = exp == &ex1 ? 1 : 3;
        for (int ti = 0; ti < kTypeCount; ++ti) {
            const TypeInfo& t = type_info(Type(ti));
            const int64_t rows = 37, cols = t.block == 1 ? 203 : (t.block == 32 ? 7 * 32 : 3 * 256);
            const Tensor w = random_tensor(t.name, {rows, cols}, rng);
            REQUIRE(f.plan(test::request_for(w.src()), ex).accepted);
            CHECK(f.plan(test::request_for(w.src()), ex).device_bytes == w.raw.size());
            const auto weight = f.load(test::request_for(w.src()), ex);
            REQUIRE(weight->rows() == rows);
            REQUIRE(weight->cols() == cols);
            CHECK(weight->type() == t.name);
            CHECK(weight->bytes() == w.raw.size());
            std::vector<float> wdq(static_cast<size_t>(rows * cols));
            f.dequantize(t.name, w.raw.data(), rows * cols, wdq.data());
            for (const bool acc : {false, true})
                for (int64_t n_tokens : {1, 2, 3, 4, 17}) {
                    INFO("type " << t.name << ", threads " << threads << ", n_tokens " << n_tokens
                                 << (acc ? ", accumulate" : ""));
                    const int64_t xs = cols + 5, ys = rows + 3;  // strided rows
                    const auto x = random_activations(n_tokens * xs, rng);
                    std::vector<float> y(size_t(n_tokens * ys), 1e30f);
                    if (acc)  // a random non-zero initial y in the used region
                        for (int64_t t2 = 0; t2 < n_tokens; ++t2) {
                            const auto y0 = random_activations(rows, rng);
                            std::copy(y0.begin(), y0.end(), y.begin() + t2 * ys);
                        }
                    const std::vector<float> init = y;
                    weight->matmul(ex, x.data(), xs, y.data(), ys, n_tokens, acc);
                    check_matmul(wdq, rows, cols, x, xs, y, ys, n_tokens, acc ? &init : nullptr);
                    for (int64_t t2 = 0; t2 < n_tokens; ++t2)  // the stride padding is untouched
                        for (int64_t r = rows; r < ys; ++r) CHECK(y[size_t(t2 * ys + r)] == 1e30f);
                }
        }
    }
}

TEST_CASE("quant_ggml: matmul at SmolLM2 shapes with several threads", "[quant_ggml][matmul]") {
    std::mt19937 rng(11);
    GgmlFormat f;
    imp::CpuExecutor ex(4);
    struct Shape {
        const char* type;
        int64_t rows, cols;
    };
    for (const Shape s :
         {Shape{"Q4_1", 1536, 576}, Shape{"Q4_1", 576, 1536}, Shape{"Q8_0", 1001, 576}, Shape{"Q6_K", 130, 1536}}) {
        const Tensor w = random_tensor(s.type, {s.rows, s.cols}, rng);
        const auto weight = f.load(test::request_for(w.src()), ex);
        std::vector<float> wdq(static_cast<size_t>(s.rows * s.cols));
        f.dequantize(s.type, w.raw.data(), s.rows * s.cols, wdq.data());
        for (int64_t n_tokens : {1, 5}) {
            INFO("type " << s.type << " " << s.rows << "x" << s.cols << ", n_tokens " << n_tokens);
            const auto x = random_activations(n_tokens * s.cols, rng);
            std::vector<float> y(static_cast<size_t>(n_tokens * s.rows));
            weight->matmul(ex, x.data(), s.cols, y.data(), s.rows, n_tokens, false);
            check_matmul(wdq, s.rows, s.cols, x, s.cols, y, s.rows, n_tokens);
        }
    }
}

TEST_CASE("quant_ggml: dot kernels of every build agree with a double dot", "[quant_ggml][matmul]") {
    std::mt19937 rng(3);
    for (const Kernels* k : kernels_available()) {
        for (int64_t n : {1, 7, 8, 15, 16, 17, 33, 576, 1001}) {
            const int64_t ws = n + 3;
            const auto w = random_activations(4 * ws, rng);
            const auto x = random_activations(n, rng);
            for (int nr = 1; nr <= 4; ++nr) {
                INFO("kernels " << k->name << ", n " << n << ", nr " << nr);
                float y[4] = {0, 0, 0, 0};
                k->dot_rows(w.data(), ws, nr, x.data(), n, y);
                for (int r = 0; r < nr; ++r) {
                    double ref = 0, mag = 0;
                    for (int64_t c = 0; c < n; ++c) {
                        ref += double(w[size_t(r * ws + c)]) * x[size_t(c)];
                        mag += std::fabs(double(w[size_t(r * ws + c)]) * x[size_t(c)]);
                    }
                    CHECK(std::fabs(y[r] - ref) <= 1e-5 * mag);
                }
            }
        }
    }
}

TEST_CASE("quant_ggml: get_rows dequantizes the requested rows", "[quant_ggml][get_rows]") {
    std::mt19937 rng(5);
    GgmlFormat f;
    TestExecutor ex(2);
    for (const char* type : {"Q4_1", "Q8_0", "F16", "Q5_K", "F32"}) {
        const TypeInfo& t = *find_type(type);
        const int64_t rows = 50, cols = t.block == 256 ? 512 : 96;
        const Tensor w = random_tensor(type, {rows, cols}, rng);
        const auto weight = f.load(test::request_for(w.src()), ex);
        const std::vector<int32_t> ids = {0, 49, 7, 7, 23};
        std::vector<float> out(ids.size() * size_t(cols));
        weight->get_rows(ex, ids.data(), int64_t(ids.size()), out.data());
        std::vector<float> ref(static_cast<size_t>(cols));
        for (size_t i = 0; i < ids.size(); ++i) {
            f.dequantize(type, w.raw.data() + size_t(ids[i]) * w.raw.size() / rows, cols, ref.data());
            INFO("type " << type << ", id " << ids[i]);
            CHECK(std::memcmp(ref.data(), out.data() + i * size_t(cols), size_t(cols) * 4) == 0);
        }
        const int32_t bad[] = {3, 50};
        CHECK_THROWS_WITH(weight->get_rows(ex, bad, 2, out.data()),
                          Catch::Contains("blk.0.ffn_up.weight") && Catch::Contains("50"));
        const int32_t neg[] = {-1};
        CHECK_THROWS_AS(weight->get_rows(ex, neg, 1, out.data()), imp::Error);
    }
}

TEST_CASE("quant_ggml: a 3-D tensor reads as a stack of matrices, not as a flattened matrix", "[quant_ggml][load]") {
    std::mt19937 rng(9);
    GgmlFormat f;
    TestExecutor ex(1);
    const Tensor w = random_tensor("Q8_0", {6, 2, 64}, rng);
    // As a matrix it keeps its 3-D shape (the engine then rejects it against a [rows, cols] declaration).
    const imp::WeightPlan as_linear = f.plan(test::request_for(w.src()), ex);
    CHECK(as_linear.accepted);
    CHECK(as_linear.shape == std::vector<int64_t>{6, 2, 64});
    CHECK_THROWS_WITH(f.load(test::request_for(w.src()), ex), Catch::Contains("not a [rows, cols] matrix"));
    // As experts: 6 matrices [2, 64]; expert e's rows are rows 2e, 2e + 1 of the dequantized tensor.
    const imp::WeightRequest req = test::request_for(w.src(), imp::WeightRole::Experts);
    const imp::WeightPlan plan = f.plan(req, ex);
    REQUIRE(plan.accepted);
    CHECK(plan.shape == std::vector<int64_t>{6, 2, 64});
    CHECK(plan.device_bytes == w.raw.size());
    const auto experts = f.load_experts(req, ex);
    CHECK(experts->n_expert() == 6);
    CHECK(experts->rows() == 2);
    CHECK(experts->cols() == 64);
    std::vector<float> wdq(6 * 2 * 64);
    f.dequantize(w.src(), 0, 12, wdq.data());
    const std::vector<int32_t> ids = {4, 1};
    const auto x = random_activations(2 * 64, rng);
    std::vector<float> y(2 * 2);
    imp::ExpertMatmul m;
    m.x = x.data();
    m.x_stride = 64;
    m.ids = ids.data();
    m.n_tokens = 2;
    m.y = y.data();
    m.y_stride = 2;
    experts->grouped_matmul(ex, m);
    for (int t = 0; t < 2; ++t) {
        const std::vector<float> we(wdq.begin() + ids[size_t(t)] * 128, wdq.begin() + ids[size_t(t)] * 128 + 128);
        const std::vector<float> xt(x.begin() + t * 64, x.begin() + t * 64 + 64);
        const std::vector<float> yt(y.begin() + t * 2, y.begin() + t * 2 + 2);
        check_matmul(we, 2, 64, xt, 64, yt, 2, 1);
    }
}

TEST_CASE("quant_ggml: dequantize reads rows across fused parts and per-expert tensors", "[quant_ggml][dequant]") {
    std::mt19937 rng(17);
    GgmlFormat f;
    TestExecutor ex(1);
    const Tensor a = random_tensor("Q4_K", {3, 256}, rng), b = random_tensor("Q4_K", {5, 256}, rng);
    std::vector<float> da(3 * 256), db(5 * 256);
    f.dequantize("Q4_K", a.raw.data(), 3 * 256, da.data());
    f.dequantize("Q4_K", b.raw.data(), 5 * 256, db.data());
    imp::WeightSource fused;
    fused.parts = {a.src(), b.src()};
    std::vector<float> got(4 * 256);
    f.dequantize(fused, 2, 4, got.data());  // a's last row, b's first three
    CHECK(std::equal(got.begin(), got.begin() + 256, da.begin() + 2 * 256));
    CHECK(std::equal(got.begin() + 256, got.end(), db.begin()));
    imp::WeightSource experts;
    experts.experts = {a.src(), a.src()};  // two experts of [3, 256]
    f.dequantize(experts, 3, 3, got.data());
    CHECK(std::equal(got.begin(), got.begin() + 3 * 256, da.begin()));
    CHECK_THROWS_WITH(f.dequantize(fused, 5, 4, got.data()), Catch::Contains("outside its 8 rows"));
    // Mixed types do not stack.
    const Tensor c = random_tensor("Q8_0", {2, 256}, rng);
    fused.parts = {a.src(), c.src()};
    CHECK(f.plan(test::request_for(fused), ex).reason == "mixes types Q4_K and Q8_0");
}

TEST_CASE("quant_ggml: plan refusals, load errors and non-CPU executors", "[quant_ggml][load]") {
    std::mt19937 rng(13);
    GgmlFormat f;
    TestExecutor ex(1);
    Tensor w = random_tensor("Q4_1", {8, 64}, rng);

    imp::TensorInfo other = w.info;
    other.type = "F8_E4M3";
    imp::WeightSource s;
    s.main = &other;
    CHECK_FALSE(f.plan(test::request_for(s), ex).accepted);
    CHECK(f.plan(test::request_for(s), ex).reason == "type F8_E4M3 is not a ggml type");
    CHECK_FALSE(f.plan(test::request_for(imp::WeightSource{}), ex).accepted);
    CHECK_THROWS_WITH(f.load(test::request_for(s), ex), Catch::Contains("blk.0.ffn_up.weight") && Catch::Contains("F8_E4M3"));

    imp::TensorInfo short_data = w.info;
    short_data.nbytes -= 20;
    s.main = &short_data;
    CHECK_THROWS_WITH(f.load(test::request_for(s), ex), Catch::Contains("blk.0.ffn_up.weight") && Catch::Contains("expected 320"));
    CHECK_THROWS_AS(f.plan(test::request_for(s), ex).device_bytes, imp::Error);

    imp::TensorInfo odd_cols = w.info;
    odd_cols.shape = {16, 32 + 8};
    s.main = &odd_cols;
    CHECK_THROWS_WITH(f.load(test::request_for(s), ex), Catch::Contains("blk.0.ffn_up.weight") && Catch::Contains("Q4_1"));

    imp::TensorInfo scalar = w.info;
    scalar.shape = {};
    s.main = &scalar;
    CHECK_THROWS_WITH(f.load(test::request_for(s), ex), Catch::Contains("scalar"));

    test::FakeGpuExecutor gpu;
    CHECK_THROWS_WITH(f.load(test::request_for(w.src()), gpu), Catch::Contains("cuda:0 gives no CUDA handles"));
    const auto weight = f.load(test::request_for(w.src()), ex);
    std::vector<float> x(64, 1.f), y(8);
    CHECK_THROWS_WITH(weight->matmul(gpu, x.data(), 64, y.data(), 8, 1, false), Catch::Contains("not supported yet"));
    std::vector<float> x2(128, 1.f), y2(16);
    CHECK_THROWS_WITH(weight->matmul(ex, x2.data(), 32, y2.data(), 8, 2, false), Catch::Contains("strides"));
    // One token: the strides are unused (0 is fine) and y = W x.
    std::vector<float> wdq(8 * 64);
    f.dequantize("Q4_1", w.raw.data(), 8 * 64, wdq.data());
    x = random_activations(64, rng);
    std::fill(y.begin(), y.end(), 1e30f);
    weight->matmul(ex, x.data(), 0, y.data(), 0, 1, false);
    check_matmul(wdq, 8, 64, x, 64, y, 8, 1);
    // No tokens: nothing is written, even when accumulating.
    const std::vector<float> before = y;
    weight->matmul(ex, x.data(), 64, y.data(), 8, 0, true);
    CHECK(y == before);
}
