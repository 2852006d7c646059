// quant_ggml on a CUDA device: GEMV (up to 8 tokens) and GEMM (more) against a double-precision dot of the CPU
// reference dequantization (also accumulating, y += W x), get_rows bit for bit, graph capture, workspace errors.
// The GEMV runs in its default variants and again with every optional one (CudaOptions q8_dp4a, prefetch, plain_pdl,
// l2_prefetch).
// Every output buffer is poisoned before each run; every output must be written and nothing else. Bounds (relative
// norm ||y - ref|| / ||ref||): GEMV 1e-3 (its activations keep ~16 bits: observed ~1e-6); GEMM 1e-2 (bf16 weights
// and activations), 1e-4 for F32 weights (fp32 cuBLASLt GEMM).
#include <catch2/catch.hpp>
#include <random>
#include <string>
#include <vector>

#include "cuda_weight.h"
#include "gpu_test_util.h"
#include "request_util.h"
#include "imp/error.h"

using namespace imp::ggml;
using namespace imp::ggml::test;

namespace {

int64_t small_cols(const TypeInfo& t) {
    return t.block == 1 ? 203 : (t.block == 32 ? 7 * 32 : 3 * 256);
}

// Runs matmul with the output poisoned and returns the downloaded output (n_alloc tokens of stride ys).
std::vector<float> run_matmul(imp::CudaExecutor& ex, const imp::Weight& w, const float* x, int64_t xs, float* y,
                              int64_t ys, int64_t n_alloc, int64_t n_tokens) {
    poison(ex, y, size_t(n_alloc * ys) * 4);
    w.matmul(ex, x, xs, y, ys, n_tokens, false);
    ex.synchronize();
    std::vector<float> out(size_t(n_alloc * ys));
    ex.download(out.data(), y, out.size() * 4);
    return out;
}

// Accumulating matmul: y starts as y0 (random, scaled to the size of W x) on the first n_tokens rows and poison
// elsewhere; returns the downloaded output and sets ref_acc = ref + y0 (layout of ref).
std::vector<float> run_matmul_acc(imp::CudaExecutor& ex, const imp::Weight& w, const float* x, int64_t xs, float* y,
                                  int64_t ys, int64_t n_alloc, int64_t n_tokens, const std::vector<double>& ref,
                                  std::mt19937& rng, std::vector<double>& ref_acc) {
    const int64_t rows = w.rows();
    double ss = 0;
    for (int64_t i = 0; i < n_tokens * rows; ++i) ss += ref[size_t(i)] * ref[size_t(i)];
    const float scale = float(std::sqrt(ss / double(n_tokens * rows)));
    const auto z = random_activations(size_t(n_tokens * rows), rng);
    std::vector<float> init(size_t(n_alloc * ys));
    std::memset(init.data(), 0xFF, init.size() * 4);
    ref_acc = ref;
    for (int64_t t = 0; t < n_tokens; ++t)
        for (int64_t r = 0; r < rows; ++r) {
            const float v = z[size_t(t * rows + r)] * scale;
            init[size_t(t * ys + r)] = v;
            ref_acc[size_t(t * rows + r)] += double(v);
        }
    ex.upload(y, init.data(), init.size() * 4);
    w.matmul(ex, x, xs, y, ys, n_tokens, true);
    ex.synchronize();
    std::vector<float> out(init.size());
    ex.download(out.data(), y, out.size() * 4);
    return out;
}

}  // namespace

