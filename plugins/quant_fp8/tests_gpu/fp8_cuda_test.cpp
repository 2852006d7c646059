// quant_fp8 CUDA (cuda/fp8_cuda.h) on the GPU against the double-precision reference of the exact CPU
// dequantization (src/fp8_ref.h), on fresh random E4M3 codes (every finite code, subnormals and -0 included) with
// per-tensor and per-row scales.
// Bounds (relative norm ||y - want|| / ||want - init||):
//   GEMV and expert matmuls 1e-4: exact weights, fp32 activations and sums (rounding ~4e-6 at worst over 4k terms;
//     any indexing or decoding error is O(1));
//   DequantBf16 prefill 5e-3: activations rounded to bf16 (and per-row weights e4m3 * scale rounded to bf16);
//   Fp8Gemm prefill: 1e-2 against the reference of the same per-tensor E4M3 activation rounding simulated on the CPU
//     (left: the tensor cores' fast FP8 accumulation), 0.1 against the exact activations (E4M3: 4 significant bits);
//     its bf16 fallback (a shape cuBLASLt refuses) as DequantBf16. Per-token activation units: the same bounds
//     against the same per-token rounding (finer than per tensor, so no looser); the outer-vector scales are
//     products of the same fp32 factors as the per-tensor path, applied in another order (~1e-7).
//   The expert GEMM on the tensor cores (experts_gemm, the default) 1e-4 against the reference on bf16-rounded
//     activations (the weights stay exact, fp32 sums as above). Without that rounding in the reference it would miss
//     1e-4 (bf16: ~1e-3), so these checks also show which path ran; the GEMV cases set experts_gemm = 0.
#include <catch2/catch.hpp>

#include <random>

#include "fp8_cuda.h"
#include "fp8_ref.h"
#include "wo_test_cases.h"

using namespace imp;
using namespace imp::wo::test;
namespace f8 = imp::fp8;

namespace {

struct Fp8 {
    int64_t rows = 0, cols = 0, n_scale = 1;
    std::vector<uint8_t> q;
    std::vector<float> scales;
    std::vector<float> w;
};

Fp8 random_fp8(int64_t rows, int64_t cols, bool per_row, std::mt19937& rng) {
    Fp8 f;
    f.rows = rows;
    f.cols = cols;
    f.n_scale = per_row ? rows : 1;
    std::uniform_int_distribution<int> byte(0, 255);
    f.q.resize(size_t(rows * cols));
    for (auto& v : f.q) {
        do v = uint8_t(byte(rng));
        while ((v & 0x7F) == 0x7F);  // NaN codes are not weights
    }
    std::uniform_real_distribution<float> u(0.001f, 0.01f);
    f.scales.resize(size_t(f.n_scale));
    for (auto& s : f.scales) s = u(rng);
    f.w.resize(size_t(rows * cols));
    for (int64_t r = 0; r < rows; ++r)
        f8::dequant_row(f.q.data() + r * cols, f.scales[size_t(per_row ? r : 0)], cols, f.w.data() + r * cols);
    return f;
}

std::unique_ptr<Weight> load(CudaExecutor& ex, const Fp8& f, const f8::cuda::Settings& s = {}) {
    return f8::cuda::make_weight(ex, f.rows, f.cols, f.q.data(), f.scales.data(), f.n_scale, "blk.0.attn_o.weight", s);
}

f8::cuda::Settings bf16_prefill() {
    f8::cuda::Settings s;
    s.prefill = f8::cuda::Settings::Prefill::DequantBf16;
    return s;
}

const std::vector<std::pair<int64_t, int64_t>> kShapes = {{203, 371}, {64, 4100}, {1, 5}, {130, 1040}};

// n random FP8 experts [rows, cols] (per-tensor or per-row scales) stacked as make_experts takes them, and each
// one's exact dequantization.
struct Fp8Stack {
    int64_t rows = 0, cols = 0, n_scale = 1;
    std::vector<uint8_t> q;
    std::vector<float> scales;
    std::vector<std::vector<float>> ref;
};
Fp8Stack random_stack(int64_t n, int64_t rows, int64_t cols, bool per_row, std::mt19937& rng) {
    Fp8Stack st;
    st.rows = rows;
    st.cols = cols;
    st.n_scale = per_row ? rows : 1;
    for (int64_t i = 0; i < n; ++i) {
        const Fp8 f = random_fp8(rows, cols, per_row, rng);
        st.q.insert(st.q.end(), f.q.begin(), f.q.end());
        st.scales.insert(st.scales.end(), f.scales.begin(), f.scales.end());
        st.ref.push_back(f.w);
    }
    return st;
}
std::unique_ptr<ExpertWeights> load_stack(CudaExecutor& ex, const Fp8Stack& st, const f8::cuda::Settings& s = {}) {
    return f8::cuda::make_experts(ex, int64_t(st.ref.size()), st.rows, st.cols, st.q.data(), st.scales.data(),
                                  st.n_scale, s);
}

}  // namespace

