// quant_ggml_gpu_bench: the CUDA kernels on the GPU (not a test).
//  1. device copy bandwidth (cudaMemcpy D2D of 1 GiB, bytes read + written, median of 20);
//  2. GEMV (1, 2, 4 and 8 tokens) per type at 8B-model shapes: a CUDA graph of matmuls over enough copies of the
//     weight to defeat the L2 cache, median of 15 replays; GB/s of weight bytes and % of the copy bandwidth;
//     at 1 token also with forced plans (warps per row group, column splits) for tuning;
//  3. GEMM TFLOP/s per type vs a plain cuBLASLt bf16 GEMM of the same shape, per tiling variant, with a "layer"
//     column (an 8B layer: q, o, k, v, gate, up, down = 2 x 4096x4096, 2 x 1024x4096, 2 x 14336x4096,
//     4096x14336, total flops over total time); and the bf16 dequantization alone (GB/s read + written).
// Usage: quant_ggml_gpu_bench [--csv file] [--types T1,T2,...] [--no-gemm] [--no-gemv] [--pdl] (launch with PDL, as
// the engine does; the chain of GEMVs in the graph then overlaps); QG_BENCH_VARIANTS=t1,...
// picks the GEMV rows (labels as printed; default all but k8s2 and k8s4); QG_BENCH_FORMS=N adds the variant bits N
// (1 q8_dp4a, 2 prefetch, 4 plain_pdl, 8 l2_prefetch of 32 KiB per CTA) to the forced-plan rows kK sS;
// QG_BENCH_GEMM=old,auto,r2048o1,...
// the GEMM tilings (old: tiles >= 32M weights, no overlap, the default plan; auto: what matmul picks;
// rNoM: N rows per tile, mNoM: tiles of N MiB of bf16; overlap M = 0/1), QG_BENCH_TOKENS=512,4096 the GEMM
// token counts.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "../cuda/kernels.h"
#include "bench_executor.h"
#include "cuda_weight.h"
#include "ggml_format.h"
#include "ggml_types.h"
#include "imp/dtype.h"
#include "random_weights.h"
#include "request_util.h"
#include "repack.h"

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
    return GgmlFormat().load(test::request_for(src), ex);
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
    for (const auto& w : ws) w->matmul(ex, x, cols, y, rows, n, false);  // warm up (outside the capture)
    cudaGraph_t g;
    cudaGraphExec_t ge;
    QG_TEST_CUDA(cudaStreamBeginCapture(ex.stream(), cudaStreamCaptureModeThreadLocal));
    for (const auto& w : ws) w->matmul(ex, x, cols, y, rows, n, false);
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

std::vector<std::string> split_list(const std::string& s) {
    std::vector<std::string> v;
    for (size_t p = 0; p <= s.size();) {
        const size_t q = std::min(s.find(',', p), s.size());
        if (q > p) v.push_back(s.substr(p, q - p));
        p = q + 1;
    }
    return v;
}

struct GemmVariant {
    std::string label;
    int64_t tile_rows;  // -1: the rule >= 32M weights per tile, computed here; 0: automatic
    int64_t tile_mib;   // > 0: tiles of this many MiB of bf16 (rows from the shape)
    int overlap;
};

GemmVariant parse_gemm_variant(const std::string& l) {
    if (l == "old") return {l, -1, 0, 0};
    if (l == "auto") return {l, 0, 0, 0};
    const size_t o = l.find('o');
    if (l.size() < 4 || (l[0] != 'r' && l[0] != 'm') || o == std::string::npos)
        throw imp::Error("bad QG_BENCH_GEMM label " + l);
    const int64_t v = std::stoll(l.substr(1, o - 1));
    return {l, l[0] == 'r' ? v : 0, l[0] == 'm' ? v : 0, std::stoi(l.substr(o + 1))};
}

// The tile rule: >= 8M outputs and >= 32M weights per tile, rounded up to 128 rows (the "old" variant: the
// baseline of the tiling experiments, as matmul picks it without knobs).
int64_t old_tile_rows(int64_t rows, int64_t cols, int64_t n) {
    const int64_t t = std::max(((int64_t(8) << 20) + n - 1) / n, (int64_t(32) << 20) / cols);
    return std::min((t + 127) / 128 * 128, rows);
}

