// quant_nvfp4_gpu_bench: the weight-only CUDA kernels of quant_nvfp4 and quant_fp8 on the GPU (not a test).
//  1. device copy bandwidth (cudaMemcpy D2D of 1 GiB, bytes read + written, median of 20);
//  2. GEMV (1, 2, 4, 8 tokens) on 4096x14336 and 14336x4096 (rows x cols): NVFP4, FP8 (per tensor) and imp's BF16
//     GEMV (quant_ggml); a CUDA graph of one matmul per copy of the weight (enough copies to defeat the L2 cache),
//     median of 15 replays. GB/s of weight bytes read (NVFP4: codes + scales), % of the copy bandwidth, speed-up
//     over BF16, and the floor: weight bytes / the copy bandwidth measured in 1. Both load plans (gemv = regs |
//     async, the plugins' setting) and every row-group plan (kw = warps per row group, the setting gemv_kw; auto =
//     what the kernels pick) at every token count;
//  3. prefill GEMM TFLOP/s at 16 and 512 tokens on the same shapes: cuBLASLt BF16 (bf16 weight and activations),
//     FP8 (cuBLASLt FP8, activations quantized per tensor; and bf16 tiles), NVFP4 (bf16 tiles; FP8 copy at load);
//     ratio to BF16; "(refused: bf16 tiles)" when cuBLASLt refused the FP8 GEMM. Median of 10 graph replays of 5
//     matmuls.
// Usage: quant_nvfp4_gpu_bench [--no-gemv] [--no-gemm]
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "cuda_weight.h"
#include "exec/cuda/cuda_executor.h"
#include "fp8_cuda.h"
#include "ggml_types.h"
#include "imp/cuda/check.h"
#include "lt_gemm.h"
#include "nvfp4_cuda.h"
#include "wo_weight.h"

using namespace imp;