// The tensor-core GEMV (gemv = mma): against the product with x rounded as the kernel rounds it (fp16_activations;
// E4M3 weights are exact in fp16) within fp32 summation order, as the NVFP4 case.
TEST_CASE("quant_fp8 cuda: tensor-core GEMV (gemv = mma) of 1-8 tokens within fp16 activation precision",
          "[quant_fp8_gpu][gemv]") {
    auto ex = make_gpu();
    std::mt19937 rng(141);
    for (const auto& [rows, cols] : kShapes)
        for (const bool per_row : {false, true}) {
            const Fp8 f = random_fp8(rows, cols, per_row, rng);
            for (const int kw : {0, 1, 8}) {
                f8::cuda::Settings s;
                s.gemv_kw = kw;
                s.gemv_mma = true;
                const auto w = load(*ex, f, s);
                for (const int64_t t : {1, 2, 3, 5, 8})
                    for (const bool acc : {false, true})
                        for (const int64_t xs : {cols, cols + 3}) {
                            INFO(rows << "x" << cols << (per_row ? " per row" : " per tensor") << ", mma, kw " << kw
                                      << ", tokens " << t << (acc ? ", accumulate" : "") << ", x stride " << xs);
                            const Check c = matmul_case(*ex, *w, f.w, t, xs, rows + 5, acc, rng, fp16_activations);
                            CHECK(c.unwritten == 0);
                            CHECK(c.overwritten == 0);
                            CHECK(c.rel <= 2e-4);
                        }
                if (kw == 0 && cols >= 64) mma_small_x_cases(*ex, *w, f.w, rng);
            }
        }
}

TEST_CASE("quant_fp8 cuda: the RMSNorm fused into the GEMV (fuse_norm) equals the norm then the matmul",
          "[quant_fp8_gpu][gemv]") {
    auto ex = make_gpu();
    std::mt19937 rng(151);
    for (const auto& [rows, cols] : std::vector<std::pair<int64_t, int64_t>>{{203, 372}, {130, 1040}, {77, 2048}, {1, 4}})
        for (const bool per_row : {false, true}) {
            const Fp8 f = random_fp8(rows, cols, per_row, rng);
            f8::cuda::Settings s, off;
            s.fuse_norm = true;
            off.fuse_norm = false;  // the weight that refuses every fused norm
            INFO((per_row ? "per row" : "per tensor"));
            norm_cases(*ex, *load(*ex, f, s), f.w, *load(*ex, f, off), rng);
        }
}

TEST_CASE("quant_fp8 cuda: GEMV of 1-8 tokens, per-tensor and per-row scales, strides, accumulate, regs, regs2 and async",
          "[quant_fp8_gpu][gemv]") {
    auto ex = make_gpu();
    std::mt19937 rng(111);
    for (const auto& [rows, cols] : kShapes)
        for (const bool per_row : {false, true}) {
            const Fp8 f = random_fp8(rows, cols, per_row, rng);
            for (const int plan : {0, 1, 2})  // regs, async, regs2
            for (const int kw : {0, 1, 8}) {
                f8::cuda::Settings s;
                s.gemv_kw = kw;
                s.gemv_async = plan == 1;
                s.gemv_regs2 = plan == 2;
                const auto w = load(*ex, f, s);
                CHECK(w->bytes() == f8::cuda::device_bytes(rows, cols, 0, f.n_scale));
                for (const int64_t t : {1, 2, 3, 4, 5, 8})
                    for (const bool acc : {false, true})
                        for (const int64_t xs : {cols, cols + 3}) {
                            INFO(rows << "x" << cols << (per_row ? " per row" : " per tensor")
                                      << (plan == 1 ? ", async" : plan == 2 ? ", regs2" : ", regs") << ", kw " << kw
                                      << ", tokens " << t
                                      << (acc ? ", accumulate" : "") << ", x stride " << xs);
                            const Check c = matmul_case(*ex, *w, f.w, t, xs, rows + 5, acc, rng);
                            CHECK(c.unwritten == 0);
                            CHECK(c.overwritten == 0);
                            CHECK(c.rel <= 1e-4);
                        }
            }
        }
}