TEST_CASE("quant_ggml cuda: GEMV equals the fp32 reference for every CUDA type", "[quant_ggml_gpu][gemv]") {
    auto ex = make_gpu();
    INFO("device " << ex->name());
    GgmlFormat f;
    std::mt19937 rng(101);
    for (const std::string& type : cuda_types()) {
        const TypeInfo& t = *find_type(type);
        struct Shape {
            int64_t rows, cols;
        };
        for (const Shape s :
             {Shape{37, small_cols(t)}, Shape{4097, 4096}, Shape{64, small_cols(t)}, Shape{1000, 2048}}) {
            const HostTensor h = random_tensor(type, s.rows, s.cols, rng);
            const auto w = f.load(request_for(h.src()), *ex);
            REQUIRE(w->rows() == s.rows);
            REQUIRE(w->cols() == s.cols);
            CHECK(w->type() == type);
            CHECK(w->bytes() == f.plan(request_for(h.src()), *ex).device_bytes);
            CHECK(w->workspace_bytes(8) == 0);
            const auto wdq = dequantized(h);
            for (const bool strided : {false, true}) {
                const int64_t xs = s.cols + (strided ? 3 : 0), ys = s.rows + (strided ? 5 : 0);
                const auto x = random_activations(size_t(8 * xs), rng);
                const auto ref = reference(wdq, s.rows, s.cols, x, xs, 8);
                float* xd = device_copy(*ex, x);
                auto* yd = static_cast<float*>(ex->alloc(size_t(8 * ys) * 4, "y"));
                // GEMV plans of the block types (splits, warps per row group): automatic, and forced ones.
                struct Plan {
                    int splits, kw;
                };
                for (const Plan plan : {Plan{0, 0}, Plan{1, 1}, Plan{3, 2}, Plan{2, 4}, Plan{1, 8}})
                for (const bool variants : {false, true}) {
                    cuda::set_gemv_plan(*w, plan.splits, plan.kw);
                    cuda::set_gemv_variants(*w, variants, variants, variants, variants ? 4096 : 0);
                    for (const int64_t n : {1, 2, 5, 8}) {
                        INFO(type << " " << s.rows << "x" << s.cols << (strided ? " strided" : "") << ", splits "
                                  << plan.splits << ", warps per row group " << plan.kw << ", tokens " << n
                                  << (variants ? ", q8_dp4a + prefetch + plain_pdl + l2_prefetch" : ", defaults"));
                        const auto y = run_matmul(*ex, *w, xd, xs, yd, ys, 8, n);
                        const Check c = check_output(y, ys, 8, s.rows, ref, n);
                        CHECK(c.unwritten == 0);
                        CHECK(c.overwritten == 0);
                        CHECK(c.rel <= 1e-3);
                        if (!(c.rel <= 1e-3)) FAIL_CHECK("relative error " << c.rel);
                    }
                }
                cuda::set_gemv_plan(*w, 0, 0);
                cuda::set_gemv_variants(*w, false, false, false);
            }
        }
    }
}

TEST_CASE("quant_ggml cuda: GEMM path equals the reference within bf16 precision", "[quant_ggml_gpu][gemm]") {
    auto ex = make_gpu();
    INFO("device " << ex->name());
    GgmlFormat f;
    std::mt19937 rng(202);
    for (const std::string& type : cuda_types()) {
        const TypeInfo& t = *find_type(type);
        const double tol = type == "F32" ? 1e-4 : 1e-2;
        struct Shape {
            int64_t rows, cols;
        };
        const int64_t wide = t.block == 1 ? 1001 : 4 * 256;
        for (const Shape s : {Shape{37, small_cols(t)}, Shape{300, wide}}) {
            const HostTensor h = random_tensor(type, s.rows, s.cols, rng);
            const auto w = f.load(request_for(h.src()), *ex);
            const auto wdq = dequantized(h);
            const int64_t xs = s.cols + 1, ys = s.rows + 2, n_max = 300;
            const auto x = random_activations(size_t(n_max * xs), rng);
            const auto ref = reference(wdq, s.rows, s.cols, x, xs, n_max);
            float* xd = device_copy(*ex, x);
            auto* yd = static_cast<float*>(ex->alloc(size_t(n_max * ys) * 4, "y"));
            // Tile rows 128: several row tiles for 300 rows, dequantized on the side stream in turn (overlap on)
            // or in line (off).
            struct Tiling {
                int64_t rows;
                int overlap;
            };
            for (const Tiling tl : {Tiling{0, 0}, Tiling{128, 1}, Tiling{128, 0}}) {
                const int64_t tile = tl.rows;
                cuda::set_gemm_tile_rows(*w, tile);
                cuda::set_gemm_overlap(*w, tl.overlap);
                for (const int64_t n : {17, 64, 300}) {
                    INFO(type << " " << s.rows << "x" << s.cols << ", tile rows " << tile << ", overlap "
                              << tl.overlap << ", tokens " << n);
                    const uint64_t need = w->workspace_bytes(n);
                    if (type == "F32") {
                        CHECK(need == 0);
                    } else {
                        CHECK(need >= uint64_t(n * s.cols * 2));
                        if (ex->workspace_bytes() < need && need > 0)
                            CHECK_THROWS_WITH(w->matmul(*ex, xd, xs, yd, ys, n, false),
                                              Catch::Contains("workspace") && Catch::Contains("blk.1.ffn_gate.weight"));
                    }
                    ex->reserve_workspace(need);
                    const auto y = run_matmul(*ex, *w, xd, xs, yd, ys, n_max, n);
                    const Check c = check_output(y, ys, n_max, s.rows, ref, n);
                    CHECK(c.unwritten == 0);
                    CHECK(c.overwritten == 0);
                    CHECK(c.rel <= tol);
                    if (!(c.rel <= tol)) FAIL_CHECK("relative error " << c.rel);
                }
            }
            cuda::set_gemm_tile_rows(*w, 0);
            cuda::set_gemm_overlap(*w, 0);
        }
    }
}

