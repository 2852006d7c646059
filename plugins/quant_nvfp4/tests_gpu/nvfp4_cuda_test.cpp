// quant_nvfp4 CUDA (cuda/nvfp4_cuda.h) on the GPU against the double-precision reference of the exact CPU
// dequantization (src/nvfp4_ref.h), on fresh random codes (all 16 codes, -0 included), E4M3 scales (normal,
// subnormal and zero) and globals.
// Bounds (relative norm ||y - want|| / ||want - init||):
//   GEMV and expert matmuls 1e-4: exact weights, fp32 activations, fp32 sums of at most ~4k terms (rounding of such
//     sums: ~2^-24 * sqrt(4k) ~ 4e-6 at worst; any indexing or decoding error is O(1));
//   DequantBf16 prefill 5e-3: exact weights, activations rounded to bf16 (relative error <= 2^-9 each, so ~1e-3 on
//     a sum of products of random sign);
//   Fp8AtLoad prefill: 1e-2 against the reference of the same E4M3 rounding of weights and activations simulated on
//     the CPU (left: the tensor cores' fast FP8 accumulation), and 0.15 against the exact weights (E4M3 keeps 4
//     significant bits: each weight and activation is off by up to 2^-4 relative).
//   The expert GEMM on the tensor cores (experts_gemm, the default) 1e-4 against the reference on bf16-rounded
//     activations (the weights stay exact, fp32 sums as above). Without that rounding in the reference it would miss
//     1e-4 (bf16: ~1e-3), so these checks also show which path ran; the GEMV cases set experts_gemm = 0.
#include <catch2/catch.hpp>

#include <random>

#include "nvfp4_cuda.h"
#include "nvfp4_ref.h"
#include "wo_test_cases.h"

using namespace imp;
using namespace imp::wo::test;
namespace nv = imp::nvfp4;

namespace {

struct Nv {
    int64_t rows = 0, cols = 0;
    std::vector<uint8_t> codes, scales;
    float global = 1.f;
    std::vector<float> w;  // exact dequantization
};

uint8_t random_scale(std::mt19937& rng) {
    std::uniform_int_distribution<int> kind(0, 39), exp(4, 10), man(0, 7), sub(1, 7);
    const int k = kind(rng);
    if (k == 0) return 0;                       // zero scale (a block of zeros)
    if (k <= 2) return uint8_t(sub(rng));       // subnormal E4M3
    return uint8_t(exp(rng) << 3 | man(rng));   // 2^-3 .. 2^3 times 1.xxx
}

Nv random_nvfp4(int64_t rows, int64_t cols, std::mt19937& rng) {
    Nv n;
    n.rows = rows;
    n.cols = cols;
    std::uniform_int_distribution<int> byte(0, 255);
    n.codes.resize(size_t(rows * cols / 2));
    for (auto& c : n.codes) c = uint8_t(byte(rng));
    n.scales.resize(size_t(rows * cols / 16));
    for (auto& s : n.scales) s = random_scale(rng);
    n.global = std::uniform_real_distribution<float>(0.002f, 0.02f)(rng);
    n.w.resize(size_t(rows * cols));
    for (int64_t r = 0; r < rows; ++r)
        nv::dequant_row(n.codes.data() + r * cols / 2, n.scales.data() + r * cols / 16, n.global, cols,
                        n.w.data() + r * cols);
    return n;
}

std::unique_ptr<Weight> load(CudaExecutor& ex, const Nv& n, const nv::cuda::Settings& s = {}) {
    return nv::cuda::make_weight(ex, n.rows, n.cols, n.codes.data(), n.scales.data(), n.global, "blk.0.ffn_up.weight",
                                 s);
}

// n random NVFP4 experts [rows, cols] stacked as make_experts takes them, and each one's exact dequantization.
struct NvStack {
    std::vector<uint8_t> codes, scales;
    std::vector<float> globals;
    std::vector<std::vector<float>> ref;
};
NvStack random_stack(int64_t n, int64_t rows, int64_t cols, std::mt19937& rng) {
    NvStack st;
    for (int64_t i = 0; i < n; ++i) {
        const Nv e = random_nvfp4(rows, cols, rng);
        st.codes.insert(st.codes.end(), e.codes.begin(), e.codes.end());
        st.scales.insert(st.scales.end(), e.scales.begin(), e.scales.end());
        st.globals.push_back(e.global);
        st.ref.push_back(e.w);
    }
    return st;
}
std::unique_ptr<ExpertWeights> load_stack(CudaExecutor& ex, const NvStack& st, int64_t rows, int64_t cols,
                                          const nv::cuda::Settings& s = {}) {
    return nv::cuda::make_experts(ex, int64_t(st.globals.size()), rows, cols, st.codes.data(), st.scales.data(),
                                  st.globals.data(), s);
}

// The weight the Fp8AtLoad GEMM multiplies: e4m3(e2m1 * e4m3s / unit) * (global * unit), as nvfp4_cuda.cpp and the
// conversion kernel compute it.
std::vector<float> fp8_copy(const Nv& n) {
    float ms = 0.f;
    for (const uint8_t s : n.scales) ms = std::max(ms, nv::e4m3_to_float(s));
    const float unit = ms > 0.f ? ms * 6.f / 448.f : 1.f, inv = 1.f / unit, post = n.global * unit;
    std::vector<float> w(n.w.size());
    for (int64_t r = 0; r < n.rows; ++r)
        for (int64_t c = 0; c < n.cols; ++c) {
            const uint8_t code = (n.codes[size_t((r * n.cols + c) / 2)] >> (4 * (c & 1))) & 0xF;
            const float v = nv::e2m1_to_float(code) * nv::e4m3_to_float(n.scales[size_t((r * n.cols + c) / 16)]);
            w[size_t(r * n.cols + c)] = fp8::e4m3_to_float(e4m3_encode(v * inv)) * post;
        }
    return w;
}

}  // namespace

