// quant_nvfp4_gpu_bench, prefill part: GEMMs of n tokens on 14336x4096 and 4096x14336 (rows x cols).
//   1. The floor of the FP8 path: FLOPs at 1580 TFLOP/s (the H200's FP8 dense rate cuBLASLt reaches on large
//      shapes) plus the activation quantization's bytes over the copy bandwidth (per tensor: x read twice + codes
//      written; per token: x read once + codes written).
//   2. Every weight-only prefill variant through Weight::matmul (TFLOP/s, ratio to cuBLASLt BF16 with bf16 weight
//      and activations; median of 10 graph replays of 5 matmuls, one eager call first, which is where gemm_tune
//      times the algorithms): FP8 fp8_gemm with per-tensor / per-token units, heuristic or tuned; FP8 bf16 tiles;
//      NVFP4 bf16 tiles; NVFP4 fp8_at_load per tensor / per token.
//   3. (--gemm-parts) The FP8 path's parts alone: the two quantizations; and every algorithm cuBLASLt's heuristic
//      offers for the BF16 GEMM, the FP8 GEMM with scalar scales and with outer-vector scales (fastest first, the
//      heuristic's rank and the configuration).
#include "bench_util.h"
#include "imp/cuda/lt_gemm.h"
#include "wo_kernels.h"
#include "wo_weight.h"