TEST_CASE("quant_ggml cuda: accumulating matmul adds W x to y (GEMV and GEMM)", "[quant_ggml_gpu][accumulate]") {
    auto ex = make_gpu();
    GgmlFormat f;
    std::mt19937 rng(606);
    for (const std::string type : {"Q8_0", "Q4_K", "Q6_K", "Q4_0", "BF16", "F16", "F32"}) {
        const TypeInfo& t = *find_type(type);
        struct Shape {
            int64_t rows, cols;
        };
        for (const Shape s : {Shape{37, small_cols(t)}, Shape{300, t.block == 1 ? 1001 : 4 * 256}}) {
            const HostTensor h = random_tensor(type, s.rows, s.cols, rng);
            const auto w = f.load(request_for(h.src()), *ex);
            const auto wdq = dequantized(h);
            const int64_t xs = s.cols + 1, ys = s.rows + 2, n_max = 300;
            const auto x = random_activations(size_t(n_max * xs), rng);
            const auto ref = reference(wdq, s.rows, s.cols, x, xs, n_max);
            float* xd = device_copy(*ex, x);
            auto* yd = static_cast<float*>(ex->alloc(size_t(n_max * ys) * 4, "y"));
            ex->reserve_workspace(w->workspace_bytes(n_max));
            for (const int64_t n : {1, 2, 3, 5, 8}) {  // GEMV
                INFO(type << " " << s.rows << "x" << s.cols << ", GEMV, tokens " << n);
                std::vector<double> ref_acc;
                const auto y = run_matmul_acc(*ex, *w, xd, xs, yd, ys, 8, n, ref, rng, ref_acc);
                const Check c = check_output(y, ys, 8, s.rows, ref_acc, n);
                CHECK(c.unwritten == 0);
                CHECK(c.overwritten == 0);
                CHECK(c.rel <= 1e-3);
            }
            const double tol = type == "F32" ? 1e-4 : 1e-2;
            for (const int64_t tile : {int64_t(0), int64_t(128)}) {
                cuda::set_gemm_tile_rows(*w, tile);
                for (const int overlap : {0, 1}) {
                    cuda::set_gemm_overlap(*w, overlap);
                    ex->reserve_workspace(w->workspace_bytes(n_max));
                    for (const int64_t n : {17, 300}) {  // GEMM
                        INFO(type << " " << s.rows << "x" << s.cols << ", GEMM, tile rows " << tile << ", overlap "
                                  << overlap << ", tokens " << n);
                        std::vector<double> ref_acc;
                        const auto y = run_matmul_acc(*ex, *w, xd, xs, yd, ys, n_max, n, ref, rng, ref_acc);
                        const Check c = check_output(y, ys, n_max, s.rows, ref_acc, n);
                        CHECK(c.unwritten == 0);
                        CHECK(c.overwritten == 0);
                        CHECK(c.rel <= tol);
                    }
                }
            }
            cuda::set_gemm_tile_rows(*w, 0);
            cuda::set_gemm_overlap(*w, 0);
        }
    }
}

TEST_CASE("quant_ggml cuda: get_rows gives the reference rows bit for bit", "[quant_ggml_gpu][get_rows]") {
    auto ex = make_gpu();
    GgmlFormat f;
    std::mt19937 rng(303);
    for (const std::string& type : cuda_types()) {
        const TypeInfo& t = *find_type(type);
        for (const int64_t cols : {small_cols(t), int64_t(4096)}) {
            const int64_t rows = 50;
            const HostTensor h = random_tensor(type, rows, cols, rng);
            const auto w = f.load(request_for(h.src()), *ex);
            const auto wdq = dequantized(h);
            const std::vector<int32_t> ids = {0, 49, 7, 7, 23, 16, 15, 8, 50, 31, 32, -1, 48};
            const int32_t* idd = device_copy(*ex, ids);
            auto* out = static_cast<float*>(ex->alloc(ids.size() * size_t(cols) * 4, "rows"));
            poison(*ex, out, ids.size() * size_t(cols) * 4);
            w->get_rows(*ex, idd, int64_t(ids.size()), out);
            ex->synchronize();
            std::vector<float> got(ids.size() * size_t(cols));
            ex->download(got.data(), out, got.size() * 4);
            for (size_t i = 0; i < ids.size(); ++i) {
                INFO(type << " cols " << cols << ", id " << ids[i]);
                const float* g = got.data() + i * size_t(cols);
                if (ids[i] < 0 || ids[i] >= rows) {
                    int64_t not_nan = 0;
                    for (int64_t c = 0; c < cols; ++c) not_nan += !std::isnan(g[c]);
                    CHECK(not_nan == 0);
                } else {
                    CHECK(std::memcmp(g, wdq.data() + size_t(ids[i]) * size_t(cols), size_t(cols) * 4) == 0);
                }
            }
        }
    }
}

