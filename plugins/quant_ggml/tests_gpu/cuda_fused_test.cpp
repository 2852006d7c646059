// quant_ggml on a CUDA device: Weight::matmul_fused (the decode GEMV with the RMSNorm prologue and / or the SwiGLU
// epilogue, gemv_tiled.cuh) against a double-precision CPU reference of the separate ops (rms_norm, W x, silu(g) * u)
// on fresh random weights, activations and norm weights; its refusals (nothing written); and a captured graph
// replayed with new activations. Bound: relative norm ||y - ref|| / ||ref|| <= 1e-3, as the plain GEMV test (the
// activations keep ~16 bits in both GEMV forms; SwiGLU multiplies two such results, at most doubling the error).
// "dp4a" runs every one-token dp4a form (Q4_K / Q6_K, and Q8_0 with q8_dp4a) with both weight buffers prefetched
// (and 4 KiB per CTA prefetched into L2);
// the forced plan of one column split takes the dp4a norm path that applies 1 / rms to the result.
#include <catch2/catch.hpp>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "cuda_weight.h"
#include "exec/cuda/cuda_executor.h"
#include "gpu_test_util.h"
#include "request_util.h"

using namespace imp::ggml;
using namespace imp::ggml::test;

namespace {

const char* const kTiled[] = {"Q4_0", "Q4_1", "Q8_0", "Q4_K", "Q5_K", "Q6_K"};

// The separate ops in double: xn = x / sqrt(mean(x^2) + eps) * nw (when nw), z = W xn, then silu(z[:f]) * z[f:]
// (when swiglu). Returns [n_tokens, out_cols].
std::vector<double> fused_reference(const std::vector<float>& w, int64_t rows, int64_t cols,
                                    const std::vector<float>& x, int64_t n_tokens, const std::vector<float>* nw,
                                    float eps, bool swiglu) {
    std::vector<float> xn(x);
    if (nw)
        for (int64_t t = 0; t < n_tokens; ++t) {
            double ss = 0;
            for (int64_t c = 0; c < cols; ++c) ss += double(x[size_t(t * cols + c)]) * x[size_t(t * cols + c)];
            const double rs = 1.0 / std::sqrt(ss / double(cols) + double(eps));
            for (int64_t c = 0; c < cols; ++c)
                xn[size_t(t * cols + c)] = float(double(x[size_t(t * cols + c)]) * rs * (*nw)[size_t(c)]);
        }
    const auto z = reference(w, rows, cols, xn, cols, n_tokens);
    if (!swiglu) return z;
    const int64_t f = rows / 2;
    std::vector<double> y(size_t(n_tokens * f));
    for (int64_t t = 0; t < n_tokens; ++t)
        for (int64_t r = 0; r < f; ++r) {
            const double g = z[size_t(t * rows + r)], u = z[size_t(t * rows + f + r)];
            y[size_t(t * f + r)] = g / (1.0 + std::exp(-g)) * u;
        }
    return y;
}

std::vector<float> norm_weights(int64_t n, std::mt19937& rng) {
    std::uniform_real_distribution<float> d(0.5f, 1.5f);
    std::vector<float> v(static_cast<size_t>(n));
    for (auto& x : v) x = d(rng);
    return v;
}

}  // namespace