namespace imp::wo_bench {
namespace {

// Seconds per call of fn: one eager call, then a graph of 5 calls, median of 10 replays.
double timed(CudaExecutor& ex, const std::function<void()>& fn) {
    fn();
    ex.synchronize();
    ex.capture_begin();
    for (int i = 0; i < 5; ++i) fn();
    const int g = ex.capture_end();
    return time_median(ex, 10, [&] { ex.replay(g); }) / 5.0;
}

void print_algos(const char* what, int64_t rows, int64_t cols, double flops, const std::vector<cuda::AlgoTime>& t) {
    for (const auto& a : t)
        std::printf("%5lldx%-5lld   %-18s heuristic #%d: %7.1f TFLOP/s  %8.2f us  (%s)\n", (long long)rows,
                    (long long)cols, what, a.index, flops / a.seconds * 1e-12, a.seconds * 1e6, a.config.c_str());
    if (t.empty()) std::printf("%5lldx%-5lld   %-18s refused\n", (long long)rows, (long long)cols, what);
}

void gemm_parts(CudaExecutor& ex, int64_t rows, int64_t cols, int64_t n, const float* x, float* y,
                const uint16_t* wb, const uint16_t* xb, double flops) {
    const CudaHandles& h = *ex.cuda();
    auto* w8 = static_cast<uint8_t*>(ex.alloc(size_t(rows * cols), "w_fp8"));
    auto* x8 = static_cast<uint8_t*>(ex.alloc(size_t(n * cols), "x_fp8"));
    auto* stat = static_cast<float*>(ex.alloc(wo::kStatBytes, "stat"));
    auto* sa = static_cast<float*>(ex.alloc(size_t(rows) * 4 + 256, "a_scales"));
    auto* sb = static_cast<float*>(ex.alloc(size_t(n) * 4 + 256, "b_scales"));
    std::vector<uint8_t> q(size_t(rows * cols), 0x38);
    ex.upload(w8, q.data(), q.size());
    std::vector<float> ones(size_t(std::max(rows, n)), 1.f);
    ex.upload(sa, ones.data(), size_t(rows) * 4);
    ex.upload(sb, ones.data(), size_t(n) * 4);
    const auto st = stream(ex);
    const double qt = timed(ex, [&] { wo::quantize_fp8(x, cols, n, cols, x8, cols, stat, st); });
    const double qr = timed(ex, [&] { wo::quantize_fp8_rows(x, cols, n, cols, x8, cols, sb, st); });
    const double xbytes = double(n * cols) * 4;
    std::printf("%5lldx%-5lld   quantize per tensor %8.2f us (%.0f GB/s of x), per token %8.2f us (%.0f GB/s)\n",
                (long long)rows, (long long)cols, qt * 1e6, xbytes / qt * 1e-9, qr * 1e6, xbytes / qr * 1e-9);
    ex.upload(sb, ones.data(), size_t(n) * 4);
    cuda::GemmCall c = bf16_call(wb, xb, y, rows, cols, n);
    cuda::LtGemm lt("bench parts");
    print_algos("bf16 gemm", rows, cols, flops, lt.time_algos(h, c, 10));
    c.type = cuda::GemmType::FP8;
    c.a = w8;
    c.b = x8;
    c.a_scale = stat + wo::kStatUnit;
    c.b_scale = stat + wo::kStatUnit;
    print_algos("fp8 gemm, scalars", rows, cols, flops, lt.time_algos(h, c, 10));
    c.a_scale = sa;
    c.b_scale = sb;
    c.vec_scales = true;
    print_algos("fp8 gemm, vectors", rows, cols, flops, lt.time_algos(h, c, 10));
}

}  // namespace

void bench_gemm(CudaExecutor& ex, int64_t n, double copy, bool parts) {
    std::printf("\nPrefill GEMM, %lld tokens: TFLOP/s, ratio to cuBLASLt BF16 (bf16 weight and activations)\n",
                (long long)n);
    Rng rng{11};
    for (const auto& [rows, cols] : std::vector<std::pair<int64_t, int64_t>>{{14336, 4096}, {4096, 14336}}) {
        const double flops = 2.0 * double(n) * double(rows) * double(cols), xb_ = double(n * cols);
        std::printf("%5lldx%-5lld floor (FP8 at 1580 TFLOP/s + quantization bytes / copy bw): per tensor %.2f us, "
                    "per token %.2f us\n", (long long)rows, (long long)cols,
                    (flops / 1580e12 + (8 * xb_ + xb_) / copy) * 1e6, (flops / 1580e12 + (4 * xb_ + xb_) / copy) * 1e6);
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
        cuda::LtGemm lt("bench bf16");
        const cuda::GemmCall c = bf16_call(wb, xb, y, rows, cols, n);
        const double bf16 = timed(ex, [&] { lt.run(*ex.cuda(), c); });
        std::printf("%5lldx%-5lld %-28s %7.1f TFLOP/s  %8.2f us\n", (long long)rows, (long long)cols, "cublaslt bf16",
                    flops / bf16 * 1e-12, bf16 * 1e6);
        const RandomWeights rw(rows, cols, rng);
        struct V {
            std::string label;
            std::function<std::unique_ptr<Weight>()> make;
        };
        auto fp8 = [&](fp8::cuda::Settings::Prefill p, bool token, bool tune) {
            fp8::cuda::Settings s;
            s.prefill = p;
            s.fp8_per_token = token;
            s.gemm_tune = tune;
            const float s8 = 0.01f;
            return fp8::cuda::make_weight(ex, rows, cols, rw.q8.data(), &s8, 1, "fp8", s);
        };
        auto nvfp4 = [&](nvfp4::cuda::Settings::Prefill p, bool token, bool tune) {
            nvfp4::cuda::Settings s;
            s.prefill = p;
            s.fp8_per_token = token;
            s.gemm_tune = tune;
            return nvfp4::cuda::make_weight(ex, rows, cols, rw.codes.data(), rw.scales.data(), 0.01f, "nvfp4", s);
        };
        using FP = fp8::cuda::Settings::Prefill;
        using NP = nvfp4::cuda::Settings::Prefill;
        std::vector<V> vs;
        vs.push_back({"fp8 fp8_gemm tensor", [&] { return fp8(FP::Fp8Gemm, false, false); }});
        vs.push_back({"fp8 fp8_gemm tensor tuned", [&] { return fp8(FP::Fp8Gemm, false, true); }});
        vs.push_back({"fp8 fp8_gemm token", [&] { return fp8(FP::Fp8Gemm, true, false); }});
        vs.push_back({"fp8 fp8_gemm token tuned", [&] { return fp8(FP::Fp8Gemm, true, true); }});
        vs.push_back({"fp8 dequant_bf16", [&] { return fp8(FP::DequantBf16, false, false); }});
        vs.push_back({"nvfp4 dequant_bf16", [&] { return nvfp4(NP::DequantBf16, false, false); }});
        vs.push_back({"nvfp4 fp8_at_load tensor", [&] { return nvfp4(NP::Fp8AtLoad, false, false); }});
        vs.push_back({"nvfp4 fp8_at_load token tuned", [&] { return nvfp4(NP::Fp8AtLoad, true, true); }});
        for (const auto& v : vs) {
            const auto w = v.make();
            ex.reserve_workspace(w->workspace_bytes(n));
            const double s = timed(ex, [&] { w->matmul(ex, x, cols, y, rows, n, false); });
            std::printf("%5lldx%-5lld %-28s %7.1f TFLOP/s  %8.2f us  %.2fx BF16%s%s\n", (long long)rows,
                        (long long)cols, v.label.c_str(), flops / s * 1e-12, s * 1e6, bf16 / s,
                        wo::fp8_refusals(*w) > 0 ? "  (refused: bf16 tiles)" : "",
                        wo::fp8_vec_refusals(*w) > 0 ? "  (outer vectors refused: epilogue)" : "");
        }
        if (parts) gemm_parts(ex, rows, cols, n, x, y, wb, xb, flops);
    }
}

}  // namespace imp::wo_bench