// The bf16 dequantization alone: a whole 14336x4096 matrix to a fresh buffer (HBM), and the same in tiles of
// 2048 rows into one 16 MiB buffer (L2-sized); GB/s of weight bytes read + bf16 bytes written.
void bench_dequant(CudaTestExecutor& ex, const std::string& type, Rng& rng, FILE* csv) {
    const TypeInfo& t = *find_type(type);
    if (t.type == Type::F32 || t.type == Type::BF16) return;
    const int64_t rows = 14336, cols = 4096, tile = 2048;
    const auto raw = fast_random(t, rows * cols, rng);
    const cuda::DeviceLayout l = cuda::device_layout(t.type, rows, cols);
    std::vector<uint8_t> packed(l.bytes);
    cuda::repack(l, raw.data(), raw.size() / size_t(rows), packed.data());
    void* w = ex.alloc(l.bytes, "w");
    ex.upload(w, packed.data(), l.bytes);
    auto* out = static_cast<uint16_t*>(ex.alloc(size_t(rows * cols) * 2, "out"));
    const double bytes = double(l.bytes) + double(rows * cols) * 2;
    const double full = time_events(ex, 9, [&] { cuda::dequant_bf16(l, w, 0, rows, out, cols, ex.stream()); });
    const double tiled = time_events(ex, 9, [&] {
        for (int64_t r0 = 0; r0 < rows; r0 += tile) cuda::dequant_bf16(l, w, r0, tile, out, cols, ex.stream());
    });
    std::printf("%-8s dequant 14336x4096 to bf16: whole %5.0f GB/s (%.1f us); 2048-row tiles into 16 MiB %5.0f GB/s"
                " (%.1f us)\n",
                type.c_str(), bytes / full * 1e-9, full * 1e6, bytes / tiled * 1e-9, tiled * 1e6);
    if (csv)
        std::fprintf(csv, "dequant,%s,%lld,%lld,0,0,%.9f,%.1f,,\n", type.c_str(), (long long)rows, (long long)cols,
                     full, bytes / full * 1e-9);
    ex.free_all();
}

}  // namespace