TEST_CASE("quant_nvfp4 cuda: GEMV of 1-8 tokens, strides, accumulate, every row-group plan, regs, regs2 and async loads",
          "[quant_nvfp4_gpu][gemv]") {
    auto ex = make_gpu();
    std::mt19937 rng(101);
    for (const auto& [rows, cols] : std::vector<std::pair<int64_t, int64_t>>{{203, 368}, {64, 4112}, {1, 16}, {130, 1040}}) {
        const Nv n = random_nvfp4(rows, cols, rng);
        for (const int plan : {0, 1, 2})  // regs, async, regs2
        for (const int kw : {0, 1, 2, 4, 8}) {
            nv::cuda::Settings s;
            s.gemv_kw = kw;
            s.gemv_async = plan == 1;
            s.gemv_regs2 = plan == 2;
            const auto w = load(*ex, n, s);
            for (const int64_t t : {1, 2, 3, 4, 5, 8})
                for (const bool acc : {false, true})
                    for (const int64_t xs : {cols, cols + 3}) {
                        INFO(rows << "x" << cols << (plan == 1 ? ", async" : plan == 2 ? ", regs2" : ", regs")
                                  << ", kw " << kw << ", tokens " << t
                                  << (acc ? ", accumulate" : "") << ", x stride " << xs);
                        const Check c = matmul_case(*ex, *w, n.w, t, xs, rows + 5, acc, rng);
                        CHECK(c.unwritten == 0);
                        CHECK(c.overwritten == 0);
                        CHECK(c.rel <= 1e-4);
                    }
        }
    }
}

// The tensor-core GEMV (gemv = mma): x is rounded to fp16 (after a 2^-4 scale) and the weights are exact in fp16, so
// the reference is the exact product with x so rounded (fp16_activations), within fp32 summation order (2e-4; the
// 2026-12-05 H100 run measured up to 8e-3 against unrounded x on the one-block 1x16 weight, where the rounding of 16
// terms is not small beside their cancelling sum). Shapes: partial chunks (368, 1040 columns: the checked path),
// whole chunks over several pipeline steps (4096), one row; strides that break x's 16-byte rows.
TEST_CASE("quant_nvfp4 cuda: tensor-core GEMV (gemv = mma) of 1-8 tokens within fp16 activation precision",
          "[quant_nvfp4_gpu][gemv]") {
    auto ex = make_gpu();
    std::mt19937 rng(131);
    for (const auto& [rows, cols] :
         std::vector<std::pair<int64_t, int64_t>>{{203, 368}, {64, 4112}, {1, 16}, {130, 1040}, {256, 4096}}) {
        const Nv n = random_nvfp4(rows, cols, rng);
        for (const int kw : {0, 1, 2, 4, 8}) {
            nv::cuda::Settings s;
            s.gemv_kw = kw;
            s.gemv_mma = true;
            const auto w = load(*ex, n, s);
            for (const int64_t t : {1, 2, 3, 5, 8})
                for (const bool acc : {false, true})
                    for (const int64_t xs : {cols, cols + 3}) {
                        INFO(rows << "x" << cols << ", mma, kw " << kw << ", tokens " << t
                                  << (acc ? ", accumulate" : "") << ", x stride " << xs);
                        const Check c = matmul_case(*ex, *w, n.w, t, xs, rows + 5, acc, rng, fp16_activations);
                        CHECK(c.unwritten == 0);
                        CHECK(c.overwritten == 0);
                        CHECK(c.rel <= 2e-4);
                    }
            if (rows == 256 && kw == 0) mma_small_x_cases(*ex, *w, n.w, rng);
        }
    }
}

TEST_CASE("quant_nvfp4 cuda: the RMSNorm fused into the GEMV (fuse_norm) equals the norm then the matmul",
          "[quant_nvfp4_gpu][gemv]") {
    auto ex = make_gpu();
    std::mt19937 rng(141);
    // 368: a partial chunk (12 of 32 columns); 1040: partial, 8 tokens staged in 33 KB; 2048: whole chunks, 5-8
    // tokens refused (64 KB of staged rows); one row.
    for (const auto& [rows, cols] : std::vector<std::pair<int64_t, int64_t>>{{203, 368}, {130, 1040}, {77, 2048}, {1, 16}}) {
        const Nv n = random_nvfp4(rows, cols, rng);
        nv::cuda::Settings s, off;
        s.fuse_norm = true;
        off.fuse_norm = false;  // the weight that refuses every fused norm
        for (const int kw : {0, 2}) {
            s.gemv_kw = kw;
            INFO("kw " << kw);
            norm_cases(*ex, *load(*ex, n, s), n.w, *load(*ex, n, off), rng);
        }
    }
}

