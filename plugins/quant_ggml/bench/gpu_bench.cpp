// quant_ggml_gpu_bench: the CUDA kernels on the GPU (not a test).
//  1. device copy bandwidth (cudaMemcpy D2D of 1 GiB, bytes read + written, median of 20);
//  2. GEMV (1, 2, 4 and 8 tokens) per type at 8B-model shapes: a CUDA graph of matmuls over enough copies of the
//     weight to defeat the L2 cache, median of 15 replays; GB/s of weight bytes and % of the copy bandwidth;
//     at 1 token also with forced plans (warps per row group, column splits) for tuning;
//  3. GEMM (512 and 4096 tokens) TFLOP/s per type vs a plain cuBLASLt bf16 GEMM of the same shape.
// Usage: quant_ggml_gpu_bench [--csv file] [--types T1,T2,...] [--no-gemm]; QG_BENCH_VARIANTS=t1,k8s2,... picks
// the GEMV rows (labels as printed; default all but k8s2 and k8s4).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "bench_executor.h"
#include "cuda_weight.h"
#include "ggml_format.h"
#include "ggml_types.h"
#include "imp/dtype.h"
#include "random_weights.h"

using namespace imp::ggml;
using imp::ggml::test::CudaTestExecutor;

namespace {

struct Rng {
    uint64_t s;
    uint64_t next() {
        uint64_t z = (s += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    float uniform() { return float(next() >> 40) * (1.f / 16777216.f); }  // [0, 1)
};

// Random weights of type t (fast: the bench makes gigabytes): random quant bytes, sane fp16 scales.
std::vector<uint8_t> fast_random(const TypeInfo& t, int64_t n_elems, Rng& rng) {
    const int64_t nb = n_elems / t.block;
    std::vector<uint8_t> raw(size_t(nb) * size_t(t.bytes));
    if (t.type == Type::F32 || t.type == Type::F16 || t.type == Type::BF16) {
        for (int64_t i = 0; i < nb; ++i) {
            const float v = (rng.uniform() - 0.5f) * 2.f;
            if (t.type == Type::F32) {
                std::memcpy(&raw[size_t(i) * 4], &v, 4);
            } else {
                const uint16_t h = t.type == Type::F16 ? imp::f32_to_fp16(v) : imp::f32_to_bf16(v);
                std::memcpy(&raw[size_t(i) * 2], &h, 2);
            }
        }
        return raw;
    }
    for (size_t i = 0; i + 8 <= raw.size(); i += 8) {
        const uint64_t v = rng.next();
        std::memcpy(&raw[i], &v, 8);
    }
    uint16_t table[256];
    for (int i = 0; i < 256; ++i)
        table[i] = imp::f32_to_fp16((i & 1 ? -1.f : 1.f) * std::pow(10.f, -4.f + 4.f * float(i) / 256.f));
    const auto offs = test::scale_offsets(t.type);
    for (int64_t b = 0; b < nb; ++b)
        for (int off : offs) std::memcpy(&raw[size_t(b) * size_t(t.bytes) + size_t(off)], &table[rng.next() & 255], 2);
    return raw;
}

std::unique_ptr<imp::Weight> make_weight(const std::string& type, int64_t rows, int64_t cols, CudaTestExecutor& ex,
                                         Rng& rng) {
    const TypeInfo& t = *find_type(type);
    const auto raw = fast_random(t, rows * cols, rng);
    imp::TensorInfo ti;
    ti.name = "bench." + type;
    ti.type = type;
    ti.shape = {rows, cols};
    ti.data = raw.data();
    ti.nbytes = raw.size();
    imp::WeightSource src;
    src.main = &ti;
    return GgmlFormat().load(src, ex);
}

float* random_device(CudaTestExecutor& ex, size_t n, Rng& rng) {
    std::vector<float> h(n);
    for (auto& v : h) v = (rng.uniform() - 0.5f) * 4.f;
    auto* p = static_cast<float*>(ex.alloc(n * 4, "bench"));
    ex.upload(p, h.data(), n * 4);
    return p;
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

// Median seconds of fn() queued on the stream, timed with events (fn may launch a graph).
template <class F>
double time_events(CudaTestExecutor& ex, int reps, F&& fn) {
    cudaEvent_t a, b;
    QG_TEST_CUDA(cudaEventCreate(&a));
    QG_TEST_CUDA(cudaEventCreate(&b));
    std::vector<double> t;
    for (int i = 0; i < reps; ++i) {
        QG_TEST_CUDA(cudaEventRecord(a, ex.stream()));
        fn();
        QG_TEST_CUDA(cudaEventRecord(b, ex.stream()));
        QG_TEST_CUDA(cudaEventSynchronize(b));
        float ms = 0;
        QG_TEST_CUDA(cudaEventElapsedTime(&ms, a, b));
        t.push_back(ms * 1e-3);
    }
    cudaEventDestroy(a);
    cudaEventDestroy(b);
    return median(t);
}

double copy_bandwidth(CudaTestExecutor& ex) {
    const size_t n = size_t(1) << 30;
    void* a = ex.alloc(n, "copy_a");
    void* b = ex.alloc(n, "copy_b");
    QG_TEST_CUDA(cudaMemsetAsync(a, 0x3C, n, ex.stream()));
    for (int i = 0; i < 3; ++i) QG_TEST_CUDA(cudaMemcpyAsync(b, a, n, cudaMemcpyDeviceToDevice, ex.stream()));
    const double s =
        time_events(ex, 20, [&] { QG_TEST_CUDA(cudaMemcpyAsync(b, a, n, cudaMemcpyDeviceToDevice, ex.stream())); });
    ex.free_all();
    return 2.0 * double(n) / s * 1e-9;
}

struct Shape {
    int64_t rows, cols;
};
const Shape kShapes[] = {{4096, 4096}, {1024, 4096}, {14336, 4096}, {4096, 14336}};

// Seconds per matmul of `n` tokens, over graph replays of one matmul per copy.
double time_gemv(CudaTestExecutor& ex, const std::vector<std::unique_ptr<imp::Weight>>& ws, const float* x, float* y,
                 int64_t n) {
    const int64_t rows = ws[0]->rows(), cols = ws[0]->cols();
    for (const auto& w : ws) w->matmul(ex, x, cols, y, rows, n);  // warm up (outside the capture)
    cudaGraph_t g;
    cudaGraphExec_t ge;
    QG_TEST_CUDA(cudaStreamBeginCapture(ex.stream(), cudaStreamCaptureModeThreadLocal));
    for (const auto& w : ws) w->matmul(ex, x, cols, y, rows, n);
    QG_TEST_CUDA(cudaStreamEndCapture(ex.stream(), &g));
    QG_TEST_CUDA(cudaGraphInstantiate(&ge, g, 0));
    QG_TEST_CUDA(cudaGraphLaunch(ge, ex.stream()));
    const double s = time_events(ex, 15, [&] { QG_TEST_CUDA(cudaGraphLaunch(ge, ex.stream())); });
    cudaGraphExecDestroy(ge);
    cudaGraphDestroy(g);
    return s / double(ws.size());
}

// A plain cuBLASLt bf16 GEMM (same layout as the weights' GEMM path: y[n, m] = x[n, k] W[m, k]^T, fp32 out).
double time_lt_bf16(CudaTestExecutor& ex, int64_t m, int64_t k, int64_t n, Rng& rng) {
    std::vector<uint16_t> ha(size_t(m * k)), hb(size_t(n * k));
    for (auto& v : ha) v = imp::f32_to_bf16(rng.uniform() - 0.5f);
    for (auto& v : hb) v = imp::f32_to_bf16(rng.uniform() - 0.5f);
    void* A = ex.alloc(ha.size() * 2, "A");
    void* B = ex.alloc(hb.size() * 2, "B");
    void* D = ex.alloc(size_t(m * n) * 4, "D");
    ex.upload(A, ha.data(), ha.size() * 2);
    ex.upload(B, hb.data(), hb.size() * 2);
    const auto* h = ex.cuda();
    auto lt = static_cast<cublasLtHandle_t>(h->cublaslt);
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t la, lb, ld;
    cublasLtMatmulPreference_t pref;
    cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F);
    const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta));
    cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb));
    cublasLtMatrixLayoutCreate(&la, CUDA_R_16BF, uint64_t(k), uint64_t(m), k);
    cublasLtMatrixLayoutCreate(&lb, CUDA_R_16BF, uint64_t(k), uint64_t(n), k);
    cublasLtMatrixLayoutCreate(&ld, CUDA_R_32F, uint64_t(m), uint64_t(n), m);
    cublasLtMatmulPreferenceCreate(&pref);
    const uint64_t wsb = h->lt_workspace_bytes;
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &wsb, sizeof(wsb));
    cublasLtMatmulHeuristicResult_t res{};
    int found = 0;
    cublasLtMatmulAlgoGetHeuristic(lt, op, la, lb, ld, ld, pref, 1, &res, &found);
    double s = -1;
    if (found > 0) {
        const float alpha = 1.f, beta = 0.f;
        auto run = [&] {
            if (cublasLtMatmul(lt, op, &alpha, A, la, B, lb, &beta, D, ld, D, ld, &res.algo, h->lt_workspace, wsb,
                               ex.stream()) != CUBLAS_STATUS_SUCCESS)
                throw imp::Error("baseline cublasLtMatmul failed");
        };
        run();
        s = time_events(ex, 7, run);
    }
    cublasLtMatmulPreferenceDestroy(pref);
    cublasLtMatrixLayoutDestroy(la);
    cublasLtMatrixLayoutDestroy(lb);
    cublasLtMatrixLayoutDestroy(ld);
    cublasLtMatmulDescDestroy(op);
    ex.free_all();
    return s;
}

}  // namespace