TEST_CASE("quant_ggml cuda: GEMV and GEMM replay from a captured CUDA graph", "[quant_ggml_gpu][graph]") {
    auto ex = make_gpu();
    GgmlFormat f;
    std::mt19937 rng(404);
    // Tile rows 128 with overlap: the GEMM forks three row tiles onto the side stream and joins them inside the
    // capture.
    for (const char* type : {"Q4_K", "Q8_0", "BF16"})
        for (const int64_t tile : {int64_t(0), int64_t(128)}) {
            const int64_t rows = 300, cols = 1024, n_big = 24;
            const HostTensor h = random_tensor(type, rows, cols, rng);
            const auto w = f.load(request_for(h.src()), *ex);
            cuda::set_gemm_tile_rows(*w, tile);
            cuda::set_gemm_overlap(*w, tile > 0 ? 1 : 0);
            // The optional GEMV variants in the first capture (Q8_0 dp4a, prefetch, BF16 with PDL, L2 prefetch).
            cuda::set_gemv_variants(*w, tile == 0, tile == 0, tile == 0, tile == 0 ? 4096 : 0);
            const auto wdq = dequantized(h);
            const auto x = random_activations(size_t(n_big * cols), rng);
            const auto ref = reference(wdq, rows, cols, x, cols, n_big);
            float* xd = device_copy(*ex, x);
            auto* y1 = static_cast<float*>(ex->alloc(size_t(rows) * 4, "y1"));
            auto* y2 = static_cast<float*>(ex->alloc(size_t(n_big * rows) * 4, "y2"));
            ex->reserve_workspace(w->workspace_bytes(n_big));
            cudaGraph_t graph = nullptr;
            cudaGraphExec_t exec = nullptr;
            QG_TEST_CUDA(cudaStreamBeginCapture(stream_of(*ex), cudaStreamCaptureModeThreadLocal));
            w->matmul(*ex, xd, cols, y1, rows, 1, false);
            w->matmul(*ex, xd, cols, y2, rows, n_big, false);
            QG_TEST_CUDA(cudaStreamEndCapture(stream_of(*ex), &graph));
            QG_TEST_CUDA(cudaGraphInstantiate(&exec, graph, 0));
            for (int rep = 0; rep < 2; ++rep) {
                poison(*ex, y1, size_t(rows) * 4);
                poison(*ex, y2, size_t(n_big * rows) * 4);
                QG_TEST_CUDA(cudaGraphLaunch(exec, stream_of(*ex)));
                ex->synchronize();
                std::vector<float> g1(static_cast<size_t>(rows)), g2(static_cast<size_t>(n_big * rows));
                ex->download(g1.data(), y1, g1.size() * 4);
                ex->download(g2.data(), y2, g2.size() * 4);
                INFO(type << ", tile rows " << tile << ", replay " << rep);
                const Check c1 = check_output(g1, rows, 1, rows, ref, 1);
                const Check c2 = check_output(g2, rows, n_big, rows, ref, n_big);
                CHECK(c1.unwritten == 0);
                CHECK(c1.rel <= 1e-3);
                CHECK(c2.unwritten == 0);
                CHECK(c2.rel <= 1e-2);
            }
            cudaGraphExecDestroy(exec);
            cudaGraphDestroy(graph);
        }
}