TEST_CASE("quant_nvfp4 cuda: short rows in half-warp row groups (gemv_short_rows), dense and experts",
          "[quant_nvfp4_gpu][gemv]") {
    auto ex = make_gpu();
    std::mt19937 rng(121);
    // 368 columns: 12 chunks per row (half-warp groups); 32: one chunk; 544: 17 chunks (whole warps again)
    for (const auto& [rows, cols] : std::vector<std::pair<int64_t, int64_t>>{{203, 368}, {77, 32}, {130, 544}}) {
        const Nv n = random_nvfp4(rows, cols, rng);
        wo::GemvArgs ga;
        ga.short_rows = true;
        const wo::Layout lay = wo::make_layout(wo::Codec::NVFP4, rows, cols, 1, false);
        CHECK(wo::gemv_row_lanes(lay, ga, 1) == (cols <= 512 ? 16 : 32));  // half warps ran where they apply
        for (const int plan : {0, 1, 2}) {  // regs, async, regs2
            nv::cuda::Settings s;
            s.gemv_short_rows = true;
            s.gemv_async = plan == 1;
            s.gemv_regs2 = plan == 2;
            gemv_cases(*ex, *load(*ex, n, s), n.w, rng, {1, 2, 3, 5, 8},
                       "short rows, plan " + std::to_string(plan));
        }
    }
    const int64_t n_expert = 6, rows = 77, cols = 368;
    const NvStack st = random_stack(n_expert, rows, cols, rng);
    for (const bool grouped : {true, false}) {
        nv::cuda::Settings s;
        s.gemv_short_rows = true;
        s.experts_gemm = 0;  // the GEMV, not the tensor-core GEMM
        s.experts_grouped = grouped;
        const auto w = load_stack(*ex, st, rows, cols, s);
        INFO((grouped ? "grouped by expert when pairs > experts" : "one GEMV per pair"));
        experts_cases(*ex, *w, st.ref, 1e-4, rng);
        const Nv shared = random_nvfp4(rows, cols, rng), other = random_nvfp4(rows, cols + 32, rng);
        const auto d = load(*ex, shared, s), o = load(*ex, other, s);
        extra_cases(*ex, *w, st.ref, *d, shared.w, *o, rng);
    }
}

TEST_CASE("quant_nvfp4 cuda: the streaming GEMV (gemv = stream) on matrices of many rows", "[quant_nvfp4_gpu][gemv]") {
    auto ex = make_gpu();
    std::mt19937 rng(111);
    // Rows: just past the plan's threshold on this device (4 row groups of 4 per warp of one wave of 2 CTAs per SM),
    // with a partial last row group, and more; 96 columns: 3 chunks per row (lanes past them idle); 2080 columns: 65
    // chunks, 3 steps per row group, the last one partial.
    const int64_t need = wo::stream_min_rows(ex->cuda()->sm_count);
    for (const auto& [rows, cols] : std::vector<std::pair<int64_t, int64_t>>{{need + 3, 96}, {need + 1000, 2080}}) {
        const Nv n = random_nvfp4(rows, cols, rng);
        nv::cuda::Settings s;
        s.gemv_stream = true;
        const auto w = load(*ex, n, s);
        stream_cases(*ex, *w, n.w, wo::make_layout(wo::Codec::NVFP4, rows, cols, 1, false), rng);
    }
}

TEST_CASE("quant_nvfp4 cuda: prefill, weights dequantized to bf16 tiles", "[quant_nvfp4_gpu][gemm]") {
    auto ex = make_gpu();
    std::mt19937 rng(202);
    for (const auto& [rows, cols] : std::vector<std::pair<int64_t, int64_t>>{{203, 368}, {300, 1040}})
        for (const int64_t tile : {int64_t(0), int64_t(128)}) {
            const Nv n = random_nvfp4(rows, cols, rng);
            nv::cuda::Settings s;
            s.tile_rows = tile;
            const auto w = load(*ex, n, s);
            for (const int64_t t : {9, 33, 100})
                for (const bool acc : {false, true}) {
                    ex->reserve_workspace(w->workspace_bytes(t));
                    INFO(rows << "x" << cols << ", tile " << tile << ", tokens " << t << (acc ? ", accumulate" : ""));
                    const Check c = matmul_case(*ex, *w, n.w, t, cols + 1, rows + 2, acc, rng);
                    CHECK(c.unwritten == 0);
                    CHECK(c.overwritten == 0);
                    CHECK(c.rel <= 5e-3);
                }
        }
}