TEST_CASE("quant_ggml cuda: fused norm / SwiGLU GEMV equals the separate ops", "[quant_ggml_gpu][fused]") {
    auto ex = make_gpu();
    GgmlFormat f;
    std::mt19937 rng(707);
    const float eps = 1e-5f;
    for (const char* type : kTiled) {
        const TypeInfo& ti = *find_type(type);
        // 96 rows: a gate|up of f = 48 (3 row groups each, an odd count per half); 2 x 1024 + 64 rows wide enough for
        // several CTAs; cols of one scale block set and of a real model.
        struct Shape {
            int64_t rows, cols;
        };
        for (const Shape s : {Shape{96, ti.block == 32 ? 7 * 32 : 3 * 256}, Shape{2112, 4096}}) {
            const HostTensor h = random_tensor(type, s.rows, s.cols, rng);
            const auto w = f.load(request_for(h.src()), *ex);
            cuda::set_gemv_fusion(*w, true, true);
            const auto wdq = dequantized(h);
            const auto nw = norm_weights(s.cols, rng);
            float* nwd = device_copy(*ex, nw);
            for (const int64_t n : {int64_t(1), int64_t(3), int64_t(8)})
                for (const int mode : {0, 1, 2})  // norm, SwiGLU, both
                    for (const int splits : {0, 1})  // automatic plan; one column split (kw 2)
                    for (const bool dp4a : {true, false}) {
                        if (!dp4a && n > 1) continue;  // the dp4a switch only changes one-token K types
                        cuda::set_gemv_dp4a(*w, dp4a);
                        cuda::set_gemv_variants(*w, dp4a, dp4a, false, dp4a ? 4096 : 0);
                        cuda::set_gemv_plan(*w, splits, splits ? 2 : 0);
                        const bool use_norm = mode != 1, swiglu = mode != 0;
                        const int64_t out = swiglu ? s.rows / 2 : s.rows, ys = out + 5;
                        auto x = random_activations(size_t(n * s.cols), rng);
                        for (auto& v : x) v *= 3.f;  // the norm must undo a scale
                        const auto ref = fused_reference(wdq, s.rows, s.cols, x, n, use_norm ? &nw : nullptr, eps,
                                                         swiglu);
                        float* xd = device_copy(*ex, x);
                        auto* y = static_cast<float*>(ex->alloc(size_t((n + 1) * ys) * 4, "y"));
                        poison(*ex, y, size_t((n + 1) * ys) * 4);
                        imp::FusedMatmul m;
                        m.x = xd, m.x_stride = s.cols, m.y = y, m.y_stride = ys, m.n_tokens = n;
                        m.norm = use_norm ? nwd : nullptr, m.norm_eps = eps, m.swiglu = swiglu;
                        INFO(type << " " << s.rows << "x" << s.cols << ", " << n << " tokens, mode " << mode
                                  << ", splits " << splits << (dp4a ? ", dp4a" : ", mma"));
                        REQUIRE(w->matmul_fused(*ex, m));
                        ex->synchronize();
                        std::vector<float> got(size_t((n + 1) * ys));
                        ex->download(got.data(), y, got.size() * 4);
                        const Check c = check_output(got, ys, n + 1, out, ref, n);
                        CHECK(c.unwritten == 0);
                        CHECK(c.overwritten == 0);
                        CHECK(c.rel <= 1e-3);
                    }
            cuda::set_gemv_dp4a(*w, true);
            cuda::set_gemv_variants(*w, false, false, false);
            cuda::set_gemv_plan(*w, 0, 0);
        }
    }
}