TEST_CASE("quant_fp8 cuda: prefill through cuBLASLt's FP8 GEMM", "[quant_fp8_gpu][gemm][fp8]") {
    auto ex = make_gpu();
    std::mt19937 rng(222);
    // 208 rows per tensor, 16 or 512 tokens, y stride = rows: cuBLASLt writes y directly; per-row scales, 203 rows,
    // 33 or 100 tokens or an odd stride: through the fp32 buffer and the epilogue.
    f8::cuda::Settings s;
    s.prefill = f8::cuda::Settings::Prefill::Fp8Gemm;
    for (const auto& [rows, cols] : std::vector<std::pair<int64_t, int64_t>>{{208, 512}, {203, 371}})
        for (const bool per_row : {false, true}) {
            const Fp8 f = random_fp8(rows, cols, per_row, rng);
            const auto w = load(*ex, f, s);
            INFO(rows << "x" << cols << (per_row ? " per row" : " per tensor"));
            const int64_t refused = fp8_prefill_cases(*ex, *w, f.w, f.w, 0.1, rng);
            INFO("calls cuBLASLt refused (stderr says why): " << refused);
            CHECK(refused == 0);
        }
}

TEST_CASE("quant_fp8 cuda: prefill through the FP8 GEMM with per-token units (outer-vector scales), tuned or not",
          "[quant_fp8_gpu][gemm][fp8]") {
    auto ex = make_gpu();
    std::mt19937 rng(224);
    for (const auto& [rows, cols] : std::vector<std::pair<int64_t, int64_t>>{{208, 512}, {203, 371}})
        for (const bool per_row : {false, true})
            for (const bool tune : {false, true}) {
                f8::cuda::Settings s;
                s.prefill = f8::cuda::Settings::Prefill::Fp8Gemm;
                s.fp8_per_token = true;
                s.gemm_tune = tune;
                const Fp8 f = random_fp8(rows, cols, per_row, rng);
                const auto w = load(*ex, f, s);
                CHECK(w->bytes() == f8::cuda::device_bytes(rows, cols, 0, f.n_scale, s));
                INFO(rows << "x" << cols << (per_row ? " per row" : " per tensor") << (tune ? ", tuned" : ""));
                const int64_t refused = fp8_prefill_cases(*ex, *w, f.w, f.w, 0.1, rng, true);
                INFO("calls cuBLASLt refused (stderr says why): " << refused);
                CHECK(refused == 0);
                // Not a failure: cuBLASLt builds without outer-vector FP8 scales run the epilogue (checked above).
                if (wo::fp8_vec_refusals(*w) > 0)
                    WARN("cuBLASLt refused outer-vector scales on " << wo::fp8_vec_refusals(*w) << " calls");
            }
}

TEST_CASE("quant_fp8 cuda: per-token units whose outer-vector GEMM cuBLASLt refuses go through the epilogue",
          "[quant_fp8_gpu][gemm][fp8]") {
    auto ex = make_gpu();
    std::mt19937 rng(225);
    f8::cuda::Settings s;
    s.prefill = f8::cuda::Settings::Prefill::Fp8Gemm;
    s.fp8_per_token = true;
    s.fp8_refuse_vec = true;
    for (const bool per_row : {false, true}) {
        const Fp8 f = random_fp8(208, 512, per_row, rng);
        const auto w = load(*ex, f, s);
        INFO((per_row ? "per row" : "per tensor"));
        CHECK(fp8_prefill_cases(*ex, *w, f.w, f.w, 0.1, rng, true) == 0);
        // 16, 33, 100, 512, 600 tokens x 2 strides x (y =, y +=) x 2 checks (exact, simulated): each through it.
        CHECK(wo::fp8_vec_refusals(*w) == 40);
    }
}