TEST_CASE("quant_nvfp4 cuda: prefill through the FP8 copy made at load", "[quant_nvfp4_gpu][gemm][fp8]") {
    auto ex = make_gpu();
    std::mt19937 rng(303);
    nv::cuda::Settings s;
    s.prefill = nv::cuda::Settings::Prefill::Fp8AtLoad;
    // 208 rows, 16 or 512 tokens, y stride = rows: cuBLASLt writes y directly; 203 rows, 33 or 100 tokens or an odd
    // stride: through the fp32 buffer and the epilogue.
    for (const auto& [rows, cols] : std::vector<std::pair<int64_t, int64_t>>{{208, 512}, {203, 368}}) {
        const Nv n = random_nvfp4(rows, cols, rng);
        const auto w = load(*ex, n, s);
        CHECK(w->bytes() == nv::cuda::device_bytes(rows, cols, 0, s));
        INFO(rows << "x" << cols);
        const int64_t refused = fp8_prefill_cases(*ex, *w, n.w, fp8_copy(n), 0.15, rng);
        INFO("calls cuBLASLt refused (stderr says why): " << refused);
        CHECK(refused == 0);
    }
}

TEST_CASE("quant_nvfp4 cuda: prefill through the FP8 copy with per-token activation units", "[quant_nvfp4_gpu][gemm][fp8]") {
    auto ex = make_gpu();
    std::mt19937 rng(305);
    nv::cuda::Settings s;
    s.prefill = nv::cuda::Settings::Prefill::Fp8AtLoad;
    s.fp8_per_token = true;
    for (const auto& [rows, cols] : std::vector<std::pair<int64_t, int64_t>>{{208, 512}, {203, 368}}) {
        const Nv n = random_nvfp4(rows, cols, rng);
        const auto w = load(*ex, n, s);
        CHECK(w->bytes() == nv::cuda::device_bytes(rows, cols, 0, s));
        INFO(rows << "x" << cols);
        CHECK(fp8_prefill_cases(*ex, *w, n.w, fp8_copy(n), 0.15, rng, true) == 0);
        if (wo::fp8_vec_refusals(*w) > 0)  // the epilogue ran instead (checked above)
            WARN("cuBLASLt refused outer-vector scales on " << wo::fp8_vec_refusals(*w) << " calls");
    }
}

TEST_CASE("quant_nvfp4 cuda: a shape cuBLASLt refuses goes through bf16 tiles", "[quant_nvfp4_gpu][gemm][fp8]") {
    auto ex = make_gpu();
    std::mt19937 rng(304);
    nv::cuda::Settings s;
    s.prefill = nv::cuda::Settings::Prefill::Fp8AtLoad;
    s.fp8_refuse_all = true;
    const Nv n = random_nvfp4(208, 512, rng);
    const auto w = load(*ex, n, s);
    // 16, 33, 100, 512, 600 tokens x 2 strides x (y =, y +=): every GEMM call refused.
    CHECK(fp8_prefill_cases(*ex, *w, n.w, fp8_copy(n), 0.15, rng) == 20);
}

TEST_CASE("quant_nvfp4 cuda: get_rows bit for bit, ids out of range give zero rows", "[quant_nvfp4_gpu][get_rows]") {
    auto ex = make_gpu();
    std::mt19937 rng(404);
    for (const auto& [rows, cols] : std::vector<std::pair<int64_t, int64_t>>{{203, 368}, {7, 16}}) {
        const Nv n = random_nvfp4(rows, cols, rng);
        get_rows_case(*ex, *load(*ex, n), n.w);
    }
}

TEST_CASE("quant_nvfp4 cuda: expert grouped matmul (routing weights, x per slot, ids out of range, idle experts)",
          "[quant_nvfp4_gpu][experts]") {
    auto ex = make_gpu();
    std::mt19937 rng(505);
    const int64_t n_expert = 6, rows = 77, cols = 368;
    const NvStack st = random_stack(n_expert, rows, cols, rng);
    const auto& ref = st.ref;
    for (const int plan : {0, 1, 2})  // regs, async, regs2
    for (const bool grouped : {true, false}) {
        nv::cuda::Settings s;
        s.experts_gemm = 0;  // the GEMV, not the tensor-core GEMM
        s.experts_grouped = grouped;
        s.gemv_async = plan == 1;
        s.gemv_regs2 = plan == 2;
        const auto w =
            load_stack(*ex, st, rows, cols, s);
        CHECK(w->n_expert() == n_expert);
        CHECK(w->bytes() == nv::cuda::device_bytes(rows, cols, n_expert));
        INFO((grouped ? "grouped by expert when pairs > experts" : "one GEMV per pair")
             << (plan == 1 ? ", async" : plan == 2 ? ", regs2" : ""));
        experts_cases(*ex, *w, ref, 1e-4, rng);
    }
}

TEST_CASE("quant_nvfp4 cuda: sums of 8 and 10 slots (experts_reduce's batches of 8, a partial second one)",
          "[quant_nvfp4_gpu][experts]") {
    // One GEMV per pair; in the weighted calls experts_reduce then adds each token's top_k partial rows in slot
    // order, a batch of 8 slots at a time: top_k 8 is one full batch, 10 a full one and a partial one; ~1 id in 8
    // out of range.
    auto ex = make_gpu();
    std::mt19937 rng(509);
    const int64_t n_expert = 12, rows = 77, cols = 368;
    const NvStack st = random_stack(n_expert, rows, cols, rng);
    nv::cuda::Settings s;
    s.experts_gemm = 0;
    s.experts_grouped = false;
    const auto w = load_stack(*ex, st, rows, cols, s);
    experts_cases(*ex, *w, st.ref, 1e-4, rng, {1, 3}, {}, false, {8, 10});
}