int main(int argc, char** argv) {
    std::string csv_path;
    std::vector<std::string> types = {"Q4_0", "Q4_1", "Q8_0", "Q4_K", "Q5_K", "Q6_K", "F16", "BF16", "F32"};
    bool gemm = true, gemv = true, pdl = false;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--csv" && i + 1 < argc) {
            csv_path = argv[++i];
        } else if (a == "--no-gemm") {
            gemm = false;
        } else if (a == "--no-gemv") {
            gemv = false;
        } else if (a == "--pdl") {
            pdl = true;
        } else if (a == "--types" && i + 1 < argc) {
            types.clear();
            types = split_list(argv[++i]);
        }
    }
    try {
        CudaTestExecutor ex;
        ex.set_pdl(pdl);
        FILE* csv = csv_path.empty() ? nullptr : std::fopen(csv_path.c_str(), "w");
        if (csv) std::fprintf(csv, "kind,type,rows,cols,tokens,splits,seconds,gbps,pct_copy,tflops\n");
        const double copy = copy_bandwidth(ex);
        std::printf("device %s, %d SMs; copy bandwidth %.0f GB/s (read + write); PDL %s\n", ex.device_name().c_str(),
                    ex.cuda()->sm_count, copy, ex.cuda()->pdl ? "on" : "off");
        Rng rng{12345};
        std::printf(
            "\nGEMV GB/s (%% of copy), cols: weight shapes rows x cols; t = tokens; forced plans: kK sS = K warps per "
            "row group, S column splits; variants at 1 token: t1q8 = Q8_0 on dp4a (gemv_q8_dp4a), t1pf = both weight "
            "buffers before the wait (gemv_prefetch), t1pp = plain types with PDL (gemv_plain_pdl), t1l2 = 32 KiB "
            "per CTA prefetched into L2 before the wait (gemv_l2_prefetch), t1all = all four\n");
        std::printf("%-5s %-5s", "type", "case");
        for (const Shape& s : kShapes)
            std::printf(" %14s", (std::to_string(s.rows) + "x" + std::to_string(s.cols)).c_str());
        std::printf("\n");
        struct Variant {
            int64_t tokens;
            int splits, kw;
            const char* label;
            int forms = 0;  // 1: q8_dp4a, 2: prefetch, 4: plain_pdl, 8: l2_prefetch 32 KiB (set_gemv_variants)
        };
        const Variant variants[] = {{1, 0, 0, "t1"},      {2, 0, 0, "t2"},      {4, 0, 0, "t4"},     {8, 0, 0, "t8"},
                                    {1, 0, 0, "t1q8", 1}, {1, 0, 0, "t1pf", 2}, {1, 0, 0, "t1pp", 4},
                                    {1, 0, 0, "t1l2", 8}, {1, 0, 0, "t1all", 15},
                                    {1, 1, 8, "k8s1"},    {1, 1, 4, "k4s1"},    {1, 1, 2, "k2s1"},
                                    {1, 1, 1, "k1s1"},    {1, 2, 1, "k1s2"},    {1, 2, 2, "k2s2"},
                                    {1, 2, 4, "k4s2"},    {1, 8, 1, "k1s8"},
                                    {1, 2, 8, "k8s2"},    {1, 4, 8, "k8s4"}};
        // QG_BENCH_VARIANTS: comma-separated labels to run (default: all but k8s2, k8s4).
        const char* only = std::getenv("QG_BENCH_VARIANTS");
        const char* forms_env = std::getenv("QG_BENCH_FORMS");
        const int plan_forms = forms_env && *forms_env ? std::atoi(forms_env) : 0;
        auto wanted = [&](const char* label) {
            if (!only || !*only) return std::strcmp(label, "k8s2") != 0 && std::strcmp(label, "k8s4") != 0;
            const std::string list = std::string(",") + only + ",";
            return list.find(std::string(",") + label + ",") != std::string::npos;
        };
        constexpr int kVariants = int(sizeof(variants) / sizeof(variants[0]));
        for (const std::string& type : types) {
            if (!gemv) break;
            const bool tiled = find_type(type)->block > 1;
            std::vector<std::string> cells[kVariants];
            for (const Shape& s : kShapes) {
                // QG_BENCH_SHAPE=RxC: only that shape (e.g. to profile one kernel; the others print as "-").
                if (const char* only_shape = std::getenv("QG_BENCH_SHAPE");
                    only_shape && *only_shape && std::to_string(s.rows) + "x" + std::to_string(s.cols) != only_shape) {
                    for (int v = 0; v < kVariants; ++v)
                        if (wanted(variants[v].label)) cells[v].push_back("-");
                    continue;
                }
                std::vector<std::unique_ptr<imp::Weight>> ws;
                ws.push_back(make_weight(type, s.rows, s.cols, ex, rng));
                const uint64_t bytes = ws[0]->bytes();
                const size_t copies = size_t(std::clamp<uint64_t>((uint64_t(512) << 20) / bytes + 1, 2, 48));
                while (ws.size() < copies) ws.push_back(cuda::clone_weight(*ws[0], ex));
                const float* x = random_device(ex, size_t(8 * s.cols), rng);
                auto* y = static_cast<float*>(ex.alloc(size_t(8 * s.rows) * 4, "y"));
                for (int v = 0; v < kVariants; ++v) {
                    if ((!tiled && variants[v].splits) || !wanted(variants[v].label)) continue;
                    const int fm = variants[v].forms | (variants[v].kw ? plan_forms : 0);
                    for (const auto& wc : ws) {
                        cuda::set_gemv_plan(*wc, variants[v].splits, variants[v].kw);
                        cuda::set_gemv_variants(*wc, fm & 1, fm & 2, fm & 4, fm & 8 ? 32768 : 0);
                    }
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
            const char* gv = std::getenv("QG_BENCH_GEMM");
            const char* gt = std::getenv("QG_BENCH_TOKENS");
            std::vector<GemmVariant> variants;
            for (const auto& l : split_list(gv && *gv ? gv : "old,auto")) variants.push_back(parse_gemm_variant(l));
            std::vector<int64_t> tokens;
            for (const auto& l : split_list(gt && *gt ? gt : "512,4096")) tokens.push_back(std::stoll(l));
            constexpr int kLayerCount[4] = {2, 2, 2, 1};  // an 8B layer: q/o, k/v, gate/up, down
            std::printf("\nGEMM TFLOP/s: weights' matmul (dequantize + cuBLASLt) per tiling vs plain cuBLASLt bf16\n");
            std::printf("%-8s %-8s %-6s", "type", "tiling", "tokens");
            for (const Shape& s : kShapes)
                std::printf(" %12s", (std::to_string(s.rows) + "x" + std::to_string(s.cols)).c_str());
            std::printf(" %12s\n", "layer");
            const auto layer = [&](const double(&t)[4], int64_t n) {
                double fl = 0, sec = 0;
                for (int si = 0; si < 4; ++si) {
                    fl += kLayerCount[si] * 2.0 * double(kShapes[si].rows * kShapes[si].cols) * double(n);
                    sec += kLayerCount[si] * t[si];
                }
                return fl / sec * 1e-12;
            };
            const auto tflops = [](const Shape& s, int64_t n, double sec) {
                return 2.0 * double(s.rows * s.cols) * double(n) / sec * 1e-12;
            };
            for (const int64_t n : tokens) {
                double t[4];
                std::printf("%-8s %-8s %-6lld", "cublasLt", "-", (long long)n);
                for (int si = 0; si < 4; ++si) {
                    const Shape& s = kShapes[si];
                    t[si] = time_lt_bf16(ex, s.rows, s.cols, n, rng);
                    std::printf(" %12.0f", tflops(s, n, t[si]));
                    if (csv)
                        std::fprintf(csv, "lt_bf16,BF16,%lld,%lld,%lld,0,%.9f,,,%.1f\n", (long long)s.rows,
                                     (long long)s.cols, (long long)n, t[si], tflops(s, n, t[si]));
                }
                std::printf(" %12.0f\n", layer(t, n));
            }
            std::fflush(stdout);
            const int64_t n_max = *std::max_element(tokens.begin(), tokens.end());
            for (const std::string& type : types) {
                const size_t nv = variants.size(), nt = tokens.size();
                std::vector<double> t(nv * nt * 4);  // [variant][tokens][shape] seconds
                for (int si = 0; si < 4; ++si) {
                    const Shape& s = kShapes[si];
                    const auto w = make_weight(type, s.rows, s.cols, ex, rng);
                    const float* x = random_device(ex, size_t(n_max * s.cols), rng);
                    auto* y = static_cast<float*>(ex.alloc(size_t(n_max * s.rows) * 4, "y"));
                    for (size_t vi = 0; vi < nv; ++vi)
                        for (size_t ni = 0; ni < nt; ++ni) {
                            const int64_t n = tokens[ni];
                            const GemmVariant& v = variants[vi];
                            const int64_t rows = v.tile_rows < 0  ? old_tile_rows(s.rows, s.cols, n)
                                                 : v.tile_mib > 0 ? (v.tile_mib << 20) / ((s.cols + 7) / 8 * 16)
                                                                  : v.tile_rows;
                            cuda::set_gemm_tile_rows(*w, rows);
                            cuda::set_gemm_overlap(*w, v.overlap);
                            ex.reserve_workspace(w->workspace_bytes(n));
                            w->matmul(ex, x, s.cols, y, s.rows, n, false);
                            const double sec =
                                time_events(ex, 7, [&] { w->matmul(ex, x, s.cols, y, s.rows, n, false); });
                            t[(vi * nt + ni) * 4 + size_t(si)] = sec;
                            if (csv)
                                std::fprintf(csv, "gemm_%s,%s,%lld,%lld,%lld,0,%.9f,,,%.1f\n", v.label.c_str(),
                                             type.c_str(), (long long)s.rows, (long long)s.cols, (long long)n, sec,
                                             tflops(s, n, sec));
                        }
                    ex.free_all();
                }
                for (size_t ni = 0; ni < nt; ++ni)
                    for (size_t vi = 0; vi < nv; ++vi) {
                        const int64_t n = tokens[ni];
                        double tv[4];
                        std::printf("%-8s %-8s %-6lld", type.c_str(), variants[vi].label.c_str(), (long long)n);
                        for (int si = 0; si < 4; ++si) {
                            tv[si] = t[(vi * nt + ni) * 4 + size_t(si)];
                            std::printf(" %12.0f", tflops(kShapes[si], n, tv[si]));
                        }
                        std::printf(" %12.0f\n", layer(tv, n));
                    }
                bench_dequant(ex, type, rng, csv);
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