TEST_CASE("quant_fp8 cuda: gemv_max_tokens 1 sends 2-8 tokens through the FP8 GEMM", "[quant_fp8_gpu][gemm][fp8]") {
    auto ex = make_gpu();
    std::mt19937 rng(226);
    for (const bool token : {false, true}) {
        f8::cuda::Settings s;
        s.prefill = f8::cuda::Settings::Prefill::Fp8Gemm;
        s.fp8_per_token = token;
        s.gemv_max_tokens = 1;
        const Fp8 f = random_fp8(208, 512, true, rng);
        const auto w = load(*ex, f, s);
        CHECK(w->workspace_bytes(1) == 0);
        CHECK(w->workspace_bytes(2) > 0);
        INFO((token ? "per-token units" : "per-tensor unit"));
        // 7 tokens: padded to 16 in the fp32 buffer, then the epilogue.
        CHECK(fp8_prefill_cases(*ex, *w, f.w, f.w, 0.1, rng, token, 1) == 0);
        // Every FP8 GEMM refused: 7 tokens run the GEMV (no bf16 tiles, whose workspace was not reserved), the
        // others bf16 tiles; 6 token counts x 2 strides x (y =, y +=).
        s.fp8_refuse_all = true;
        const auto wr = load(*ex, f, s);
        CHECK(wr->workspace_bytes(7) < wr->workspace_bytes(16));
        CHECK(fp8_prefill_cases(*ex, *wr, f.w, f.w, 0.1, rng, token, 1) == 24);
    }
}

TEST_CASE("quant_fp8 cuda: a shape cuBLASLt refuses goes through bf16 tiles", "[quant_fp8_gpu][gemm][fp8]") {
    auto ex = make_gpu();
    std::mt19937 rng(223);
    f8::cuda::Settings s;
    s.prefill = f8::cuda::Settings::Prefill::Fp8Gemm;
    s.fp8_refuse_all = true;
    for (const bool per_row : {false, true}) {
        const Fp8 f = random_fp8(208, 512, per_row, rng);
        const auto w = load(*ex, f, s);
        INFO((per_row ? "per row" : "per tensor"));
        // 16, 33, 100, 512, 600 tokens x 2 strides x (y =, y +=): every GEMM call refused.
        CHECK(fp8_prefill_cases(*ex, *w, f.w, f.w, 0.1, rng) == 20);
    }
}

TEST_CASE("quant_fp8 cuda: prefill through bf16 tiles", "[quant_fp8_gpu][gemm]") {
    auto ex = make_gpu();
    std::mt19937 rng(333);
    for (const auto& [rows, cols] : std::vector<std::pair<int64_t, int64_t>>{{203, 371}, {300, 1040}})
        for (const bool per_row : {false, true}) {
            const Fp8 f = random_fp8(rows, cols, per_row, rng);
            auto s = bf16_prefill();
            s.tile_rows = 128;
            const auto w = load(*ex, f, s);
            for (const int64_t t : {9, 33, 100})
                for (const bool acc : {false, true}) {
                    ex->reserve_workspace(w->workspace_bytes(t));
                    INFO(rows << "x" << cols << (per_row ? " per row" : " per tensor") << ", tokens " << t
                              << (acc ? ", accumulate" : ""));
                    const Check c = matmul_case(*ex, *w, f.w, t, cols + 1, rows + 2, acc, rng);
                    CHECK(c.unwritten == 0);
                    CHECK(c.overwritten == 0);
                    CHECK(c.rel <= 5e-3);
                }
        }
}

TEST_CASE("quant_fp8 cuda: get_rows bit for bit, ids out of range give zero rows", "[quant_fp8_gpu][get_rows]") {
    auto ex = make_gpu();
    std::mt19937 rng(444);
    for (const bool per_row : {false, true}) {
        const Fp8 f = random_fp8(203, 371, per_row, rng);
        get_rows_case(*ex, *load(*ex, f), f.w);
    }
}

TEST_CASE("quant_fp8 cuda: expert grouped matmul (routing weights, x per slot, ids out of range, idle experts)",
          "[quant_fp8_gpu][experts]") {
    auto ex = make_gpu();
    std::mt19937 rng(555);
    for (const bool per_row : {false, true}) {
        const int64_t n_expert = 6, rows = 77, cols = 371;
        const Fp8Stack st = random_stack(n_expert, rows, cols, per_row, rng);
        const auto& ref = st.ref;
        const int64_t ns = per_row ? rows : 1;
        for (const int plan : {0, 1, 2})  // regs, async, regs2
        for (const bool grouped : {true, false}) {
            f8::cuda::Settings s;
            s.experts_gemm = 0;  // the GEMV, not the tensor-core GEMM
            s.experts_grouped = grouped;
            s.gemv_async = plan == 1;
            s.gemv_regs2 = plan == 2;
            const auto w = load_stack(*ex, st, s);
            CHECK(w->bytes() == f8::cuda::device_bytes(rows, cols, n_expert, ns));
            INFO((per_row ? "per row" : "per tensor") << (grouped ? ", grouped by expert" : ", one GEMV per pair")
                                                      << (plan == 1 ? ", async" : plan == 2 ? ", regs2" : ""));
            experts_cases(*ex, *w, ref, 1e-4, rng);
        }
    }
}