TEST_CASE("quant_nvfp4 cuda: the shared expert as one more slot of the decode expert launches (ExpertMatmul::extra)",
          "[quant_nvfp4_gpu][experts]") {
    auto ex = make_gpu();
    std::mt19937 rng(510);
    const int64_t n_expert = 6, rows = 77, cols = 368;
    const NvStack st = random_stack(n_expert, rows, cols, rng);
    const Nv shared = random_nvfp4(rows, cols, rng), other = random_nvfp4(rows, cols + 32, rng);
    for (const int plan : {0, 1, 2}) {  // regs, async, regs2
        nv::cuda::Settings s;
        s.gemv_async = plan == 1;
        s.gemv_regs2 = plan == 2;
        const auto w = load_stack(*ex, st, rows, cols, s);
        const auto d = load(*ex, shared, s), o = load(*ex, other, s);
        INFO((plan == 1 ? "async" : plan == 2 ? "regs2" : "regs"));
        extra_cases(*ex, *w, st.ref, *d, shared.w, *o, rng);
        CHECK_FALSE(w->takes_extra(*d, 4, 2));  // 8 pairs > 6 experts: the grouped path takes no extra slot
    }
    // With the fused down projection: weighted calls with x per slot run it with the extra slot as slot top_k
    // ([gate | up] rows or plain), the others the GEMV (SwiGLU rows into the workspace first).
    nv::cuda::Settings fused;
    fused.experts_fused_down = true;
    const auto wf = load_stack(*ex, st, rows, cols, fused);
    const auto df = load(*ex, shared, fused), of = load(*ex, other, fused);
    for (const bool swiglu : {false, true}) {
        INFO("fused down" << (swiglu ? ", [gate | up] rows" : ""));
        extra_cases(*ex, *wf, st.ref, *df, shared.w, *of, rng, swiglu);
    }
}

TEST_CASE("quant_nvfp4 cuda: expert grouped matmul on the tensor cores (token tiles, row blocks, partial chunks)",
          "[quant_nvfp4_gpu][experts]") {
    auto ex = make_gpu();
    std::mt19937 rng(515);
    // 77 x 368: a partial row group, 3 chunks of 128 columns (the last one partial); 300 x 96: two row blocks of 256,
    // one chunk whose last lane is past the columns.
    for (const auto& [rows, cols] : std::vector<std::pair<int64_t, int64_t>>{{77, 368}, {300, 96}}) {
        const int64_t n_expert = 6;
        const NvStack st = random_stack(n_expert, rows, cols, rng);
        const auto& ref = st.ref;
        for (const int nt : {-1, 2, 4, 8}) {
            nv::cuda::Settings s;
            s.experts_gemm = nt;
            const auto w =
                load_stack(*ex, st, rows, cols, s);
            INFO(rows << "x" << cols << ", token tiles " << (nt < 0 ? std::string("auto") : std::to_string(nt)));
            // exact weights times bf16 activations, fp32 sums: against the reference on bf16-rounded x
            experts_cases(*ex, *w, ref, 1e-4, rng, {1, 5, 33, 100}, gemm_rounding);
        }
    }
}

TEST_CASE("quant_nvfp4 cuda: fused MoE down (SwiGLU of [gate | up] rows, one decode kernel per weighted call)",
          "[quant_nvfp4_gpu][experts]") {
    auto ex = make_gpu();
    std::mt19937 rng(525);
    const int64_t n_expert = 6, rows = 77, cols = 368;
    const NvStack st = random_stack(n_expert, rows, cols, rng);
    const auto& ref = st.ref;
    for (const bool gemm : {false, true}) {
        nv::cuda::Settings s;
        s.experts_fused_down = true;
        s.experts_gemm = gemm ? -1 : 0;
        const auto w = load_stack(*ex, st, rows, cols, s);
        CHECK(w->swiglu_input());
        INFO((gemm ? "prefill on the tensor cores (bf16 activations)" : "prefill through the GEMV"));
        for (const bool swiglu : {false, true}) {
            INFO((swiglu ? "[gate | up] rows" : "plain rows"));
            // decode (pairs <= experts) is exact in fp32 either way; grouped calls run the GEMM when gemm
            const RoundOf round = gemm ? RoundOf(gemm_rounding) : RoundOf();
            experts_cases(*ex, *w, ref, 1e-4, rng, {1, 2, 5, 33}, round, swiglu);
        }
    }
}

