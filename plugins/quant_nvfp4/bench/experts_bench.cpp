// quant_nvfp4_gpu_bench --experts: grouped expert matmuls of prefill on the shapes of Qwen3.6-35B-A3B (256
// experts, top 8; gate|up [1024, 2048] unweighted, down [2048, 512] weighted) and Qwen3-30B-A3B (128 experts, top 8;
// gate|up [1536, 2048], down [2048, 768]) at 128, 512 and 2048 tokens: NVFP4 and
// FP8 (per tensor) through the grouped GEMV (experts_gemm off) and the tensor-core GEMM (auto and every token tile),
// and imp's Q4_K experts (quant_ggml's tensor-core GEMM; the Q4_K_M file of the model runs it) as the reference.
// Per call: time (CUDA graph of one call, median of 15 replays), GB/s of the weight bytes of the experts routed to
// (% of the copy bandwidth), the floor (those bytes / copy bandwidth) and TFLOP/s (2 x pairs x rows x cols).
#include <random>
#include <set>

#include "bench_util.h"
#include "cuda_experts.h"

namespace imp::wo_bench {
namespace {

constexpr int64_t kTopK = 8;

struct Shape {
    const char* name;
    int64_t n_expert, rows, cols;
    bool weighted;
};

// Distinct random experts per token (uniform).
std::vector<int32_t> route(int64_t n_tokens, int64_t n_expert, std::mt19937& rng) {
    std::vector<int32_t> ids;
    std::uniform_int_distribution<int> d(0, int(n_expert) - 1);
    for (int64_t t = 0; t < n_tokens; ++t) {
        std::set<int> s;
        while (int64_t(s.size()) < kTopK) s.insert(d(rng));
        ids.insert(ids.end(), s.begin(), s.end());
    }
    return ids;
}

double call_seconds(CudaExecutor& ex, const ExpertWeights& w, const ExpertMatmul& m) {
    ex.reserve_workspace(w.workspace_bytes(m.n_tokens, m.top_k));
    w.grouped_matmul(ex, m);  // eager first
    ex.synchronize();
    ex.capture_begin();
    w.grouped_matmul(ex, m);
    const int g = ex.capture_end();
    return time_median(ex, 15, [&] { ex.replay(g); });
}

}  // namespace

void bench_experts(CudaExecutor& ex, double copy) {
    std::printf("\nExperts (top %lld): GB/s of the routed experts' weight bytes (%% of copy); floor = those bytes / "
                "copy bandwidth\n", (long long)kTopK);
    Rng rng{11};
    std::mt19937 mt(12);
    for (const Shape& sh : {Shape{"35B gate|up", 256, 1024, 2048, false}, Shape{"35B down", 256, 2048, 512, true},
                            Shape{"30B gate|up", 128, 1536, 2048, false}, Shape{"30B down", 128, 2048, 768, true}}) {
        const int64_t n_expert = sh.n_expert;
        const RandomWeights rw(sh.rows * n_expert, sh.cols, rng);  // one random matrix cut into the experts
        std::vector<uint8_t> k4(size_t(n_expert * sh.rows * sh.cols / 256 * 144));
        rng.fill(k4);
        for (size_t b = 0; b < k4.size(); b += 144) {  // Q4_K: d, dmin as small finite halves
            k4[b + 1] = uint8_t(0x20 | (k4[b + 1] & 0x83));
            k4[b + 3] = uint8_t(0x20 | (k4[b + 3] & 0x83));
        }
        struct Variant {
            std::string name;
            double bytes_per_expert;
            std::unique_ptr<ExpertWeights> w;
        };
        std::vector<Variant> vs;
        const std::vector<float> globals(size_t(n_expert), 0.01f), s8(size_t(n_expert), 0.01f);
        for (const int nt : {0, -1, 2, 4, 8}) {
            const std::string tag = nt == 0 ? "gemv" : nt < 0 ? "gemm auto" : "gemm nt " + std::to_string(nt);
            nvfp4::cuda::Settings ns;
            ns.experts_gemm = nt;
            vs.push_back({"nvfp4 " + tag, double(sh.rows * sh.cols) * 0.5625,
                          nvfp4::cuda::make_experts(ex, n_expert, sh.rows, sh.cols, rw.codes.data(),
                                                    rw.scales.data(), globals.data(), ns)});
            fp8::cuda::Settings fs;
            fs.experts_gemm = nt;
            vs.push_back({"fp8 " + tag, double(sh.rows * sh.cols),
                          fp8::cuda::make_experts(ex, n_expert, sh.rows, sh.cols, rw.q8.data(), s8.data(), 1, fs)});
        }
        std::vector<const uint8_t*> k4p;
        for (int64_t e = 0; e < n_expert; ++e) k4p.push_back(k4.data() + size_t(e * sh.rows * sh.cols / 256 * 144));
        vs.push_back({"q4_k (quant_ggml)", double(sh.rows * sh.cols) * 144 / 256,
                      ggml::cuda::load_experts("q4_k", ggml::Type::Q4_K, n_expert, sh.rows, sh.cols, k4p, ex)});
        for (const int64_t n : {128, 512, 2048}) {
            const auto ids = route(n, n_expert, mt);
            const int64_t n_pairs = n * kTopK;
            const std::set<int32_t> used(ids.begin(), ids.end());
            // down (weighted) reads one activation row per pair, as the MoE block gives it
            const int64_t x_rows = sh.weighted ? n_pairs : n;
            std::vector<float> x(size_t(x_rows * sh.cols), 0.25f), wts(size_t(n_pairs), 1.f / kTopK);
            auto* xd = static_cast<float*>(ex.alloc(x.size() * 4, "x"));
            auto* idd = static_cast<int32_t*>(ex.alloc(ids.size() * 4, "ids"));
            auto* wd = static_cast<float*>(ex.alloc(wts.size() * 4, "weights"));
            auto* yd = static_cast<float*>(ex.alloc(size_t(n_pairs * sh.rows) * 4, "y"));
            ex.upload(xd, x.data(), x.size() * 4);
            ex.upload(idd, ids.data(), ids.size() * 4);
            ex.upload(wd, wts.data(), wts.size() * 4);
            ExpertMatmul m;
            m.x = xd;
            m.x_stride = sh.cols;
            m.x_per_slot = sh.weighted;
            m.ids = idd;
            m.weights = sh.weighted ? wd : nullptr;
            m.n_tokens = n;
            m.top_k = kTopK;
            m.y = yd;
            m.y_stride = sh.rows;
            m.accumulate = sh.weighted;
            const double flop = 2.0 * double(n_pairs) * double(sh.rows * sh.cols);
            for (const auto& v : vs) {
                const double s = call_seconds(ex, *v.w, m), bytes = v.bytes_per_expert * double(used.size());
                std::printf("%-11s %4lldx%-4lld t %4lld (%3zu experts) %-18s %9.1f us %6.0f GB/s (%3.0f%%) floor %7.1f us "
                            "%6.1f TFLOP/s\n", sh.name, (long long)sh.rows, (long long)sh.cols, (long long)n,
                            used.size(), v.name.c_str(), s * 1e6, bytes / s * 1e-9, 100.0 * bytes / s / copy,
                            bytes / copy * 1e6, flop / s * 1e-12);
            }
        }
    }
}

}  // namespace imp::wo_bench