// gemm_tune: the timed runs leave every result right (overwriting: they write y itself; accumulating: the
// workspace's tuning part, so y's old values survive), a plan is timed once per token bucket (powers of two) and a
// later token count of a timed bucket takes its algorithm without timing, a first call inside a graph capture keeps
// the heuristic's algorithm (no timing in a capture) and the next eager call of that bucket times it.
TEST_CASE("quant_ggml cuda: gemm_tune times cuBLASLt's algorithms once per bucket, results unchanged",
          "[quant_ggml_gpu][gemm][tune]") {
    auto ex = make_gpu();
    GgmlFormat f;
    std::mt19937 rng(909);
    for (const char* type : {"BF16", "Q4_K", "F32"}) {
        const int64_t rows = 384, cols = 1024, n_max = 300, ys = rows;
        const double tol = std::string(type) == "F32" ? 1e-4 : 1e-2;
        const HostTensor h = random_tensor(type, rows, cols, rng);
        const auto w = f.load(request_for(h.src()), *ex);
        const auto wdq = dequantized(h);
        const auto x = random_activations(size_t(n_max * cols), rng);
        const auto ref = reference(wdq, rows, cols, x, cols, n_max);
        float* xd = device_copy(*ex, x);
        auto* yd = static_cast<float*>(ex->alloc(size_t(n_max * ys) * 4, "y"));
        const uint64_t plain = w->workspace_bytes(n_max);
        cuda::set_gemm_tune(*w, true);
        const uint64_t tuned = w->workspace_bytes(n_max);
        CHECK(tuned >= plain + uint64_t(rows * n_max) * 4);  // the accumulating calls' tuning part
        ex->reserve_workspace(tuned);
        CHECK(cuda::gemm_tuned_buckets(*w) == 0);
        auto check_plain = [&](int64_t n, int tuned_after) {
            INFO(type << ", tokens " << n);
            const auto y = run_matmul(*ex, *w, xd, cols, yd, ys, n_max, n);
            const Check c = check_output(y, ys, n_max, rows, ref, n);
            CHECK(c.unwritten == 0);
            CHECK(c.overwritten == 0);
            CHECK(c.rel <= tol);
            CHECK(cuda::gemm_tuned_buckets(*w) == tuned_after);
        };
        check_plain(17, 1);  // bucket 32: timed
        check_plain(20, 1);  // bucket 32 again, another plan: the timed algorithm, no timing
        check_plain(17, 1);  // the same plan: nothing new
        check_plain(33, 2);  // bucket 64
        {
            INFO(type << ", accumulating, tokens 100");
            std::vector<double> ref_acc;
            const auto y = run_matmul_acc(*ex, *w, xd, cols, yd, ys, n_max, 100, ref, rng, ref_acc);
            const Check c = check_output(y, ys, n_max, rows, ref_acc, 100);
            CHECK(c.unwritten == 0);
            CHECK(c.overwritten == 0);
            CHECK(c.rel <= tol);
            CHECK(cuda::gemm_tuned_buckets(*w) == 3);  // bucket 128, timed on the workspace
        }
        // Bucket 256 first inside a capture: not timed there; the replay is right; the next eager call times it.
        const int64_t n_g = 200;
        cudaGraph_t graph = nullptr;
        cudaGraphExec_t exec = nullptr;
        QG_TEST_CUDA(cudaStreamBeginCapture(stream_of(*ex), cudaStreamCaptureModeThreadLocal));
        w->matmul(*ex, xd, cols, yd, ys, n_g, false);
        QG_TEST_CUDA(cudaStreamEndCapture(stream_of(*ex), &graph));
        QG_TEST_CUDA(cudaGraphInstantiate(&exec, graph, 0));
        CHECK(cuda::gemm_tuned_buckets(*w) == 3);
        poison(*ex, yd, size_t(n_max * ys) * 4);
        QG_TEST_CUDA(cudaGraphLaunch(exec, stream_of(*ex)));
        ex->synchronize();
        std::vector<float> g(size_t(n_max * ys));
        ex->download(g.data(), yd, g.size() * 4);
        {
            INFO(type << ", graph replay, tokens " << n_g);
            const Check c = check_output(g, ys, n_max, rows, ref, n_g);
            CHECK(c.unwritten == 0);
            CHECK(c.rel <= tol);
        }
        cudaGraphExecDestroy(exec);
        cudaGraphDestroy(graph);
        check_plain(n_g, 4);
        // Without the tuning part (the LM head's weights): no extra workspace, accumulating calls are not timed,
        // overwriting ones are.
        cuda::set_gemm_tune(*w, true, false);
        CHECK(w->workspace_bytes(n_max) == plain);
        {
            INFO(type << ", accumulating without a tuning part, tokens 9");
            std::vector<double> ref_acc;
            const auto y = run_matmul_acc(*ex, *w, xd, cols, yd, ys, n_max, 9, ref, rng, ref_acc);
            const Check c = check_output(y, ys, n_max, rows, ref_acc, 9);
            CHECK(c.unwritten == 0);
            CHECK(c.rel <= tol);
            CHECK(cuda::gemm_tuned_buckets(*w) == 4);
        }
        check_plain(12, 5);  // bucket 16, overwriting: timed on y
        // Off again: no more timing.
        cuda::set_gemm_tune(*w, false);
        check_plain(257, 5);
    }
}