TEST_CASE("quant_nvfp4 cuda: experts_swiglu: the decode expert GEMV stages silu(gate) * up of [gate | up] rows",
          "[quant_nvfp4_gpu][experts]") {
    auto ex = make_gpu();
    std::mt19937 rng(527);
    const int64_t n_expert = 6, rows = 77, cols = 368;
    const NvStack st = random_stack(n_expert, rows, cols, rng);
    const Nv shared = random_nvfp4(rows, cols, rng), other = random_nvfp4(rows, cols + 32, rng);
    nv::cuda::Settings on, off;
    on.experts_swiglu = true;
    off.experts_swiglu = false;
    off.gemv_stage_x = 0;  // the plain GEMV after the SwiGLU op
    const auto w = load_stack(*ex, st, rows, cols, on), w0 = load_stack(*ex, st, rows, cols, off);
    const auto d = load(*ex, shared, on), d0 = load(*ex, shared, off), o = load(*ex, other, on);
    CHECK(w->swiglu_input());
    CHECK_FALSE(w0->swiglu_input());
    // decode calls stage the rows where x is 16-byte aligned (odd token counts here), the rest take the SwiGLU
    // pass; prefill (33 tokens) runs the tensor-core GEMM, which applies SwiGLU as it stages x in bf16
    for (const bool swiglu : {false, true}) {
        INFO((swiglu ? "[gate | up] rows" : "plain rows"));
        experts_cases(*ex, *w, st.ref, 1e-4, rng, {1, 2, 5, 33}, gemm_rounding, swiglu);
        extra_cases(*ex, *w, st.ref, *d, shared.w, *o, rng, swiglu);
    }
    swiglu_staged_cases(*ex, *w, *w0, *d, *d0, rng);
}

TEST_CASE("quant_nvfp4 cuda: gemv_stage_x: x staged in shared memory, dense and expert GEMVs",
          "[quant_nvfp4_gpu][gemv][experts]") {
    auto ex = make_gpu();
    std::mt19937 rng(529);
    nv::cuda::Settings on, off;
    on.gemv_stage_x = 2;
    off.gemv_stage_x = 0;
    // 203 x 368: a partial chunk and row group; 130 x 1040: 8 tokens staged in 33 KB; 77 x 2048: 5-8 tokens do
    // not fit (64 KB), the plain kernel
    for (const auto& [rows, cols] : std::vector<std::pair<int64_t, int64_t>>{{203, 368}, {130, 1040}, {77, 2048}}) {
        const Nv n = random_nvfp4(rows, cols, rng);
        const auto w = load(*ex, n, on), w0 = load(*ex, n, off);
        gemv_cases(*ex, *w, n.w, rng, {1, 2, 3, 5, 8}, "staged x");
        stage_x_same_bits(*ex, *w, *w0, rng);
    }
    const int64_t n_expert = 6, rows = 77, cols = 368;
    const NvStack st = random_stack(n_expert, rows, cols, rng);
    const Nv shared = random_nvfp4(rows, cols, rng), other = random_nvfp4(rows, cols + 32, rng);
    on.gemv_stage_x = 1;
    const auto w = load_stack(*ex, st, rows, cols, on), w0 = load_stack(*ex, st, rows, cols, off);
    const auto d = load(*ex, shared, on), o = load(*ex, other, on);
    experts_cases(*ex, *w, st.ref, 1e-4, rng, {1, 2, 5, 33}, gemm_rounding);
    extra_cases(*ex, *w, st.ref, *d, shared.w, *o, rng);
    stage_x_same_bits(*ex, *w, *w0, rng);
}

TEST_CASE("quant_nvfp4 cuda: the staged GEMVs (x, SwiGLU, norm) on forced warps per row group, the same bits",
          "[quant_nvfp4_gpu][gemv][experts]") {
    auto ex = make_gpu();
    std::mt19937 rng(531);
    nv::cuda::Settings staged, ring, plain;  // all staged kernels on against none
    for (nv::cuda::Settings* s : {&staged, &ring}) {
        s->gemv_stage_x = 2;
        s->experts_swiglu = true;
        s->fuse_norm = true;
    }
    ring.gemv_async = true;  // a norm-fused call runs the regs plan whatever the setting's plan
    plain.gemv_stage_x = 0;
    plain.experts_swiglu = false;
    plain.fuse_norm = false;
    // dense: staged copies (1-8 tokens) and the fused norm, against the plain kernel
    for (const auto& [rows, cols] : std::vector<std::pair<int64_t, int64_t>>{{203, 368}, {130, 1040}, {77, 2048}}) {
        const Nv n = random_nvfp4(rows, cols, rng);
        for (const int kw : {0, 1, 2}) {  // automatic (half-warp groups on 368 columns), 1 and 2 warps a group
            INFO("kw " << kw);
            staged.gemv_kw = ring.gemv_kw = plain.gemv_kw = kw;  // the same plan: the same lanes and sums
            const auto ws = load(*ex, n, staged), wr = load(*ex, n, ring), wp = load(*ex, n, plain);
            gemv_cases(*ex, *ws, n.w, rng, {1, 2, 3, 5, 8}, "staged x");
            stage_x_same_bits(*ex, *ws, *wp, rng);
            norm_same_bits(*ex, *ws, *wr, rng);
        }
    }
    staged.gemv_kw = plain.gemv_kw = 0;
    // experts: staged copies and the staged SwiGLU (with the extra slot)
    const int64_t n_expert = 6, rows = 77, cols = 368;
    const NvStack st = random_stack(n_expert, rows, cols, rng);
    const Nv shared = random_nvfp4(rows, cols, rng);
    const auto ws = load_stack(*ex, st, rows, cols, staged), wp = load_stack(*ex, st, rows, cols, plain);
    const auto ds = load(*ex, shared, staged), dp = load(*ex, shared, plain);
    experts_cases(*ex, *ws, st.ref, 1e-4, rng, {1, 2, 5, 33}, gemm_rounding);
    stage_x_same_bits(*ex, *ws, *wp, rng);
    swiglu_staged_cases(*ex, *ws, *wp, *ds, *dp, rng);
}