namespace {

struct Rng {
    uint64_t s;
    uint64_t next() {
        uint64_t z = (s += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    void fill(std::vector<uint8_t>& v) {
        for (size_t i = 0; i < v.size(); i += 8) {
            const uint64_t r = next();
            std::memcpy(&v[i], &r, std::min<size_t>(8, v.size() - i));
        }
    }
};

cudaStream_t stream(CudaExecutor& ex) { return static_cast<cudaStream_t>(ex.cuda()->stream); }

// Median seconds of fn() over reps runs.
double time_median(CudaExecutor& ex, int reps, const std::function<void()>& fn) {
    cudaEvent_t a, b;
    IMP_CUDA_CHECK(cudaEventCreate(&a));
    IMP_CUDA_CHECK(cudaEventCreate(&b));
    std::vector<double> t;
    for (int i = 0; i < reps + 1; ++i) {
        IMP_CUDA_CHECK(cudaEventRecord(a, stream(ex)));
        fn();
        IMP_CUDA_CHECK(cudaEventRecord(b, stream(ex)));
        IMP_CUDA_CHECK(cudaEventSynchronize(b));
        float ms = 0;
        IMP_CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
        if (i > 0) t.push_back(ms * 1e-3);  // the first run warms up
    }
    cudaEventDestroy(a);
    cudaEventDestroy(b);
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
}

double copy_bandwidth(CudaExecutor& ex) {
    const size_t n = size_t(1) << 30;
    void* a = ex.alloc(n, "copy_a");
    void* b = ex.alloc(n, "copy_b");
    const double s = time_median(ex, 20, [&] { IMP_CUDA_CHECK(cudaMemcpyAsync(b, a, n, cudaMemcpyDeviceToDevice, stream(ex))); });
    return 2.0 * double(n) / s;
}

// A weight format for the bench: its name, bytes read per GEMV, and a maker of one fresh copy.
struct Format {
    std::string name;
    double read_bytes;
    std::function<std::unique_ptr<Weight>()> make;
};

std::vector<Format> formats(CudaExecutor& ex, int64_t rows, int64_t cols, Rng& rng, int kw, bool async,
                            bool with_bf16) {
    auto codes = std::make_shared<std::vector<uint8_t>>(size_t(rows * cols / 2));
    auto scales = std::make_shared<std::vector<uint8_t>>(size_t(rows * cols / 16));
    auto q8 = std::make_shared<std::vector<uint8_t>>(size_t(rows * cols));
    auto bf = std::make_shared<std::vector<uint8_t>>(size_t(rows * cols * 2));
    rng.fill(*codes);
    rng.fill(*scales);
    rng.fill(*q8);
    for (auto& s : *scales) s = uint8_t(0x30 | (s & 0x0F));   // 2^-1 .. 2^1: finite, normal
    for (auto& v : *q8) v = uint8_t(v & 0xBF);                  // below 2^8: finite
    for (size_t i = 0; i < bf->size(); i += 2) (*bf)[i + 1] = uint8_t(0x3C | ((*bf)[i + 1] & 0x81));  // |v| ~ 1e-2
    nvfp4::cuda::Settings ns;
    ns.gemv_kw = kw;
    ns.gemv_async = async;
    fp8::cuda::Settings fs;
    fs.gemv_kw = kw;
    fs.gemv_async = async;
    fs.prefill = fp8::cuda::Settings::Prefill::Fp8Gemm;
    std::vector<Format> f;
    f.push_back({"nvfp4", double(rows * cols / 2 + rows * cols / 16), [=, &ex] {
                     return nvfp4::cuda::make_weight(ex, rows, cols, codes->data(), scales->data(), 0.01f, "nvfp4", ns);
                 }});
    const float s8 = 0.01f;
    f.push_back({"fp8", double(rows * cols), [=, &ex] {
                     return fp8::cuda::make_weight(ex, rows, cols, q8->data(), &s8, 1, "fp8", fs);
                 }});
    if (with_bf16)
        f.push_back({"bf16", double(rows * cols * 2), [=, &ex] {
                         return ggml::cuda::load_weight("bf16", ggml::Type::BF16, cols, {{bf->data(), rows}},
                                                        uint64_t(cols) * 2, ex);
                     }});
    return f;
}

// Seconds per matmul of n tokens over a graph of one matmul per copy.
double gemv_seconds(CudaExecutor& ex, const std::vector<std::unique_ptr<Weight>>& ws, const float* x, float* y,
                    int64_t n) {
    const int64_t rows = ws[0]->rows(), cols = ws[0]->cols();
    ex.capture_begin();
    for (const auto& w : ws) w->matmul(ex, x, cols, y, rows, n, false);
    const int g = ex.capture_end();
    return time_median(ex, 15, [&] { ex.replay(g); }) / double(ws.size());
}

void bench_gemv(CudaExecutor& ex, double copy) {
    std::printf("\nGEMV: GB/s of weight bytes (%% of copy), x = speed-up over BF16; floor = bytes / copy bandwidth\n");
    Rng rng{7};
    for (const auto& [rows, cols] : std::vector<std::pair<int64_t, int64_t>>{{4096, 14336}, {14336, 4096}}) {
        auto* x = static_cast<float*>(ex.alloc(size_t(8 * cols) * 4, "x"));
        auto* y = static_cast<float*>(ex.alloc(size_t(8 * rows) * 4, "y"));
        std::vector<float> xh(size_t(8 * cols), 0.5f);
        ex.upload(x, xh.data(), xh.size() * 4);
        double bf16_s[9] = {};
        for (const bool async : {false, true})
            for (const int kw : {0, 1, 2, 4, 8}) {
                const bool ref = !async && kw == 0;
                auto fs = formats(ex, rows, cols, rng, kw, async, ref);
                std::reverse(fs.begin(), fs.end());  // BF16 first (the reference)
                for (const auto& f : fs) {
                    std::vector<std::unique_ptr<Weight>> ws;
                    const int copies = int(std::max(2.0, 512e6 / f.read_bytes));
                    for (int i = 0; i < copies; ++i) ws.push_back(f.make());
                    for (const int64_t t : {1, 2, 4, 8}) {
                        const double s = gemv_seconds(ex, ws, x, y, t), gbps = f.read_bytes / s;
                        if (f.name == "bf16") bf16_s[t] = s;
                        const char* plan = f.name == "bf16" ? "" : (async ? "async" : "regs");
                        std::printf("%5lldx%-5lld %-6s %-5s kw %-4s t %lld: %8.2f us %6.0f GB/s (%3.0f%%)  floor %6.2f us",
                                    (long long)rows, (long long)cols, f.name.c_str(), plan,
                                    kw ? std::to_string(kw).c_str() : "auto", (long long)t, s * 1e6, gbps * 1e-9,
                                    100.0 * gbps / copy, f.read_bytes / copy * 1e6);
                        if (bf16_s[t] > 0 && f.name != "bf16") std::printf("  %.2fx BF16", bf16_s[t] / s);
                        std::printf("\n");
                    }
                }
            }
    }
}

void bench_gemm(CudaExecutor& ex, int64_t n) {
    std::printf("\nPrefill GEMM, %lld tokens: TFLOP/s, ratio to cuBLASLt BF16 (bf16 weight and activations)\n",
                (long long)n);
    Rng rng{11};
    for (const auto& [rows, cols] : std::vector<std::pair<int64_t, int64_t>>{{14336, 4096}, {4096, 14336}}) {
        const double flops = 2.0 * double(n) * double(rows) * double(cols);
        auto* x = static_cast<float*>(ex.alloc(size_t(n * cols) * 4, "x"));
        auto* y = static_cast<float*>(ex.alloc(size_t(n * rows) * 4, "y"));
        std::vector<float> xh(size_t(n * cols));
        for (size_t i = 0; i < xh.size(); ++i) xh[i] = float(int(i % 17) - 8) * 0.125f;
        ex.upload(x, xh.data(), xh.size() * 4);
        auto* wb = static_cast<uint16_t*>(ex.alloc(size_t(rows * cols) * 2, "w_bf16"));
        auto* xb = static_cast<uint16_t*>(ex.alloc(size_t(n * cols) * 2, "x_bf16"));
        std::vector<uint16_t> h(size_t(rows * cols), 0x3C00);
        ex.upload(wb, h.data(), h.size() * 2);
        ex.upload(xb, h.data(), size_t(n * cols) * 2);
        wo::LtGemm lt("bench bf16");
        wo::GemmCall c;
        c.a = wb;
        c.lda = cols;
        c.b = xb;
        c.ldb = cols;
        c.d = y;
        c.ldd = rows;
        c.m = rows;
        c.n = n;
        c.k = cols;
        auto timed = [&](const std::function<void()>& fn) {
            fn();
            ex.synchronize();
            ex.capture_begin();
            for (int i = 0; i < 5; ++i) fn();
            const int g = ex.capture_end();
            return time_median(ex, 10, [&] { ex.replay(g); }) / 5.0;
        };
        const double bf16 = timed([&] { lt.run(*ex.cuda(), c); });
        std::printf("%5lldx%-5lld %-22s %7.1f TFLOP/s\n", (long long)rows, (long long)cols, "cublaslt bf16",
                    flops / bf16 * 1e-12);
        auto fs = formats(ex, rows, cols, rng, 0, false, false);
        struct V {
            std::string label;
            std::function<std::unique_ptr<Weight>()> make;
        };
        std::vector<V> vs;
        vs.push_back({"fp8 fp8-gemm", fs[1].make});
        vs.push_back({"fp8 bf16-tiles", [&] {
                          std::vector<uint8_t> q(size_t(rows * cols), 0x38);
                          const float s = 0.01f;
                          fp8::cuda::Settings st;
                          st.prefill = fp8::cuda::Settings::Prefill::DequantBf16;
                          return fp8::cuda::make_weight(ex, rows, cols, q.data(), &s, 1, "fp8", st);
                      }});
        vs.push_back({"nvfp4 bf16-tiles", fs[0].make});
        vs.push_back({"nvfp4 fp8-at-load", [&] {
                          std::vector<uint8_t> codes(size_t(rows * cols / 2), 0x53), sc(size_t(rows * cols / 16), 0x38);
                          nvfp4::cuda::Settings st;
                          st.prefill = nvfp4::cuda::Settings::Prefill::Fp8AtLoad;
                          return nvfp4::cuda::make_weight(ex, rows, cols, codes.data(), sc.data(), 0.01f, "nvfp4", st);
                      }});
        for (const auto& v : vs) {
            const auto w = v.make();
            ex.reserve_workspace(w->workspace_bytes(n));
            const double s = timed([&] { w->matmul(ex, x, cols, y, rows, n, false); });
            std::printf("%5lldx%-5lld %-22s %7.1f TFLOP/s  %.2fx BF16%s\n", (long long)rows, (long long)cols,
                        v.label.c_str(), flops / s * 1e-12, bf16 / s,
                        wo::fp8_refusals(*w) > 0 ? "  (refused: bf16 tiles)" : "");
        }
    }
}

}  // namespace

int main(int argc, char** argv) {
    bool gemv = true, gemm = true;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--no-gemv") == 0) gemv = false;
        if (std::strcmp(argv[i], "--no-gemm") == 0) gemm = false;
    }
    try {
        CudaExecutor ex;
        const double copy = copy_bandwidth(ex);
        std::printf("device %s, %d SMs; copy bandwidth %.0f GB/s (read + write)\n", ex.name().c_str(),
                    ex.cuda()->sm_count, copy * 1e-9);
        if (gemv) bench_gemv(ex, copy);
        if (gemm)
            for (const int64_t n : {16, 512}) bench_gemm(ex, n);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "quant_nvfp4_gpu_bench: %s\n", e.what());
        return 1;
    }
    return 0;
}