TEST_CASE("quant_fp8 cuda: short rows in half-warp row groups (gemv_short_rows), dense and experts",
          "[quant_fp8_gpu][gemv]") {
    auto ex = make_gpu();
    std::mt19937 rng(161);
    // 200 columns: 13 chunks per row (half-warp groups); 5: one chunk; 260: 17 chunks (whole warps again)
    for (const bool per_row : {false, true})
        for (const auto& [rows, cols] : std::vector<std::pair<int64_t, int64_t>>{{203, 200}, {77, 5}, {130, 260}}) {
            const Fp8 f = random_fp8(rows, cols, per_row, rng);
            wo::GemvArgs ga;
            ga.short_rows = true;
            CHECK(wo::gemv_row_lanes(wo::make_layout(wo::Codec::FP8, rows, cols, f.n_scale, false), ga, 1) ==
                  (cols <= 256 ? 16 : 32));
            CHECK(wo::gemv_row_lanes(wo::make_layout(wo::Codec::FP8, rows, cols, f.n_scale, false), ga, 2) == 64);
            for (const int plan : {0, 1, 2}) {  // regs, async, regs2
                f8::cuda::Settings s;
                s.gemv_short_rows = true;
                s.gemv_async = plan == 1;
                s.gemv_regs2 = plan == 2;
                gemv_cases(*ex, *load(*ex, f, s), f.w, rng, {1, 2, 3, 5, 8},
                           std::string(per_row ? "per row" : "per tensor") + ", short rows, plan " +
                               std::to_string(plan));
            }
        }
    const int64_t n_expert = 6, rows = 77, cols = 200;
    const Fp8Stack st = random_stack(n_expert, rows, cols, false, rng);
    for (const bool grouped : {true, false}) {
        f8::cuda::Settings s;
        s.gemv_short_rows = true;
        s.experts_gemm = 0;  // the GEMV, not the tensor-core GEMM
        s.experts_grouped = grouped;
        const auto w = load_stack(*ex, st, s);
        INFO((grouped ? "grouped by expert when pairs > experts" : "one GEMV per pair"));
        experts_cases(*ex, *w, st.ref, 1e-4, rng);
        const Fp8 shared = random_fp8(rows, cols, false, rng), other = random_fp8(rows, cols, true, rng);
        const auto d = load(*ex, shared, s), o = load(*ex, other, s);
        extra_cases(*ex, *w, st.ref, *d, shared.w, *o, rng);
    }
}

TEST_CASE("quant_fp8 cuda: the streaming GEMV (gemv = stream) on matrices of many rows", "[quant_fp8_gpu][gemv]") {
    auto ex = make_gpu();
    std::mt19937 rng(151);
    // per-tensor and per-row scales; rows just past the plan's threshold on this device (a partial last row group)
    // and more; 40 columns: 3 chunks of 16 per row (the last partial); 1030: 65 chunks
    const int64_t need = wo::stream_min_rows(ex->cuda()->sm_count);
    for (const bool per_row : {false, true})
        for (const auto& [rows, cols] : std::vector<std::pair<int64_t, int64_t>>{{need + 3, 40}, {need + 1000, 1030}}) {
            const Fp8 f = random_fp8(rows, cols, per_row, rng);
            f8::cuda::Settings s;
            s.gemv_stream = true;
            const auto w = load(*ex, f, s);
            INFO((per_row ? "per row" : "per tensor"));
            stream_cases(*ex, *w, f.w, wo::make_layout(wo::Codec::FP8, rows, cols, f.n_scale, false), rng);
        }
}