TEST_CASE("quant_nvfp4 cuda: gemv_mma_tokens: dense calls of 3-8 tokens on the tensor cores, 1-2 on regs",
          "[quant_nvfp4_gpu][gemv]") {
    auto ex = make_gpu();
    std::mt19937 rng(539);
    nv::cuda::Settings mixed, regs, mma;
    mixed.gemv_mma_tokens = 3;
    mma.gemv_mma = true;
    for (const auto& [rows, cols] : std::vector<std::pair<int64_t, int64_t>>{{203, 368}, {130, 2048}}) {
        INFO(rows << "x" << cols);
        const Nv n = random_nvfp4(rows, cols, rng);
        mma_tokens_cases(*ex, *load(*ex, n, mixed), *load(*ex, n, regs), *load(*ex, n, mma), rng);
    }
}

TEST_CASE("quant_nvfp4 cuda: gemv_int8_x: x as int8 per 16 columns, dp4a sums (dense and expert GEMVs)",
          "[quant_nvfp4_gpu][gemv][experts]") {
    auto ex = make_gpu();
    std::mt19937 rng(533);
    nv::cuda::Settings on;
    on.gemv_int8_x = 2;
    // 203 x 368: a partial chunk (12 of 32 columns) and row group; 130 x 1040: 8 tokens staged in 13 KB; 77 x 2048;
    // one row of one group
    for (const auto& [rows, cols] :
         std::vector<std::pair<int64_t, int64_t>>{{203, 368}, {130, 1040}, {77, 2048}, {1, 16}}) {
        const Nv n = random_nvfp4(rows, cols, rng);
        const auto w = load(*ex, n, on);
        for (const int64_t t : {1, 2, 3, 5, 8})
            for (const bool acc : {false, true})
                for (const int64_t xs : {cols, cols + 3}) {
                    INFO(rows << "x" << cols << ", int8 x, tokens " << t << (acc ? ", accumulate" : "")
                              << ", x stride " << xs);
                    const Check c = matmul_case(*ex, *w, n.w, t, xs, rows + 5, acc, rng, [&](const std::vector<float>& x) {
                        return int8_activations(x, xs, t, cols);
                    });
                    CHECK(c.unwritten == 0);
                    CHECK(c.overwritten == 0);
                    CHECK(c.rel <= 1e-4);
                }
    }
    const int64_t n_expert = 6, rows = 77, cols = 368;
    const NvStack st = random_stack(n_expert, rows, cols, rng);
    on.gemv_int8_x = 1;
    const auto w = load_stack(*ex, st, rows, cols, on);
    // decode calls (pairs <= experts) round x to int8, grouped ones run the tensor-core GEMM (bf16)
    experts_cases(*ex, *w, st.ref, 1e-4, rng, {1, 2, 5, 33},
                  [](const ExpertsCase&, bool grouped) { return grouped ? XRound::Bf16 : XRound::Int8; });
    // [gate | up] rows: the down projection's decode GEMV stages silu(gate) * up in fp32 whatever gemv_int8_x says
    // (the reference's values exactly); the grouped calls' GEMM rounds the kernel's silu(gate) * up to bf16, the
    // reference rounds its own (std::exp), and one rounding that falls the other way moves a 368-column dot by ~2^-9
    // of a term: 1.56e-4 measured (H100, 5 tokens x top 4 accumulating), so 3e-4 here. The same with int8 off.
    experts_cases(*ex, *w, st.ref, 3e-4, rng, {1, 5}, gemm_rounding, true);
    nv::cuda::Settings exact;
    const auto we = load_stack(*ex, st, rows, cols, exact);
    experts_cases(*ex, *we, st.ref, 3e-4, rng, {1, 5}, gemm_rounding, true);
}

