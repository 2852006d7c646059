// quant_ggml on a CUDA device: Weight::matmul_fused (the decode GEMV with the RMSNorm prologue and / or the SwiGLU
// epilogue, gemv_tiled.cuh) against a double-precision CPU reference of the separate ops (rms_norm, W x, silu(g) * u)
// on fresh random weights, activations and norm weights; its refusals (nothing written); and a captured graph
// replayed with new activations. Bound: relative norm ||y - ref|| / ||ref|| <= 1e-3, as the plain GEMV test (the
// activations keep ~16 bits in both GEMV forms; SwiGLU multiplies two such results, at most doubling the error).
// "dp4a" runs every one-token dp4a form (Q4_K / Q6_K, and Q8_0 with q8_dp4a) with both weight buffers prefetched
// (and 4 KiB per CTA prefetched into L2);
// the forced plan of one column split takes the dp4a norm path that applies 1 / rms to the result.
// The GEMM path (more than 8 tokens, fuse_gemm_input): the norm or the SwiGLU in the bf16 conversion of x, equal to
// the executor's separate op + the plain GEMM bit for bit; its refusals; graph replay.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "cuda_weight.h"
#include "exec/cuda/cuda_executor.h"
#include "gpu_test_util.h"
#include "../cuda/kernels.h"
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