TEST_CASE("quant_ggml cuda: load and device_bytes on a real CUDA executor", "[quant_ggml_gpu][load]") {
    auto ex = make_gpu();
    GgmlFormat f;
    std::mt19937 rng(505);
    const HostTensor bad = random_tensor("Q5_1", 8, 64, rng);
    CHECK_THROWS_WITH(f.load(request_for(bad.src()), *ex), Catch::Contains("blk.1.ffn_gate.weight") && Catch::Contains("Q5_1"));
    // A 3-D tensor is an expert stack, not a matrix: a Linear request for it is refused, naming the tensor.
    HostTensor h = random_tensor("Q6_K", 6, 512, rng);
    h.info.shape = {6, 2, 256};
    CHECK_THROWS_WITH(f.load(request_for(h.src()), *ex), Catch::Contains("not a [rows, cols] matrix"));
    // bytes() counts the padded layout (6 rows in one 16-row tile group).
    h.info.shape = {6, 512};
    const auto w = f.load(request_for(h.src()), *ex);
    CHECK(w->rows() == 6);
    CHECK(w->cols() == 512);
    CHECK(w->bytes() == 2 * 3360);
    const uint64_t before = ex->bytes_allocated();
    const auto w2 = f.load(request_for(h.src()), *ex);
    CHECK(ex->bytes_allocated() - before == (w2->bytes() + 255) / 256 * 256);  // CudaExecutor allocates in 256s
}

TEST_CASE("quant_ggml cuda: a row concatenation of tensors loads as one weight (fused projections)",
          "[quant_ggml_gpu][concat]") {
    auto ex = make_gpu();
    GgmlFormat f;
    std::mt19937 rng(707);
    for (const std::string type : {"Q8_0", "Q4_K", "Q6_K", "Q4_0", "BF16", "F32"}) {
        const TypeInfo& t = *find_type(type);
        const int64_t cols = t.block == 1 ? 200 : 2 * 256;
        // Block types: every part but the last a whole number of 16-row groups.
        const std::vector<int64_t> rows = {48, 16, 21};
        std::vector<HostTensor> parts;
        for (const int64_t r : rows) parts.push_back(random_tensor(type, r, cols, rng));
        imp::WeightSource src;
        std::vector<float> wdq;
        for (auto& p : parts) {
            src.parts.push_back(p.src());
            const auto d = dequantized(p);
            wdq.insert(wdq.end(), d.begin(), d.end());
        }
        REQUIRE(f.plan(request_for(src), *ex).accepted);
        const int64_t total = 48 + 16 + 21;
        const auto w = f.load(request_for(src), *ex);
        REQUIRE(w->rows() == total);
        CHECK(w->bytes() == f.plan(request_for(src), *ex).device_bytes);
        const int64_t n_max = 40;
        const auto x = random_activations(size_t(n_max * cols), rng);
        const auto ref = reference(wdq, total, cols, x, cols, n_max);
        float* xd = device_copy(*ex, x);
        auto* yd = static_cast<float*>(ex->alloc(size_t(n_max * total) * 4, "y"));
        ex->reserve_workspace(w->workspace_bytes(n_max));
        for (const int64_t n : {1, 3, 40}) {
            INFO(type << ", tokens " << n);
            const auto y = run_matmul(*ex, *w, xd, cols, yd, total, n_max, n);
            const Check c = check_output(y, total, n_max, total, ref, n);
            CHECK(c.unwritten == 0);
            CHECK(c.overwritten == 0);
            CHECK(c.rel <= (n > 8 && type != "F32" ? 1e-2 : 1e-3));
        }
        // A part that is not a whole number of row groups, before the last: block types refuse the concatenation.
        if (t.block > 1) {
            HostTensor odd = random_tensor(type, 20, cols, rng);
            imp::WeightSource bad;
            bad.parts = {odd.src(), parts[0].src()};
            CHECK_FALSE(f.plan(request_for(bad), *ex).accepted);
        }
    }
}
