// quant_nvfp4_gpu_bench: the weight-only CUDA kernels of quant_nvfp4 and quant_fp8 on the GPU (not a test).
//  1. device copy bandwidth (cudaMemcpy D2D of 1 GiB, bytes read + written, median of 20);
//  2. GEMV (1, 2, 4, 8 tokens) on 4096x14336 and 14336x4096 (rows x cols): NVFP4, FP8 (per tensor) and imp's BF16
//     GEMV (quant_ggml); a CUDA graph of one matmul per copy of the weight (enough copies to defeat the L2 cache),
//     median of 15 replays. GB/s of weight bytes read (NVFP4: codes + scales), % of the copy bandwidth, speed-up
//     over BF16, and the floor: weight bytes / the copy bandwidth measured in 1. Every load plan (gemv = regs |
//     regs2 | async | stream | mma, the plugins' setting) and every row-group plan (kw = warps per row group, the setting gemv_kw;
//     auto = what the kernels pick; --gemv-auto: kw auto only) at every token count; then 2-8 tokens through the
//     FP8 GEMM instead (gemv_max_tokens 1: FP8 weights, NVFP4's FP8 copy);
//  3. prefill GEMMs at 16 and 512 tokens on the same shapes (gemm_bench.cpp);
//  4. with --experts: the grouped expert matmuls of prefill on Qwen3.6-35B-A3B's shapes (experts_bench.cpp).
//  --gemv-shape RxC: the GEMV (and the prefill GEMMs) on that one shape instead, e.g. 248320x2048 (the
//     Qwen3.6-35B-A3B LM head, where `gemv = stream` applies) or 12288x2048 (its GDN in_proj_qkvz).
//  --gemv-plan P: the GEMV of that load plan only (regs also runs the int8 kernel at 8, 16 and 32 warps a CTA:
//     nvfp4q8, nvfp4q8w16, nvfp4q8w32; gemv_int8_warps).
// Usage: quant_nvfp4_gpu_bench [--no-gemv] [--gemv-auto] [--gemv-plan P] [--gemv-shape RxC] [--no-gemm]
//        [--gemm-parts] [--gemm-tokens N] [--experts]
#include "bench_util.h"

using namespace imp;
using namespace imp::wo_bench;

namespace {

// Seconds per matmul of n tokens over a graph of one matmul per copy.
double gemv_seconds(CudaExecutor& ex, const std::vector<std::unique_ptr<Weight>>& ws, const float* x, float* y,
                    int64_t n) {
    const int64_t rows = ws[0]->rows(), cols = ws[0]->cols();
    ex.reserve_workspace(ws[0]->workspace_bytes(n));
    for (const auto& w : ws) w->matmul(ex, x, cols, y, rows, n, false);  // eager first (gemm_tune times here)
    ex.synchronize();
    ex.capture_begin();
    for (const auto& w : ws) w->matmul(ex, x, cols, y, rows, n, false);
    const int g = ex.capture_end();
    return time_median(ex, 15, [&] { ex.replay(g); }) / double(ws.size());
}

// 2-8 tokens through the FP8 GEMM instead of the GEMV (gemv_max_tokens 1, per-token units, tuned): FP8 weights,
// and NVFP4 through its FP8 copy (fp8_at_load; the bytes read are the copy's).
void gemm_small(CudaExecutor& ex, int64_t rows, int64_t cols, Rng& rng, const float* x, float* y, double copy,
                const double (&bf16_s)[9]) {
    const RandomWeights rw(rows, cols, rng);
    for (const bool nv : {false, true}) {
        std::vector<std::unique_ptr<Weight>> ws;
        const double bytes = double(rows * cols);
        for (int i = 0; i < int(std::max(2.0, 512e6 / bytes)); ++i) {
            if (nv) {
                nvfp4::cuda::Settings s;
                s.prefill = nvfp4::cuda::Settings::Prefill::Fp8AtLoad;
                s.fp8_per_token = s.gemm_tune = true;
                s.gemv_max_tokens = 1;
                ws.push_back(nvfp4::cuda::make_weight(ex, rows, cols, rw.codes.data(), rw.scales.data(), 0.01f, "nvfp4", s));
            } else {
                fp8::cuda::Settings s;
                s.prefill = fp8::cuda::Settings::Prefill::Fp8Gemm;
                s.fp8_per_token = s.gemm_tune = true;
                s.gemv_max_tokens = 1;
                const float s8 = 0.01f;
                ws.push_back(fp8::cuda::make_weight(ex, rows, cols, rw.q8.data(), &s8, 1, "fp8", s));
            }
        }
        for (const int64_t t : {2, 4, 8}) {
            const double s = gemv_seconds(ex, ws, x, y, t), gbps = bytes / s;
            std::printf("%5lldx%-5lld %-6s fp8 gemm (gemv_max_tokens 1) t %lld: %8.2f us %6.0f GB/s (%3.0f%%)",
                        (long long)rows, (long long)cols, nv ? "nvfp4" : "fp8", (long long)t, s * 1e6, gbps * 1e-9,
                        100.0 * gbps / copy);
            if (bf16_s[t] > 0) std::printf("  %.2fx BF16", bf16_s[t] / s);  // the regs plan's run measured BF16
            std::printf("\n");
        }
    }
}

void bench_gemv(CudaExecutor& ex, double copy, bool auto_only,
                const std::vector<std::pair<int64_t, int64_t>>& shapes, int only_plan) {
    std::printf("\nGEMV: GB/s of weight bytes (%% of copy), x = speed-up over BF16; floor = bytes / copy bandwidth\n");
    Rng rng{7};
    for (const auto& [rows, cols] : shapes) {
        auto* x = static_cast<float*>(ex.alloc(size_t(8 * cols) * 4, "x"));
        auto* y = static_cast<float*>(ex.alloc(size_t(8 * rows) * 4, "y"));
        std::vector<float> xh(size_t(8 * cols), 0.5f);
        ex.upload(x, xh.data(), xh.size() * 4);
        double bf16_s[9] = {};
        for (const int plan : {0, 2, 1, 3, 4})  // regs, regs2, async, stream, mma
            for (const int kw : {0, 1, 2, 4, 8}) {
                const bool ref = plan == 0 && kw == 0;
                if ((auto_only || plan == 3) && kw != 0) continue;  // stream: no row-group plan
                if (only_plan >= 0 && plan != only_plan) continue;
                auto fs = formats(ex, rows, cols, rng, kw, plan, ref);
                std::reverse(fs.begin(), fs.end());  // BF16 first (the reference)
                for (const auto& f : fs) {
                    std::vector<std::unique_ptr<Weight>> ws;
                    const int copies = int(std::max(2.0, 512e6 / f.read_bytes));
                    for (int i = 0; i < copies; ++i) ws.push_back(f.make());
                    for (const int64_t t : {1, 2, 4, 8}) {
                        // gemv_int8_warps applies to one-token calls: the others would repeat nvfp4q8's kernel
                        if (t > 1 && f.name.rfind("nvfp4q8w", 0) == 0) continue;
                        const double s = gemv_seconds(ex, ws, x, y, t), gbps = f.read_bytes / s;
                        if (f.name == "bf16") bf16_s[t] = s;
                        const char* pn = f.name == "bf16" ? ""
                                         : plan == 1  ? "async"
                                         : plan == 2  ? "regs2"
                                         : plan == 3  ? "stream"
                                         : plan == 4  ? "mma"
                                                      : "regs";
                        std::printf("%5lldx%-5lld %-10s %-6s kw %-4s t %lld: %8.2f us %6.0f GB/s (%3.0f%%)  floor %6.2f us",
                                    (long long)rows, (long long)cols, f.name.c_str(), pn,
                                    kw ? std::to_string(kw).c_str() : "auto", (long long)t, s * 1e6, gbps * 1e-9,
                                    100.0 * gbps / copy, f.read_bytes / copy * 1e6);
                        if (bf16_s[t] > 0 && f.name != "bf16") std::printf("  %.2fx BF16", bf16_s[t] / s);
                        std::printf("\n");
                    }
                }
            }
        gemm_small(ex, rows, cols, rng, x, y, copy, bf16_s);
    }
}

}  // namespace