TEST_CASE("quant_fp8 cuda: the shared expert as one more slot of the decode expert launches (ExpertMatmul::extra)",
          "[quant_fp8_gpu][experts]") {
    auto ex = make_gpu();
    std::mt19937 rng(550);
    const int64_t n_expert = 6, rows = 77, cols = 371;
    for (const bool per_row : {false, true}) {
        const Fp8Stack st = random_stack(n_expert, rows, cols, per_row, rng);
        // the other weight: same shape, the other scale granularity (a layout the experts' GEMV does not read)
        const Fp8 shared = random_fp8(rows, cols, per_row, rng), other = random_fp8(rows, cols, !per_row, rng);
        for (const int plan : {0, 2}) {  // regs, regs2
            f8::cuda::Settings s;
            s.gemv_regs2 = plan == 2;
            const auto w = load_stack(*ex, st, s);
            const auto d = load(*ex, shared, s), o = load(*ex, other, s);
            INFO((per_row ? "per row" : "per tensor") << (plan == 2 ? ", regs2" : ", regs"));
            extra_cases(*ex, *w, st.ref, *d, shared.w, *o, rng);
        }
        f8::cuda::Settings fused;  // the fused down projection with the extra slot among its slots
        fused.experts_fused_down = true;
        const auto wf = load_stack(*ex, st, fused);
        const auto df = load(*ex, shared, fused), of = load(*ex, other, fused);
        for (const bool swiglu : {false, true}) {
            INFO((per_row ? "per row" : "per tensor") << ", fused down" << (swiglu ? ", [gate | up] rows" : ""));
            extra_cases(*ex, *wf, st.ref, *df, shared.w, *of, rng, swiglu);
        }
    }
}

TEST_CASE("quant_fp8 cuda: experts_swiglu: the decode expert GEMV stages silu(gate) * up of [gate | up] rows",
          "[quant_fp8_gpu][experts]") {
    auto ex = make_gpu();
    std::mt19937 rng(552);
    const int64_t n_expert = 6, rows = 77, cols = 372;
    for (const bool per_row : {false, true}) {
        INFO((per_row ? "per row" : "per tensor"));
        const Fp8Stack st = random_stack(n_expert, rows, cols, per_row, rng);
        const Fp8 shared = random_fp8(rows, cols, per_row, rng), other = random_fp8(rows, cols, !per_row, rng);
        f8::cuda::Settings on, off;
        on.experts_swiglu = true;
        off.experts_swiglu = false;
        off.gemv_stage_x = 0;  // the plain GEMV after the SwiGLU op
        const auto w = load_stack(*ex, st, on), w0 = load_stack(*ex, st, off);
        const auto d = load(*ex, shared, on), d0 = load(*ex, shared, off), o = load(*ex, other, on);
        CHECK(w->swiglu_input());
        CHECK_FALSE(w0->swiglu_input());
        for (const bool swiglu : {false, true}) {
            INFO((swiglu ? "[gate | up] rows" : "plain rows"));
            experts_cases(*ex, *w, st.ref, 1e-4, rng, {1, 2, 5, 33}, gemm_rounding, swiglu);
            extra_cases(*ex, *w, st.ref, *d, shared.w, *o, rng, swiglu);
        }
        swiglu_staged_cases(*ex, *w, *w0, *d, *d0, rng);
    }
}

TEST_CASE("quant_fp8 cuda: the staged GEMVs (x, SwiGLU, norm) on forced warps per row group, the same bits",
          "[quant_fp8_gpu][gemv][experts]") {
    auto ex = make_gpu();
    std::mt19937 rng(556);
    for (const bool per_row : {false, true}) {
        INFO((per_row ? "per row" : "per tensor"));
        f8::cuda::Settings staged, ring, plain;  // all staged kernels on against none
        for (f8::cuda::Settings* s : {&staged, &ring}) {
            s->gemv_stage_x = 2;
            s->experts_swiglu = true;
            s->fuse_norm = true;
        }
        ring.gemv_async = true;  // a norm-fused call runs the regs plan whatever the setting's plan
        plain.gemv_stage_x = 0;
        plain.experts_swiglu = false;
        plain.fuse_norm = false;
        for (const auto& [rows, cols] : std::vector<std::pair<int64_t, int64_t>>{{203, 372}, {77, 2048}}) {
            const Fp8 f = random_fp8(rows, cols, per_row, rng);
            for (const int kw : {0, 1, 2}) {  // automatic, 1 and 2 warps a row group
                INFO("kw " << kw);
                staged.gemv_kw = ring.gemv_kw = plain.gemv_kw = kw;  // the same plan: the same lanes and sums
                const auto ws = load(*ex, f, staged), wr = load(*ex, f, ring), wp = load(*ex, f, plain);
                gemv_cases(*ex, *ws, f.w, rng, {1, 2, 3, 5, 8}, "staged x");
                stage_x_same_bits(*ex, *ws, *wp, rng);
                norm_same_bits(*ex, *ws, *wr, rng);
            }
        }
        staged.gemv_kw = plain.gemv_kw = 0;
        const int64_t n_expert = 6, rows = 77, cols = 372;
        const Fp8Stack st = random_stack(n_expert, rows, cols, per_row, rng);
        const Fp8 shared = random_fp8(rows, cols, per_row, rng);
        const auto ws = load_stack(*ex, st, staged), wp = load_stack(*ex, st, plain);
        const auto ds = load(*ex, shared, staged), dp = load(*ex, shared, plain);
        experts_cases(*ex, *ws, st.ref, 1e-4, rng, {1, 2, 5, 33}, gemm_rounding);
        stage_x_same_bits(*ex, *ws, *wp, rng);
        swiglu_staged_cases(*ex, *ws, *wp, *ds, *dp, rng);
    }
}

