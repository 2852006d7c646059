// quant_ggml: the host side of the grouped expert GEMM (cuda/experts_kernels.h): the token tile it picks for a
// weight's shape and the shared memory of a device, the bound on the groups it launches over, and the bf16
// reference its GPU test (tests_gpu/cuda_experts_gemm_test.cpp) compares with: within the bound that bf16 rounding
// of both operands allows of the exact reference, and not equal to it (the rounding is really applied); the settings
// that choose the GEMM, its tiles and CTAs per SM, and the expert GEMV's warps (ggml_settings.h).
#include <catch2/catch.hpp>
#include <random>

#include "experts_gemm_reference.h"
#include "experts_kernels.h"
#include "ggml_settings.h"
#include "imp/registry.h"
#include "repack.h"

using namespace imp::ggml;
using namespace imp::ggml::test;

TEST_CASE("quant_ggml experts GEMM: token tiles per group from the staged activations' size", "[experts][gemm]") {
    const int64_t smem = 227 * 1024 - 2048;  // an H100 / H200
    // Qwen3-30B-A3B: gate|up [1536, 2048] Q4_K -> 32 tokens (64 x 4128 B would not fit); down [2048, 768] -> 64.
    CHECK(cuda::experts_gemm_nt(cuda::device_layout(Type::Q4_K, 1536, 2048), smem) == 4);
    CHECK(cuda::experts_gemm_nt(cuda::device_layout(Type::Q6_K, 2048, 768), smem) == 8);
    CHECK(cuda::experts_gemm_nt(cuda::device_layout(Type::Q8_0, 2048, 768), smem) == 8);
    CHECK(cuda::experts_gemm_nt(cuda::device_layout(Type::BF16, 2048, 1000), smem) == 8);  // 1024 staged columns
    CHECK(cuda::experts_gemm_nt(cuda::device_layout(Type::Q4_K, 64, 4096), smem) == 2);
    // Mixtral's down [4096, 14336]: not even 16 tokens fit -> the grouped GEMV.
    CHECK(cuda::experts_gemm_nt(cuda::device_layout(Type::Q4_K, 4096, 14336), smem) == 0);
    // No GEMM for the fp32 / fp16 experts; a small device takes smaller tiles.
    CHECK(cuda::experts_gemm_nt(cuda::device_layout(Type::F32, 64, 256), smem) == 0);
    CHECK(cuda::experts_gemm_nt(cuda::device_layout(Type::F16, 64, 256), smem) == 0);
    CHECK(cuda::experts_gemm_nt(cuda::device_layout(Type::Q4_K, 1536, 2048), 99 * 1024) == 2);
    // experts_gemm_tiles caps the tiles: at most max_nt of those that fit.
    CHECK(cuda::experts_gemm_nt(cuda::device_layout(Type::Q6_K, 2048, 768), smem, 2) == 2);
    CHECK(cuda::experts_gemm_nt(cuda::device_layout(Type::Q6_K, 2048, 768), smem, 4) == 4);
    CHECK(cuda::experts_gemm_nt(cuda::device_layout(Type::Q4_K, 1536, 2048), smem, 8) == 4);
    CHECK(cuda::experts_gemm_nt(cuda::device_layout(Type::Q4_K, 4096, 14336), smem, 2) == 0);
    CHECK_FALSE(cuda::experts_gemm_supported(Type::F32));
    CHECK(cuda::experts_gemm_supported(Type::Q5_K));
    CHECK(cuda::experts_gemm_supported(Type::BF16));
}

TEST_CASE("quant_ggml experts GEMM: the group bound covers every routing and only falls with the group size",
          "[experts][gemm]") {
    for (const int64_t n_pairs : {1, 7, 64, 65, 4096})
        for (const int64_t n_expert : {1, 16, 128}) {
            INFO(n_pairs << " pairs, " << n_expert << " experts");
            int64_t last = cuda::experts_max_groups(n_pairs, n_expert, 1);
            CHECK(last == n_pairs);
            for (const int64_t g : {8, 16, 32, 64}) {
                const int64_t b = cuda::experts_max_groups(n_pairs, n_expert, g);
                // The worst routing: every expert (and the out-of-range bucket) holds a partial group.
                const int64_t buckets = std::min(n_expert + 1, n_pairs);
                CHECK(b >= std::min(n_pairs, (n_pairs - buckets) / g + buckets));
                CHECK(b <= last);
                last = b;
            }
        }
}