TEST_CASE("quant_ggml cuda: matmul_fused refuses what it cannot fuse and writes nothing", "[quant_ggml_gpu][fused]") {
    auto ex = make_gpu();
    GgmlFormat f;
    std::mt19937 rng(708);
    const int64_t cols = 512;
    const auto nw = norm_weights(cols, rng);
    float* nwd = device_copy(*ex, nw);
    const auto x = random_activations(size_t(16 * cols), rng);
    float* xd = device_copy(*ex, x);
    auto* y = static_cast<float*>(ex->alloc(size_t(16 * 96) * 4, "y"));
    struct Case {
        const char* type;
        int64_t rows, n_tokens;
        bool norm_on, swiglu_on, norm, swiglu, accumulate;
        const char* why;
    };
    for (const Case c : {Case{"Q4_K", 96, 1, false, false, true, false, false, "fuse_norm off"},
                         Case{"Q4_K", 96, 1, true, false, true, true, false, "fuse_swiglu off"},
                         Case{"BF16", 96, 1, true, true, true, false, false, "plain type"},
                         Case{"Q8_0", 80, 1, true, true, false, true, false, "rows not a multiple of 32"},
                         Case{"Q8_0", 96, 1, true, true, false, true, true, "SwiGLU with accumulate"},
                         Case{"Q8_0", 96, 16, true, true, true, false, false, "16 tokens (GEMM path)"}}) {
        INFO(c.why);
        const HostTensor h = random_tensor(c.type, c.rows, cols, rng);
        const auto w = f.load(request_for(h.src()), *ex);
        cuda::set_gemv_fusion(*w, c.norm_on, c.swiglu_on);
        poison(*ex, y, size_t(16 * 96) * 4);
        imp::FusedMatmul m;
        m.x = xd, m.x_stride = cols, m.y = y, m.y_stride = 96, m.n_tokens = c.n_tokens, m.accumulate = c.accumulate;
        m.norm = c.norm ? nwd : nullptr, m.norm_eps = 1e-6f, m.swiglu = c.swiglu;
        CHECK_FALSE(w->matmul_fused(*ex, m));
        ex->synchronize();
        std::vector<float> got(size_t(16 * 96));
        ex->download(got.data(), y, got.size() * 4);
        int64_t written = 0;
        for (float v : got) written += !is_poison(v);
        CHECK(written == 0);
    }
}

TEST_CASE("quant_ggml cuda: fused GEMV replays from a captured CUDA graph with new activations",
          "[quant_ggml_gpu][fused][graph]") {
    auto ex = make_gpu();
    GgmlFormat f;
    std::mt19937 rng(709);
    const int64_t rows = 2 * 1024, cols = 2048;
    for (const char* type : {"Q4_K", "Q8_0"}) {
        const HostTensor h = random_tensor(type, rows, cols, rng);
        const auto w = f.load(request_for(h.src()), *ex);
        cuda::set_gemv_fusion(*w, true, true);
        const auto wdq = dequantized(h);
        const auto nw = norm_weights(cols, rng);
        float* nwd = device_copy(*ex, nw);
        float* xd = static_cast<float*>(ex->alloc(size_t(cols) * 4, "x"));
        auto* y = static_cast<float*>(ex->alloc(size_t(rows / 2) * 4, "y"));
        imp::FusedMatmul m;
        m.x = xd, m.x_stride = cols, m.y = y, m.y_stride = rows / 2, m.n_tokens = 1;
        m.norm = nwd, m.norm_eps = 1e-5f, m.swiglu = true;
        cudaGraph_t graph = nullptr;
        cudaGraphExec_t exec = nullptr;
        QG_TEST_CUDA(cudaStreamBeginCapture(stream_of(*ex), cudaStreamCaptureModeThreadLocal));
        const bool fused = w->matmul_fused(*ex, m);
        QG_TEST_CUDA(cudaStreamEndCapture(stream_of(*ex), &graph));
        REQUIRE(fused);
        QG_TEST_CUDA(cudaGraphInstantiate(&exec, graph, 0));
        const auto before = imp::cuda_alloc_stats();
        for (int rep = 0; rep < 3; ++rep) {
            const auto x = random_activations(size_t(cols), rng);  // new values each replay
            ex->upload(xd, x.data(), x.size() * 4);
            poison(*ex, y, size_t(rows / 2) * 4);
            QG_TEST_CUDA(cudaGraphLaunch(exec, stream_of(*ex)));
            ex->synchronize();
            std::vector<float> got(size_t(rows / 2));
            ex->download(got.data(), y, got.size() * 4);
            const auto ref = fused_reference(wdq, rows, cols, x, 1, &nw, 1e-5f, true);
            INFO(type << ", replay " << rep);
            const Check c = check_output(got, rows / 2, 1, rows / 2, ref, 1);
            CHECK(c.unwritten == 0);
            CHECK(c.rel <= 1e-3);
        }
        const auto after = imp::cuda_alloc_stats();
        CHECK(after.mallocs == before.mallocs);
        cudaGraphExecDestroy(exec);
        cudaGraphDestroy(graph);
    }
}