TEST_CASE("quant_fp8 cuda: gemv_mma_tokens: dense calls of 3-8 tokens on the tensor cores, 1-2 on regs",
          "[quant_fp8_gpu][gemv]") {
    auto ex = make_gpu();
    std::mt19937 rng(562);
    for (const bool per_row : {false, true}) {
        INFO((per_row ? "per row" : "per tensor"));
        f8::cuda::Settings mixed, regs, mma;
        mixed.gemv_mma_tokens = 3;
        mma.gemv_mma = true;
        const Fp8 f = random_fp8(203, 372, per_row, rng);
        mma_tokens_cases(*ex, *load(*ex, f, mixed), *load(*ex, f, regs), *load(*ex, f, mma), rng);
    }
}

TEST_CASE("quant_fp8 cuda: gemv_stage_x: x staged in shared memory, dense and expert GEMVs",
          "[quant_fp8_gpu][gemv][experts]") {
    auto ex = make_gpu();
    std::mt19937 rng(554);
    for (const bool per_row : {false, true}) {
        INFO((per_row ? "per row" : "per tensor"));
        f8::cuda::Settings on, off;
        on.gemv_stage_x = 2;
        off.gemv_stage_x = 0;
        for (const auto& [rows, cols] : std::vector<std::pair<int64_t, int64_t>>{{203, 372}, {77, 2048}}) {
            const Fp8 f = random_fp8(rows, cols, per_row, rng);
            const auto w = load(*ex, f, on), w0 = load(*ex, f, off);
            gemv_cases(*ex, *w, f.w, rng, {1, 2, 3, 5, 8}, "staged x");
            stage_x_same_bits(*ex, *w, *w0, rng);
        }
        const int64_t n_expert = 6, rows = 77, cols = 372;
        const Fp8Stack st = random_stack(n_expert, rows, cols, per_row, rng);
        const Fp8 shared = random_fp8(rows, cols, per_row, rng), other = random_fp8(rows, cols, !per_row, rng);
        on.gemv_stage_x = 1;
        const auto w = load_stack(*ex, st, on), w0 = load_stack(*ex, st, off);
        const auto d = load(*ex, shared, on), o = load(*ex, other, on);
        experts_cases(*ex, *w, st.ref, 1e-4, rng, {1, 2, 5, 33}, gemm_rounding);
        extra_cases(*ex, *w, st.ref, *d, shared.w, *o, rng);
        stage_x_same_bits(*ex, *w, *w0, rng);
    }
}

TEST_CASE("quant_fp8 cuda: expert grouped matmul on the tensor cores (token tiles, row blocks, partial chunks)",
          "[quant_fp8_gpu][experts]") {
    auto ex = make_gpu();
    std::mt19937 rng(565);
    // 77 x 371: a partial row group, 6 chunks of 64 columns (the last one partial); 300 x 100: two row blocks of
    // 256, two chunks.
    for (const auto& [rows, cols] : std::vector<std::pair<int64_t, int64_t>>{{77, 371}, {300, 100}})
        for (const bool per_row : {false, true}) {
            const int64_t n_expert = 6;
            const Fp8Stack st = random_stack(n_expert, rows, cols, per_row, rng);
            const auto& ref = st.ref;
            for (const int nt : {-1, 2, 4, 8}) {
                f8::cuda::Settings s;
                s.experts_gemm = nt;
                const auto w =
                    load_stack(*ex, st, s);
                INFO(rows << "x" << cols << (per_row ? ", per row" : ", per tensor") << ", token tiles "
                          << (nt < 0 ? std::string("auto") : std::to_string(nt)));
                experts_cases(*ex, *w, ref, 1e-4, rng, {1, 5, 33, 100}, gemm_rounding);
            }
        }
}