int main(int argc, char** argv) {
    bool gemv = true, gemm = true, parts = false, auto_only = false, experts = false;
    int only_plan = -1;  // --gemv-plan: regs | regs2 | async | stream | mma
    std::vector<int64_t> tokens = {16, 512};
    std::vector<std::pair<int64_t, int64_t>> shapes = {{4096, 14336}, {14336, 4096}};
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--no-gemv") == 0) gemv = false;
        if (std::strcmp(argv[i], "--no-gemm") == 0) gemm = false;
        if (std::strcmp(argv[i], "--gemm-parts") == 0) parts = true;
        if (std::strcmp(argv[i], "--gemv-auto") == 0) auto_only = true;
        if (std::strcmp(argv[i], "--experts") == 0) experts = true;
        if (std::strcmp(argv[i], "--gemm-tokens") == 0 && i + 1 < argc) tokens = {std::atoll(argv[++i])};
        if (std::strcmp(argv[i], "--gemv-plan") == 0 && i + 1 < argc) {
            const std::string pl = argv[++i];
            only_plan = pl == "regs" ? 0 : pl == "async" ? 1 : pl == "regs2" ? 2 : pl == "stream" ? 3 : pl == "mma" ? 4 : -2;
            if (only_plan == -2) {
                std::fprintf(stderr, "quant_nvfp4_gpu_bench: --gemv-plan wants regs, regs2, async, stream or mma, got '%s'\n",
                             pl.c_str());
                return 2;
            }
        }
        if (std::strcmp(argv[i], "--gemv-shape") == 0 && i + 1 < argc) {
            long long r = 0, c = 0;
            if (std::sscanf(argv[++i], "%lldx%lld", &r, &c) != 2 || r < 1 || c < 1 || c % 32 != 0) {
                std::fprintf(stderr, "quant_nvfp4_gpu_bench: --gemv-shape wants ROWSxCOLS (COLS a multiple of 32), got '%s'\n",
                             argv[i]);
                return 2;
            }
            shapes = {{r, c}};
        }
    }
    try {
        CudaExecutor ex;
        const double copy = copy_bandwidth(ex);
        std::printf("device %s, %d SMs; copy bandwidth %.0f GB/s (read + write)\n", ex.name().c_str(),
                    ex.cuda()->sm_count, copy * 1e-9);
        if (gemv) bench_gemv(ex, copy, auto_only, shapes, only_plan);
        if (gemm)
            for (const int64_t n : tokens) bench_gemm(ex, n, copy, parts);
        if (experts) bench_experts(ex, copy);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "quant_nvfp4_gpu_bench: %s\n", e.what());
        return 1;
    }
    return 0;
}