int main(int argc, char** argv) {
    std::string csv_path;
    std::vector<std::string> types = {"Q4_0", "Q4_1", "Q8_0", "Q4_K", "Q5_K", "Q6_K", "F16", "BF16", "F32"};
    bool gemm = true;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--csv" && i + 1 < argc) {
            csv_path = argv[++i];
        } else if (a == "--no-gemm") {
            gemm = false;
        } else if (a == "--types" && i + 1 < argc) {
            types.clear();
            std::string s = argv[++i];
            for (size_t p = 0; p <= s.size();) {
                const size_t q = std::min(s.find(',', p), s.size());
                types.push_back(s.substr(p, q - p));
                p = q + 1;
            }
        }
    }
    try {
        CudaTestExecutor ex;
        FILE* csv = csv_path.empty() ? nullptr : std::fopen(csv_path.c_str(), "w");
        if (csv) std::fprintf(csv, "kind,type,rows,cols,tokens,splits,seconds,gbps,pct_copy,tflops\n");
        const double copy = copy_bandwidth(ex);
        std::printf("device %s, %d SMs; copy bandwidth %.0f GB/s (read + write)\n", ex.device_name().c_str(),
                    ex.cuda()->sm_count, copy);
        Rng rng{12345};
        std::printf(
            "\nGEMV GB/s (%% of copy), cols: weight shapes rows x cols; t = tokens; forced plans: kK sS = K warps per "
            "row group, S column splits\n");
        std::printf("%-5s %-5s", "type", "case");
        for (const Shape& s : kShapes)
            std::printf(" %14s", (std::to_string(s.rows) + "x" + std::to_string(s.cols)).c_str());
        std::printf("\n");
        struct Variant {
            int64_t tokens;
            int splits, kw;
            const char* label;
        };
        const Variant variants[] = {{1, 0, 0, "t1"},   {2, 0, 0, "t2"},   {4, 0, 0, "t4"},  {8, 0, 0, "t8"},
                                    {1, 1, 8, "k8s1"}, {1, 2, 4, "k4s2"}, {1, 8, 1, "k1s8"},
                                    {1, 2, 8, "k8s2"}, {1, 4, 8, "k8s4"}};
        // QG_BENCH_VARIANTS: comma-separated labels to run (default: all but k8s2, k8s4).
        const char* only = std::getenv("QG_BENCH_VARIANTS");
        auto wanted = [&](const char* label) {
            if (!only || !*only) return std::strcmp(label, "k8s2") != 0 && std::strcmp(label, "k8s4") != 0;
            const std::string list = std::string(",") + only + ",";
            return list.find(std::string(",") + label + ",") != std::string::npos;
        };
        constexpr int kVariants = int(sizeof(variants) / sizeof(variants[0]));
        for (const std::string& type : types) {
            const bool tiled = find_type(type)->block > 1;
            std::vector<std::string> cells[kVariants];
            for (const Shape& s : kShapes) {
                std::vector<std::unique_ptr<imp::Weight>> ws;
                ws.push_back(make_weight(type, s.rows, s.cols, ex, rng));
                const uint64_t bytes = ws[0]->bytes();
                const size_t copies = size_t(std::clamp<uint64_t>((uint64_t(512) << 20) / bytes + 1, 2, 48));
                while (ws.size() < copies) ws.push_back(cuda::clone_weight(*ws[0], ex));
                const float* x = random_device(ex, size_t(8 * s.cols), rng);
                auto* y = static_cast<float*>(ex.alloc(size_t(8 * s.rows) * 4, "y"));
                for (int v = 0; v < kVariants; ++v) {
                    if ((!tiled && variants[v].splits) || !wanted(variants[v].label)) continue;
                    cuda::set_gemv_plan(variants[v].splits, variants[v].kw);
                    const double t = time_gemv(ex, ws, x, y, variants[v].tokens);
                    const double gbps = double(bytes) / t * 1e-9;
                    char cell[64];
                    std::snprintf(cell, sizeof cell, "%6.0f (%3.0f%%)", gbps, 100.0 * gbps / copy);
                    cells[v].push_back(cell);
                    if (csv)
                        std::fprintf(csv, "gemv,%s,%lld,%lld,%lld,%d,%.9f,%.1f,%.1f,\n", type.c_str(),
                                     (long long)s.rows, (long long)s.cols, (long long)variants[v].tokens,
                                     variants[v].splits, t, gbps, 100.0 * gbps / copy);
                }
                cuda::set_gemv_plan(0, 0);
                ws.clear();
                ex.free_all();
            }
            for (int v = 0; v < kVariants; ++v) {
                if (cells[v].empty()) continue;
                std::printf("%-5s %-5s", type.c_str(), variants[v].label);
                for (const auto& c : cells[v]) std::printf(" %14s", c.c_str());
                std::printf("\n");
            }
            std::fflush(stdout);
        }
        if (gemm) {
            std::printf("\nGEMM TFLOP/s: weights' matmul (dequantize + cuBLASLt) vs plain cuBLASLt bf16\n");
            std::printf("%-8s %-6s", "type", "tokens");
            for (const Shape& s : kShapes)
                std::printf(" %12s", (std::to_string(s.rows) + "x" + std::to_string(s.cols)).c_str());
            std::printf("\n");
            const int64_t tokens[2] = {512, 4096};
            for (const int64_t n : tokens) {
                std::printf("%-8s %-6lld", "cublasLt", (long long)n);
                for (const Shape& s : kShapes) {
                    const double t = time_lt_bf16(ex, s.rows, s.cols, n, rng);
                    const double tf = 2.0 * double(s.rows * s.cols) * double(n) / t * 1e-12;
                    std::printf(" %12.0f", tf);
                    if (csv)
                        std::fprintf(csv, "lt_bf16,BF16,%lld,%lld,%lld,0,%.9f,,,%.1f\n", (long long)s.rows,
                                     (long long)s.cols, (long long)n, t, tf);
                }
                std::printf("\n");
            }
            for (const std::string& type : types) {
                double tf[2][4];
                for (int si = 0; si < 4; ++si) {
                    const Shape& s = kShapes[si];
                    const auto w = make_weight(type, s.rows, s.cols, ex, rng);
                    const float* x = random_device(ex, size_t(tokens[1] * s.cols), rng);
                    auto* y = static_cast<float*>(ex.alloc(size_t(tokens[1] * s.rows) * 4, "y"));
                    for (int ni = 0; ni < 2; ++ni) {
                        const int64_t n = tokens[ni];
                        ex.reserve_workspace(w->workspace_bytes(n));
                        w->matmul(ex, x, s.cols, y, s.rows, n);
                        const double t = time_events(ex, 7, [&] { w->matmul(ex, x, s.cols, y, s.rows, n); });
                        tf[ni][si] = 2.0 * double(s.rows * s.cols) * double(n) / t * 1e-12;
                        if (csv)
                            std::fprintf(csv, "gemm,%s,%lld,%lld,%lld,0,%.9f,,,%.1f\n", type.c_str(), (long long)s.rows,
                                         (long long)s.cols, (long long)n, t, tf[ni][si]);
                    }
                    ex.free_all();
                }
                for (int ni = 0; ni < 2; ++ni) {
                    std::printf("%-8s %-6lld", type.c_str(), (long long)tokens[ni]);
                    for (int si = 0; si < 4; ++si) std::printf(" %12.0f", tf[ni][si]);
                    std::printf("\n");
                }
                std::fflush(stdout);
            }
        }
        if (csv) std::fclose(csv);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "quant_ggml_gpu_bench: %s\n", e.what());
        return 1;
    }
    return 0;
}