// Floats of y[0, n) no longer holding the poison (after the executor's queued work).
int64_t written(imp::CudaExecutor& ex, const float* y, size_t n) {
    ex.synchronize();
    std::vector<float> got(n);
    ex.download(got.data(), y, n * 4);
    int64_t w = 0;
    for (float v : got) w += !is_poison(v);
    return w;
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

TEST_CASE("quant_ggml cuda: plain types (F32, F16, BF16) take the RMSNorm into the GEMV", "[quant_ggml_gpu][fused]") {
    // The rows normalized in shared memory by each CTA (kMaxPlainNormSmem: at 2048 columns up to 4 tokens, 5-8
    // refused), with and without plain_pdl (staged after the PDL wait, or first); 64 x 2048 is Qwen3.5/3.6's
    // in_proj_ba; 1000 columns: a last 8-column chunk of 4; x stride cols + 4.
    auto ex = make_gpu();
    GgmlFormat f;
    std::mt19937 rng(709);
    const float eps = 1e-6f;
    for (const char* type : {"F32", "F16", "BF16"})
        for (const auto& [rows, cols] : std::vector<std::pair<int64_t, int64_t>>{{64, 2048}, {37, 1000}, {96, 224}}) {
            const HostTensor h = random_tensor(type, rows, cols, rng);
            const auto w = f.load(request_for(h.src()), *ex);
            cuda::set_gemv_fusion(*w, true, false);
            const auto wdq = dequantized(h);
            const auto nw = norm_weights(cols, rng);
            float* nwd = device_copy(*ex, nw);
            for (const bool pdl : {false, true})
                for (const int64_t n : {int64_t(1), int64_t(2), int64_t(3), int64_t(5), int64_t(8)})
                    for (const bool acc : {false, true}) {
                        cuda::set_gemv_variants(*w, false, false, pdl);
                        const int64_t xs = cols + 4, ys = rows + 5;
                        auto x = random_activations(size_t(n * xs), rng);
                        for (auto& v : x) v *= 3.f;
                        std::vector<float> xc(size_t(n * cols));  // the reference's rows, stride cols
                        for (int64_t t = 0; t < n; ++t)
                            for (int64_t c = 0; c < cols; ++c) xc[size_t(t * cols + c)] = x[size_t(t * xs + c)];
                        auto ref = fused_reference(wdq, rows, cols, xc, n, &nw, eps, false);
                        std::vector<float> init(size_t((n + 1) * ys));
                        for (auto& v : init) v = 0.5f;
                        if (acc)
                            for (int64_t t = 0; t < n; ++t)
                                for (int64_t r = 0; r < rows; ++r) ref[size_t(t * rows + r)] += 0.5;
                        float* xd = device_copy(*ex, x);
                        float* y = device_copy(*ex, init);
                        if (!acc) poison(*ex, y, init.size() * 4);
                        imp::FusedMatmul m;
                        m.x = xd, m.x_stride = xs, m.y = y, m.y_stride = ys, m.n_tokens = n, m.accumulate = acc;
                        m.norm = nwd, m.norm_eps = eps;
                        INFO(type << " " << rows << "x" << cols << ", " << n << " tokens" << (acc ? ", accumulate" : "")
                                  << (pdl ? ", plain_pdl" : ""));
                        const int64_t bucket = n <= 1 ? 1 : n <= 2 ? 2 : n <= 4 ? 4 : 8;
                        if (bucket * cols * 4 > cuda::kMaxPlainNormSmem) {
                            CHECK_FALSE(w->matmul_fused(*ex, m));
                            continue;
                        }
                        REQUIRE(w->matmul_fused(*ex, m));
                        ex->synchronize();
                        std::vector<float> got(init.size());
                        ex->download(got.data(), y, got.size() * 4);
                        if (acc) {  // rows past n, columns past rows: still 0.5
                            int64_t touched = 0;
                            for (int64_t t = 0; t <= n; ++t)
                                for (int64_t r = 0; r < ys; ++r)
                                    if ((t >= n || r >= rows) && got[size_t(t * ys + r)] != 0.5f) ++touched;
                            CHECK(touched == 0);
                        }
                        const Check c = check_output(got, ys, n + 1, rows, ref, n);
                        CHECK(c.unwritten == 0);
                        if (!acc) CHECK(c.overwritten == 0);
                        CHECK(c.rel <= 1e-3);
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
                         Case{"BF16", 96, 1, true, true, false, true, false, "plain type with SwiGLU"},
                         Case{"BF16", 96, 1, false, false, true, false, false, "plain type, fuse_norm off"},
                         Case{"Q8_0", 80, 1, true, true, false, true, false, "rows not a multiple of 32"},
                         Case{"Q8_0", 96, 1, true, true, false, true, true, "SwiGLU with accumulate"},
                         Case{"Q8_0", 96, 16, true, true, true, false, false, "16 tokens (GEMM path, fuse_gemm_input off)"}}) {
        INFO(c.why);
        const HostTensor h = random_tensor(c.type, c.rows, cols, rng);
        const auto w = f.load(request_for(h.src()), *ex);
        cuda::set_gemv_fusion(*w, c.norm_on, c.swiglu_on);
        cuda::set_gemm_fusion(*w, false);  // the GEMM path's fusion (fuse_gemm_input) has its own refusal test
        poison(*ex, y, size_t(16 * 96) * 4);
        imp::FusedMatmul m;
        m.x = xd, m.x_stride = cols, m.y = y, m.y_stride = 96, m.n_tokens = c.n_tokens, m.accumulate = c.accumulate;
        m.norm = c.norm ? nwd : nullptr, m.norm_eps = 1e-6f, m.swiglu = c.swiglu;
        CHECK_FALSE(w->matmul_fused(*ex, m));
        CHECK(written(*ex, y, size_t(16 * 96)) == 0);
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

namespace {

// x of n rows through the executor's own op (rms_norm with nw, or swiglu of gate|up rows of 2 cols), then w's plain
// GEMM: what the FFN and attention blocks ran before fuse_gemm_input. y accumulates when acc.
void separate_ops(imp::CudaExecutor& ex, const imp::Weight& w, const float* xd, const float* nwd, float eps, int64_t n,
                  float* tmp, float* y, int64_t ys, bool acc) {
    const int64_t cols = w.cols();
    if (nwd)
        ex.rms_norm(xd, nwd, tmp, n, cols, eps);
    else
        ex.swiglu(xd, 2 * cols, xd + cols, 2 * cols, tmp, n, cols);
    w.matmul(ex, tmp, cols, y, ys, n, acc);
}

std::vector<float> download(imp::CudaExecutor& ex, const float* d, size_t n) {
    std::vector<float> h(n);
    ex.synchronize();
    ex.download(h.data(), d, n * 4);
    return h;
}

}  // namespace

// fuse_gemm_input: the GEMM path (more than 8 tokens) with the RMSNorm (norm mode: x rows of cols) or the SwiGLU (x
// the gate half and up the up half of gate|up rows of 2 cols, the FFN's layout) in the kernel that converts x to
// bf16. The conversion repeats the executor's op bit for bit, so the result equals the separate ops exactly (the
// same cuBLASLt plan on the same bf16 input); and the double reference within the GEMM bound (1e-2, bf16 operands).
// Shapes: 16-byte rows of 192, 512 and 1024 float4 (128, 256 and 512 threads per row, as the executor's rms_norm
// picks them),
// and 1030 columns (scalar path) for the plain types.
TEST_CASE("quant_ggml cuda: GEMM with the norm or the SwiGLU in its bf16 conversion equals the separate ops",
          "[quant_ggml_gpu][fused][gemm]") {
    auto ex = make_gpu();
    GgmlFormat f;
    std::mt19937 rng(710);
    const float eps = 1e-5f;
    struct Shape {
        const char* type;
        int64_t rows, cols;
    };
    for (const Shape s : {Shape{"BF16", 200, 768}, Shape{"BF16", 136, 1030}, Shape{"F16", 72, 1030},
                          Shape{"Q8_0", 256, 4096}, Shape{"Q4_K", 96, 768}, Shape{"Q6_K", 300, 4096},
                          Shape{"Q4_0", 128, 2048}}) {  // 512 float4: 256 threads
        const HostTensor h = random_tensor(s.type, s.rows, s.cols, rng);
        const auto w = f.load(request_for(h.src()), *ex);
        cuda::set_gemm_fusion(*w, true);
        const auto wdq = dequantized(h);
        const auto nw = norm_weights(s.cols, rng);
        float* nwd = device_copy(*ex, nw);
        for (const int64_t n : {int64_t(9), int64_t(64), int64_t(300)})
            for (const bool norm : {true, false}) {
                const bool acc = !norm;  // the down projection adds into the residual
                INFO(s.type << " " << s.rows << "x" << s.cols << ", " << n << " tokens, "
                            << (norm ? "norm" : "SwiGLU, accumulating"));
                ex->reserve_workspace(w->workspace_bytes(n));
                const int64_t xs = norm ? s.cols : 2 * s.cols, ys = s.rows + 3;
                auto x = random_activations(size_t(n * xs), rng);
                for (auto& v : x) v *= 3.f;  // the norm must undo a scale
                const auto y0 = random_activations(size_t((n + 1) * ys), rng);
                float* xd = device_copy(*ex, x);
                auto* tmp = static_cast<float*>(ex->alloc(size_t(n * s.cols) * 4, "tmp"));
                float* y_sep = device_copy(*ex, y0);
                float* y_fused = device_copy(*ex, y0);
                if (!acc) {
                    poison(*ex, y_sep, y0.size() * 4);
                    poison(*ex, y_fused, y0.size() * 4);
                }
                separate_ops(*ex, *w, xd, norm ? nwd : nullptr, eps, n, tmp, y_sep, ys, acc);
                imp::FusedMatmul m;
                m.x = xd, m.x_stride = xs, m.y = y_fused, m.y_stride = ys, m.n_tokens = n, m.accumulate = acc;
                if (norm)
                    m.norm = nwd, m.norm_eps = eps;
                else
                    m.up = xd + s.cols;
                REQUIRE(w->matmul_fused(*ex, m));
                const auto sep = download(*ex, y_sep, y0.size()), got = download(*ex, y_fused, y0.size());
                int64_t differ = 0;
                for (size_t i = 0; i < got.size(); ++i)
                    differ += std::memcmp(&got[i], &sep[i], 4) != 0;
                CHECK(differ == 0);
                // the double reference: the op's input in double, rounded to float as the executor's op writes it
                std::vector<float> in(size_t(n * s.cols));
                for (int64_t t = 0; t < n; ++t) {
                    const float* xr = x.data() + t * xs;
                    double ss = 0;
                    for (int64_t c = 0; c < s.cols; ++c) ss += double(xr[c]) * xr[c];
                    const double rs = 1.0 / std::sqrt(ss / double(s.cols) + double(eps));
                    for (int64_t c = 0; c < s.cols; ++c) {
                        const double g = xr[c];
                        in[size_t(t * s.cols + c)] =
                            norm ? float(g * rs * nw[size_t(c)]) : float(g / (1.0 + std::exp(-g)) * xr[s.cols + c]);
                    }
                }
                const auto ref = reference(wdq, s.rows, s.cols, in, s.cols, n);
                // y = init + W in over the first n rows of rows outputs; everything else keeps init (y0 when
                // accumulating, else the poison)
                std::vector<float> init(y0);
                if (!acc) std::memset(init.data(), 0xFF, init.size() * 4);
                double num = 0, den = 0;
                int64_t outside = 0, bad = 0;
                for (int64_t t = 0; t <= n; ++t)
                    for (int64_t r = 0; r < ys; ++r) {
                        const size_t i = size_t(t * ys + r);
                        if (t >= n || r >= s.rows) {
                            outside += std::memcmp(&got[i], &init[i], 4) != 0;
                            continue;
                        }
                        bad += !std::isfinite(got[i]);
                        const double want = ref[size_t(t * s.rows + r)];
                        const double d = double(got[i]) - (acc ? double(y0[i]) : 0.0) - want;
                        num += d * d;
                        den += want * want;
                    }
                CHECK(outside == 0);
                CHECK(bad == 0);
                CHECK(std::sqrt(num / den) <= 1e-2);
            }
    }
}

TEST_CASE("quant_ggml cuda: the GEMM path refuses what it cannot fuse and writes nothing", "[quant_ggml_gpu][fused]") {
    auto ex = make_gpu();
    GgmlFormat f;
    std::mt19937 rng(711);
    const int64_t cols = 512, n_max = 32;
    const auto nw = norm_weights(cols, rng);
    float* nwd = device_copy(*ex, nw);
    const auto x = random_activations(size_t(n_max * 2 * cols), rng);
    float* xd = device_copy(*ex, x);
    auto* y = static_cast<float*>(ex->alloc(size_t(n_max * 96) * 4, "y"));
    struct Case {
        const char* type;
        bool on;
        int64_t n_tokens;
        bool norm, up, swiglu;
        const char* why;
        int64_t xs = 2 * 512, ys = 96;
    };
    for (const Case c : {Case{"Q8_0", false, 32, true, false, false, "fuse_gemm_input off"},
                         Case{"Q8_0", false, 32, false, true, false, "fuse_gemm_input off (SwiGLU input)"},
                         Case{"F32", true, 32, true, false, false, "F32 weights (fp32 GEMM, no bf16 conversion)"},
                         Case{"Q8_0", true, 32, true, true, false, "norm and SwiGLU input together"},
                         Case{"Q8_0", true, 32, false, false, false, "nothing to fuse"},
                         Case{"Q8_0", true, 32, true, false, true, "SwiGLU epilogue on the GEMM path"},
                         Case{"Q8_0", true, 4, false, true, false, "SwiGLU input on the GEMV path"},
                         Case{"Q8_0", true, 32, true, false, false, "x stride below cols", cols - 4},
                         Case{"Q8_0", true, 32, true, false, false, "y stride below rows", 2 * cols, 90}}) {
        INFO(c.why);
        const HostTensor h = random_tensor(c.type, 96, cols, rng);
        const auto w = f.load(request_for(h.src()), *ex);
        cuda::set_gemm_fusion(*w, c.on);
        cuda::set_gemv_fusion(*w, true, true);
        ex->reserve_workspace(w->workspace_bytes(n_max));
        poison(*ex, y, size_t(n_max * 96) * 4);
        imp::FusedMatmul m;
        m.x = xd, m.x_stride = c.xs, m.y = y, m.y_stride = c.ys, m.n_tokens = c.n_tokens;
        m.norm = c.norm ? nwd : nullptr, m.norm_eps = 1e-6f, m.swiglu = c.swiglu, m.up = c.up ? xd + cols : nullptr;
        CHECK_FALSE(w->matmul_fused(*ex, m));
        CHECK(written(*ex, y, size_t(n_max * 96)) == 0);
    }
}

TEST_CASE("quant_ggml cuda: a fused-input GEMM replays from a captured CUDA graph with new activations",
          "[quant_ggml_gpu][fused][graph]") {
    auto ex = make_gpu();
    GgmlFormat f;
    std::mt19937 rng(712);
    const int64_t rows = 512, cols = 1024, n = 64;
    for (const char* type : {"BF16", "Q4_K"}) {
        const HostTensor h = random_tensor(type, rows, cols, rng);
        const auto w = f.load(request_for(h.src()), *ex);
        cuda::set_gemm_fusion(*w, true);
        ex->reserve_workspace(w->workspace_bytes(n));
        const auto nw = norm_weights(cols, rng);
        float* nwd = device_copy(*ex, nw);
        float* xd = static_cast<float*>(ex->alloc(size_t(n * 2 * cols) * 4, "x"));
        float* tmp = static_cast<float*>(ex->alloc(size_t(n * cols) * 4, "tmp"));
        auto* y = static_cast<float*>(ex->alloc(size_t(n * rows) * 4, "y"));
        auto* y_sep = static_cast<float*>(ex->alloc(size_t(n * rows) * 4, "y_sep"));
        for (const bool norm : {true, false}) {
            INFO(type << (norm ? ", norm" : ", SwiGLU"));
            imp::FusedMatmul m;
            m.x = xd, m.x_stride = norm ? cols : 2 * cols, m.y = y, m.y_stride = rows, m.n_tokens = n;
            if (norm)
                m.norm = nwd, m.norm_eps = 1e-5f;
            else
                m.up = xd + cols;
            cudaGraph_t graph = nullptr;
            cudaGraphExec_t exec = nullptr;
            QG_TEST_CUDA(cudaStreamBeginCapture(stream_of(*ex), cudaStreamCaptureModeThreadLocal));
            const bool fused = w->matmul_fused(*ex, m);
            QG_TEST_CUDA(cudaStreamEndCapture(stream_of(*ex), &graph));
            REQUIRE(fused);
            QG_TEST_CUDA(cudaGraphInstantiate(&exec, graph, 0));
            const auto before = imp::cuda_alloc_stats();
            for (int rep = 0; rep < 3; ++rep) {
                INFO("replay " << rep);
                const auto x = random_activations(size_t(n * 2 * cols), rng);  // new values each replay
                ex->upload(xd, x.data(), x.size() * 4);
                poison(*ex, y, size_t(n * rows) * 4);
                QG_TEST_CUDA(cudaGraphLaunch(exec, stream_of(*ex)));
                separate_ops(*ex, *w, xd, norm ? nwd : nullptr, 1e-5f, n, tmp, y_sep, rows, false);
                const auto got = download(*ex, y, size_t(n * rows)), sep = download(*ex, y_sep, size_t(n * rows));
                int64_t differ = 0;
                for (size_t i = 0; i < got.size(); ++i) differ += std::memcmp(&got[i], &sep[i], 4) != 0;
                CHECK(differ == 0);
            }
            CHECK(imp::cuda_alloc_stats().mallocs == before.mallocs);
            cudaGraphExecDestroy(exec);
            cudaGraphDestroy(graph);
        }
    }
}