TEST_CASE("quant_nvfp4 cuda: gemv_int8_warps: CTAs of 16 and 32 warps give the 8-warp kernel's bits",
          "[quant_nvfp4_gpu][gemv]") {
    auto ex = make_gpu();
    std::mt19937 rng(541);
    // 203 x 368: a partial chunk and row group; 77 x 2048; 1000 x 4096: more rows than one CTA of 32 warps holds;
    // 300 x 8224: x wider than 8192 columns (0, from the shape: 16 warps)
    for (const auto& [rows, cols] :
         std::vector<std::pair<int64_t, int64_t>>{{203, 368}, {77, 2048}, {1000, 4096}, {300, 8224}}) {
        const Nv n = random_nvfp4(rows, cols, rng);
        for (const int kw : {0, 1, 2, 4, 8})
            for (const int warps : {0, 16, 32}) {
                INFO(rows << "x" << cols << ", kw " << kw << ", warps " << warps);
                nv::cuda::Settings base, wide;
                base.gemv_int8_x = wide.gemv_int8_x = 2;
                base.gemv_kw = wide.gemv_kw = kw;
                base.gemv_int8_warps = 8;
                wide.gemv_int8_warps = warps;
                const auto w = load(*ex, n, wide);
                if (kw > 0) {  // the same row groups: the same sums in the same order
                    const auto b = load(*ex, n, base);
                    dense_same_bits(*ex, *w, [&](int64_t) -> const Weight& { return *b; }, rng, {1});
                }
                const Check c = matmul_case(*ex, *w, n.w, 1, cols + 3, rows + 5, true, rng,
                                            [&](const std::vector<float>& x) {
                                                return int8_activations(x, cols + 3, 1, cols);
                                            });
                CHECK(c.unwritten == 0);
                CHECK(c.overwritten == 0);
                CHECK(c.rel <= 1e-4);
            }
    }
    // A NaN or infinite x makes its group's unit NaN, so every output NaN (as the exact GEMV's sums), at every CTA size
    for (const float v : {NAN, INFINITY, -INFINITY})
        for (const int warps : {8, 16, 32}) {
            INFO("x[37] = " << v << ", warps " << warps);
            nv::cuda::Settings s;
            s.gemv_int8_x = 2;
            s.gemv_int8_warps = warps;
            const int64_t rows = 96, cols = 8224;
            const Nv n = random_nvfp4(rows, cols, rng);
            const auto w = load(*ex, n, s);
            auto xh = random_floats(size_t(cols), rng);
            xh[37] = v;
            const float* x = device_copy(*ex, xh);
            float* y = device_copy(*ex, poison_floats(size_t(rows)));
            w->matmul(*ex, x, cols, y, rows, 1, false);
            const auto yh = download(*ex, y, size_t(rows));
            int nan = 0;
            for (const float f : yh) nan += std::isnan(f) && !is_poison(f) ? 1 : 0;
            CHECK(nan == rows);
        }
    nv::cuda::Settings bad;
    bad.gemv_int8_x = 2;
    bad.gemv_int8_warps = 12;
    const Nv n = random_nvfp4(64, 256, rng);
    const auto w = load(*ex, n, bad);
    const float* x = device_copy(*ex, random_floats(256, rng));
    float* y = device_copy(*ex, poison_floats(64));
    CHECK_THROWS_WITH(w->matmul(*ex, x, 256, y, 64, 1, false), Catch::Contains("12 is not 8, 16 or 32"));
}

TEST_CASE("quant_nvfp4 cuda: a captured graph replays GEMV, prefill and experts with new inputs",
          "[quant_nvfp4_gpu][graph]") {
    auto ex = make_gpu();
    std::mt19937 rng(606);
    const Nv n = random_nvfp4(160, 512, rng);
    const NvStack st = random_stack(5, 48, 256, rng);
    const auto& ref = st.ref;
    nv::cuda::Settings gemv_experts;
    gemv_experts.experts_gemm = 0;
    const auto e = load_stack(*ex, st, 48, 256, gemv_experts);
    SECTION("bf16 prefill") {
        graph_case(*ex, *load(*ex, n), n.w, 24, 5e-3, *e, ref, rng);
    }
    SECTION("async GEMV loads, bf16 prefill") {
        nv::cuda::Settings s;
        s.experts_gemm = 0;
        s.gemv_async = true;
        const auto ea = load_stack(*ex, st, 48, 256, s);
        graph_case(*ex, *load(*ex, n, s), n.w, 24, 5e-3, *ea, ref, rng);
    }
    SECTION("tensor cores: expert GEMM, fused MoE down") {
        nv::cuda::Settings s;
        s.experts_gemm = -1;
        s.experts_fused_down = true;
        const auto et = load_stack(*ex, st, 48, 256, s);
        graph_case(*ex, *load(*ex, n, s), n.w, 24, 5e-3, *et, ref, rng, {}, nullptr, XRound::Bf16);
    }
    SECTION("fp8 prefill") {
        nv::cuda::Settings s;
        s.prefill = nv::cuda::Settings::Prefill::Fp8AtLoad;
        const auto w = load(*ex, n, s);
        graph_case(*ex, *w, fp8_copy(n), 32, 1e-2, *e, ref, rng,
                   [&](const std::vector<float>& x, int64_t t) { return fp8_activations(x, n.cols, t, n.cols); },
                   &n.w);  // the GEMV reads the NVFP4 codes, not the FP8 copy
        CHECK(wo::fp8_refusals(*w) == 0);
    }
}

TEST_CASE("quant_nvfp4 cuda: bad shapes are one clear error", "[quant_nvfp4_gpu][errors]") {
    auto ex = make_gpu();
    std::vector<uint8_t> codes(64), scales(8);
    CHECK_THROWS_WITH(nv::cuda::make_weight(*ex, 4, 24, codes.data(), scales.data(), 1.f, "blk.3.attn_q.weight"),
                      Catch::Contains("blk.3.attn_q.weight") && Catch::Contains("multiple of 16"));
    CHECK_THROWS_WITH(nv::cuda::make_experts(*ex, 0, 4, 32, codes.data(), scales.data(), nullptr),
                      Catch::Contains("0 experts"));
}