TEST_CASE("quant_ggml experts GEMM: the bf16 reference is within bf16 rounding of the exact one", "[experts][gemm]") {
    std::mt19937 rng(4242);
    for (const char* type : {"Q4_K", "Q6_K", "Q8_0", "BF16"}) {
        const RandomExperts w = random_experts(type, 4, 24, 512, rng);
        const RandomExperts wb = bf16_weights(w);
        const int64_t n_tokens = 6, top_k = 2;
        const Routing rt = random_routing(n_tokens, top_k, 4, false, rng);
        for (const bool glu : {false, true}) {
            INFO(type << (glu ? ", [gate | up] input" : ""));
            const int64_t xs = glu ? 2 * 512 + 8 : 512 + 8, n_rows = n_tokens * top_k;
            const std::vector<float> x = random_floats(size_t(n_rows * xs), rng);
            const std::vector<float> xb = bf16_inputs(x, xs, n_rows, 512, glu);
            const std::vector<float> xe = glu ? [&] {
                std::vector<float> r(size_t(n_rows * 512));
                for (int64_t t = 0; t < n_rows; ++t)
                    for (int64_t c = 0; c < 512; ++c) {
                        const float g = x[size_t(t * xs + c)], u = x[size_t(t * xs + 512 + c)];
                        r[size_t(t * 512 + c)] = g / (1.f + std::exp(-g)) * u;
                    }
                return r;
            }() : x;
            const PairDots exact = pair_dots(w, xe, glu ? 512 : xs, true, rt, n_tokens, top_k);
            const PairDots rounded = pair_dots(wb, xb, 512, true, rt, n_tokens, top_k);
            double num = 0, den = 0, worst = 0;
            for (size_t i = 0; i < exact.dot.size(); ++i) {
                const double d = rounded.dot[i] - exact.dot[i];
                num += d * d;
                den += exact.dot[i] * exact.dot[i];
                // Each product moves by at most (1 + 2^-8)^2 - 1 < 2^-7 of its magnitude.
                worst = std::max(worst, std::fabs(d) / (exact.mag[i] * 0.0079));
            }
            CHECK(worst <= 1.0);
            CHECK(num > 0);                            // the operands were rounded
            CHECK(std::sqrt(num / den) < 2e-2);        // ~2^-9 per operand, random signs
        }
    }
}

TEST_CASE("quant_ggml settings: experts_gemm_tokens and experts_gemv_warps", "[experts][gemm]") {
    imp::Registry reg;
    reg.set_current_plugin("quant_ggml");
    declare_ggml_settings(reg);
    const GgmlSettings d = ggml_settings(&reg.settings("quant_ggml"));
    CHECK(d.experts_gemm_tokens == 64);  // prefill takes the grouped GEMM (pp512 2.35x on the 30B-A3B, H200)
    CHECK(d.experts_gemv_warps == 0);
    reg.configure("quant_ggml", "experts_gemm_tokens", int64_t(0));
    CHECK(ggml_settings(&reg.settings("quant_ggml")).experts_gemm_tokens == 0);
    reg.configure("quant_ggml", "experts_gemm_tokens", int64_t(64));
    reg.configure("quant_ggml", "experts_gemv_warps", int64_t(4));
    const GgmlSettings s = ggml_settings(&reg.settings("quant_ggml"));
    CHECK(s.experts_gemm_tokens == 64);
    CHECK(s.experts_gemv_warps == 4);
    CHECK_THROWS_WITH(reg.configure("quant_ggml", "experts_gemm_tokens", int64_t(-1)),
                      Catch::Contains("experts_gemm_tokens"));
    CHECK_THROWS_WITH(reg.configure("quant_ggml", "experts_gemv_warps", int64_t(16)),
                      Catch::Contains("experts_gemv_warps"));
    reg.configure("quant_ggml", "experts_gemv_warps", int64_t(3));
    CHECK_THROWS_WITH(ggml_settings(&reg.settings("quant_ggml")),
                      Catch::Contains("experts_gemv_warps = 3") && Catch::Contains("0, 1, 2, 4 or 8"));
}

TEST_CASE("quant_ggml settings: experts_gemm_tiles and experts_gemm_ctas", "[experts][gemm]") {
    imp::Registry reg;
    reg.set_current_plugin("quant_ggml");
    declare_ggml_settings(reg);
    const GgmlSettings d = ggml_settings(&reg.settings("quant_ggml"));
    CHECK(d.experts_gemm_tiles == 0);
    CHECK(d.experts_gemm_ctas == 1);
    reg.configure("quant_ggml", "experts_gemm_tiles", int64_t(2));
    reg.configure("quant_ggml", "experts_gemm_ctas", int64_t(2));
    const GgmlSettings s = ggml_settings(&reg.settings("quant_ggml"));
    CHECK(s.experts_gemm_tiles == 2);
    CHECK(s.experts_gemm_ctas == 2);
    CHECK_THROWS_WITH(reg.configure("quant_ggml", "experts_gemm_ctas", int64_t(3)), Catch::Contains("experts_gemm_ctas"));
    CHECK_THROWS_WITH(reg.configure("quant_ggml", "experts_gemm_ctas", int64_t(0)), Catch::Contains("experts_gemm_ctas"));
    CHECK_THROWS_WITH(reg.configure("quant_ggml", "experts_gemm_tiles", int64_t(16)),
                      Catch::Contains("experts_gemm_tiles"));
    reg.configure("quant_ggml", "experts_gemm_tiles", int64_t(3));
    CHECK_THROWS_WITH(ggml_settings(&reg.settings("quant_ggml")),
                      Catch::Contains("experts_gemm_tiles = 3") && Catch::Contains("0, 2, 4 or 8"));
}