TEST_CASE("quant_fp8 cuda: fused MoE down (SwiGLU of [gate | up] rows, one decode kernel per weighted call)",
          "[quant_fp8_gpu][experts]") {
    auto ex = make_gpu();
    std::mt19937 rng(575);
    for (const bool per_row : {false, true}) {
        const int64_t n_expert = 6, rows = 77, cols = 371;
        const Fp8Stack st = random_stack(n_expert, rows, cols, per_row, rng);
        const auto& ref = st.ref;
        for (const bool gemm : {false, true}) {
            f8::cuda::Settings s;
            s.experts_fused_down = true;
            s.experts_gemm = gemm ? -1 : 0;
            const auto w =
                load_stack(*ex, st, s);
            CHECK(w->swiglu_input());
            INFO((per_row ? "per row" : "per tensor")
                 << (gemm ? ", prefill on the tensor cores (bf16 activations)" : ", prefill through the GEMV"));
            for (const bool swiglu : {false, true}) {
                INFO((swiglu ? "[gate | up] rows" : "plain rows"));
                const RoundOf round = gemm ? RoundOf(gemm_rounding) : RoundOf();
                experts_cases(*ex, *w, ref, 1e-4, rng, {1, 2, 5, 33}, round, swiglu);
            }
        }
    }
}

TEST_CASE("quant_fp8 cuda: a captured graph replays GEMV, prefill and experts with new inputs",
          "[quant_fp8_gpu][graph]") {
    auto ex = make_gpu();
    std::mt19937 rng(666);
    const Fp8 f = random_fp8(160, 512, false, rng);
    const Fp8Stack st = random_stack(5, 48, 256, true, rng);
    const auto& ref = st.ref;
    f8::cuda::Settings gemv_experts;
    gemv_experts.experts_gemm = 0;
    const auto e = load_stack(*ex, st, gemv_experts);
    SECTION("fp8 prefill") {
        f8::cuda::Settings s;
        s.prefill = f8::cuda::Settings::Prefill::Fp8Gemm;
        const auto w = load(*ex, f, s);
        graph_case(*ex, *w, f.w, 32, 1e-2, *e, ref, rng,
                   [&](const std::vector<float>& x, int64_t t) { return fp8_activations(x, f.cols, t, f.cols); });
        CHECK(wo::fp8_refusals(*w) == 0);
    }
    SECTION("fp8 prefill, per-token units, tuned") {
        f8::cuda::Settings s;
        s.prefill = f8::cuda::Settings::Prefill::Fp8Gemm;
        s.fp8_per_token = true;
        s.gemm_tune = true;
        const auto w = load(*ex, f, s);
        graph_case(*ex, *w, f.w, 32, 1e-2, *e, ref, rng, [&](const std::vector<float>& x, int64_t t) {
            return fp8_activations(x, f.cols, t, f.cols, true);
        });
        CHECK(wo::fp8_refusals(*w) == 0);
    }
    SECTION("bf16 prefill") {
        graph_case(*ex, *load(*ex, f, bf16_prefill()), f.w, 24, 5e-3, *e, ref, rng);
    }
    SECTION("tensor cores: expert GEMM, fused MoE down") {
        auto s = bf16_prefill();
        s.experts_gemm = -1;
        s.experts_fused_down = true;
        const auto et = load_stack(*ex, st, s);
        graph_case(*ex, *load(*ex, f, s), f.w, 24, 5e-3, *et, ref, rng, {}, nullptr, XRound::Bf16);
    }
    SECTION("async GEMV loads, bf16 prefill") {
        auto s = bf16_prefill();
        s.experts_gemm = 0;
        s.gemv_async = true;
        const auto ea = load_stack(*ex, st, s);
        graph_case(*ex, *load(*ex, f, s), f.w, 24, 5e-3, *ea, ref, rng);
    }
}

TEST_CASE("quant_fp8 cuda: bad scale counts are one clear error", "[quant_fp8_gpu][errors]") {
    auto ex = make_gpu();
    std::vector<uint8_t> q(64);
    std::vector<float> s(4, 1.f);
    CHECK_THROWS_WITH(f8::cuda::make_weight(*ex, 4, 16, q.data(), s.data(), 3, "blk.3.attn_q.weight"),
                      Catch::Contains("blk.3.attn_q.weight") && Catch::Contains("3 weight scales"));
}
