// quant_ggml expert weights on a CUDA device: the grouped GEMM of prefill (cuda/experts_gemm.cuh; path 3, or
// automatic from CudaOptions::experts_gemm_tokens). For every type with a GEMM (Q4_0, Q4_1, Q8_0, Q4_K, Q5_K, Q6_K,
// BF16), fresh random weights, activations and routing (ids out of range included; with 1 token most experts get
// no pair), 1/7/100 tokens (and 300 for Q4_K, BF16: several groups per expert), top_k 4 and 8; 272 rows (a second
// 256-row block holding one 16-row group), 1024 columns (BF16: 1001, a partial chunk and scalar loads), 2048
// (32-token groups) and Q4_K 4096 (16-token groups); x per token and per slot, [gate | up] rows (x_swiglu),
// weighted and not, y = and y +=. Outputs start poisoned: every output written, nothing else, rows of unweighted
// out-of-range pairs zero.
// Reference: the double-precision grouped matmul of the operands the GEMM multiplies, the weights' reference
// dequantization and the activations rounded to bf16 (tests/experts_gemm_reference.h). The kernel rounds the same
// values the same way (fp32 mul * q + add vs the reference's separate mul and add can move a bf16 rounding once in
// ~2^16 elements), so what remains is fp32 accumulation over at most 4096 products: relative norm
// ||y - ref|| / ||ref|| <= 1e-4 (expected ~1e-6). The 8-token GEMV keeps ~16 bits of x and exact weights, so it
// misses this reference by ~3e-3: passing also shows that the GEMM ran. A captured graph replays with new routing;
// two runs are bit for bit equal.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "cuda_experts.h"
#include "experts_gemm_reference.h"
#include "gpu_test_util.h"

using namespace imp::ggml;
using namespace imp::ggml::test;

namespace {

constexpr double kTol = 1e-4;

struct Variant {
    bool x_per_slot, glu, weighted, accumulate;
};

struct Buffers {
    float *x, *w, *y;
    int32_t* ids;
};

Buffers alloc_buffers(imp::CudaExecutor& ex, int64_t max_pairs, int64_t xs, int64_t rows) {
    Buffers b;
    b.x = static_cast<float*>(ex.alloc(size_t(max_pairs * xs) * 4, "x"));
    b.w = static_cast<float*>(ex.alloc(size_t(max_pairs) * 4, "weights"));
    b.y = static_cast<float*>(ex.alloc(size_t(max_pairs * rows + rows) * 4, "y"));
    b.ids = static_cast<int32_t*>(ex.alloc(size_t(max_pairs) * 4, "ids"));
    return b;
}

// One routing and activations on the host and the device; the reference of variant v.
struct Inputs {
    std::vector<float> x;
    Routing rt;
};
Inputs upload_inputs(imp::CudaExecutor& ex, const Buffers& b, int64_t n_rows, int64_t xs, int64_t n_tokens,
                     int64_t top_k, int64_t n_expert, std::mt19937& rng) {
    Inputs in;
    in.x = random_floats(size_t(n_rows * xs), rng);
    in.rt = random_routing(n_tokens, top_k, n_expert, true, rng);
    ex.upload(b.x, in.x.data(), in.x.size() * 4);
    ex.upload(b.ids, in.rt.ids.data(), in.rt.ids.size() * 4);
    ex.upload(b.w, in.rt.weights.data(), in.rt.weights.size() * 4);
    return in;
}

imp::ExpertMatmul args(const Buffers& b, const Variant& v, int64_t xs, int64_t n_tokens, int64_t top_k, int64_t rows) {
    imp::ExpertMatmul m;
    m.x = b.x;
    m.x_stride = xs;
    m.x_per_slot = v.x_per_slot;
    m.x_swiglu = v.glu;
    m.ids = b.ids;
    m.weights = v.weighted ? b.w : nullptr;
    m.n_tokens = n_tokens;
    m.top_k = top_k;
    m.y = b.y;
    m.y_stride = rows;
    m.accumulate = v.accumulate;
    return m;
}

// y: n_out rows of `rows` floats plus one poisoned row after them; init: the same layout.
void require_close(const Expected& e, const std::vector<float>& y, const std::vector<float>& init, double tol) {
    int64_t unwritten = 0, overwritten = 0, bad_exact = 0;
    double num = 0, den = 0;
    for (size_t i = 0; i < y.size(); ++i) {
        const int64_t o = int64_t(i) / e.rows;
        if (o >= e.n_out) {
            overwritten += std::memcmp(&y[i], &init[i], 4) != 0;
            continue;
        }
        if (e.exact[size_t(o)]) {
            bad_exact += y[i] != e.value[i];
            continue;
        }
        if (is_poison(y[i])) {
            ++unwritten;
            continue;
        }
        const double d = double(y[i]) - e.value[i];
        num += d * d;
        den += e.value[i] * e.value[i];
    }
    CHECK(unwritten == 0);
    CHECK(overwritten == 0);
    CHECK(bad_exact == 0);
    const double rel = std::sqrt(num / (den > 0 ? den : 1e-300));
    INFO("relative error " << rel << ", bound " << tol);
    CHECK(rel <= tol);
}

// Runs variant v on w and checks it against the reference of weights wb on the host inputs, rounded to bf16
// (bf16_x; wb then holds bf16 weights) or as they are.
void run_variant(imp::CudaExecutor& ex, const imp::ExpertWeights& w, const RandomExperts& wb, const Buffers& b,
                 const Inputs& in, const Variant& v, int64_t xs, int64_t n_tokens, int64_t top_k, double tol,
                 std::mt19937& rng, bool bf16_x = true) {
    const int64_t cols = wb.cols, rows = wb.rows, n_rows = v.x_per_slot ? n_tokens * top_k : n_tokens;
    std::vector<float> xb = bf16_inputs(in.x, xs, n_rows, cols, v.glu);
    if (!bf16_x) {
        REQUIRE(!v.glu);
        for (int64_t t = 0; t < n_rows; ++t)
            for (int64_t c = 0; c < cols; ++c) xb[size_t(t * cols + c)] = in.x[size_t(t * xs + c)];
    }
    const PairDots dots = pair_dots(wb, xb, cols, v.x_per_slot, in.rt, n_tokens, top_k);
    const int64_t n_out = v.weighted ? n_tokens : n_tokens * top_k;
    std::vector<float> init(size_t((n_out + 1) * rows));
    std::memset(init.data(), 0xFF, init.size() * 4);
    if (v.accumulate) {
        const auto z = random_floats(size_t(n_out * rows), rng);
        std::copy(z.begin(), z.end(), init.begin());
    }
    const Expected e = combine(dots, wb.n_expert, in.rt, v.weighted, n_tokens, top_k, v.accumulate ? &init : nullptr,
                               rows);
    ex.upload(b.y, init.data(), init.size() * 4);
    w.grouped_matmul(ex, args(b, v, xs, n_tokens, top_k, rows));
    ex.synchronize();
    std::vector<float> y(init.size());
    ex.download(y.data(), b.y, y.size() * 4);
    require_close(e, y, init, tol);
    if (v.accumulate) return;
    w.grouped_matmul(ex, args(b, v, xs, n_tokens, top_k, rows));  // once more: bit for bit the same
    ex.synchronize();
    std::vector<float> y2(init.size());
    ex.download(y2.data(), b.y, y2.size() * 4);
    CHECK(std::memcmp(y.data(), y2.data(), y.size() * 4) == 0);
}

const Variant kVariants[] = {{false, false, false, false},
                             {false, false, true, true},
                             {true, false, false, true},
                             {true, true, true, false},
                             {true, true, false, false}};

}  // namespace

namespace {

// The types of the GEMM test below, and its body over a part of them (every_type_part: one of 7 test cases).
const std::vector<std::string> kGemmTypes = {"Q4_0", "Q4_1", "Q8_0", "Q4_K", "Q5_K", "Q6_K", "BF16"};

void gemm_types(const std::vector<std::string>& types) {
    REQUIRE(!types.empty());

    auto ex = make_gpu();
    const uint32_t seed = std::random_device{}();
    INFO("seed " << seed);
    std::mt19937 rng(seed);
    struct Shape {
        int64_t n_expert, rows, cols;
    };
    for (const std::string& type : types) {
        const bool big = type == "Q4_K" || type == "BF16";
        std::vector<Shape> shapes = {{16, 272, type == "BF16" ? 1001 : 1024}, {6, 40, 2048}};
        if (type == "Q4_K") shapes.push_back({5, 24, 4096});
        for (const Shape s : shapes) {
            const RandomExperts w = random_experts(type, s.n_expert, s.rows, s.cols, rng);
            const RandomExperts wb = bf16_weights(w);
            const auto e = cuda::load_experts("blk.3.ffn_down_exps.weight", find_type(type)->type, s.n_expert, s.rows,
                                              s.cols, w.per_expert(), *ex);
            cuda::set_experts_plan(*e, {3, 0, 0});
            const int64_t max_tokens = big ? 300 : 100, max_pairs = max_tokens * 8, xs = 2 * s.cols + 4;
            ex->reserve_workspace(e->workspace_bytes(max_tokens, 8));
            const Buffers b = alloc_buffers(*ex, max_pairs, xs, s.rows);
            std::vector<int64_t> tokens = {1, 7, 100};
            if (big && s.n_expert == 16) tokens.push_back(300);
            for (const int64_t n_tokens : tokens)
                for (const int64_t top_k : {4, 8}) {
                    const Inputs in = upload_inputs(*ex, b, n_tokens * top_k, xs, n_tokens, top_k, s.n_expert, rng);
                    for (const Variant& v : kVariants) {
                        INFO(type << " " << s.n_expert << "x" << s.rows << "x" << s.cols << ", tokens " << n_tokens
                                  << ", top_k " << top_k << (v.x_per_slot ? ", x per slot" : "")
                                  << (v.glu ? ", [gate | up]" : "") << (v.weighted ? ", weighted" : "")
                                  << (v.accumulate ? ", accumulate" : ""));
                        run_variant(*ex, *e, wb, b, in, v, xs, n_tokens, top_k, kTol, rng);
                    }
                }
        }
    }
}

}  // namespace

#define GEMM_TYPES(K)                                                                                          \
    TEST_CASE("quant_ggml cuda experts GEMM: grouped_matmul equals the bf16-operand reference for every GEMM " \
              "type (part " #K " of 7)",                                                                       \
              "[quant_ggml_gpu][experts][gemm]") {                                                             \
        gemm_types(every_type_part(kGemmTypes, K - 1, 7));                                                     \
    }
GEMM_TYPES(1)
GEMM_TYPES(2)
GEMM_TYPES(3)
GEMM_TYPES(4)
GEMM_TYPES(5)
GEMM_TYPES(6)
GEMM_TYPES(7)
#undef GEMM_TYPES


TEST_CASE("quant_ggml cuda experts GEMM: bf16x2 dequantization (experts_gemm_dequant) stays near the reference",
          "[quant_ggml_gpu][experts][gemm]") {
    // GemmTiledA2: code - offset exact in bf16, then code * mul + add in one bf16x2 FMA with mul and add rounded to
    // bf16. Against the bf16-operand reference each weight moves by up to 2^-9 (|mul * code| + |add|) more than the
    // reference's own rounding; the outputs' RMS error relative to the reference stays below ~2^-9 times the ratio of
    // those terms to the values (a few where min and scale terms cancel), so 1e-2 here (the fp32 path: 1e-4). The
    // fp32 and bf16x2 outputs of the same inputs must differ (or the plan did not reach the kernel).
    auto ex = make_gpu();
    const uint32_t seed = std::random_device{}();
    INFO("seed " << seed);
    std::mt19937 rng(seed);
    const int64_t n_expert = 16, rows = 272, cols = 1024, n_tokens = 100, top_k = 8, xs = 2 * cols + 4;
    for (const std::string type : {"Q4_0", "Q4_1", "Q4_K", "Q5_K", "Q6_K"}) {
        const RandomExperts w = random_experts(type, n_expert, rows, cols, rng);
        const RandomExperts wb = bf16_weights(w);
        const auto e = cuda::load_experts("blk.3.ffn_down_exps.weight", find_type(type)->type, n_expert, rows, cols,
                                          w.per_expert(), *ex);
        ex->reserve_workspace(e->workspace_bytes(n_tokens, top_k));
        const Buffers b = alloc_buffers(*ex, n_tokens * top_k, xs, rows);
        const Inputs in = upload_inputs(*ex, b, n_tokens * top_k, xs, n_tokens, top_k, n_expert, rng);
        for (const Variant& v : kVariants) {
            INFO(type << (v.x_per_slot ? ", x per slot" : "") << (v.glu ? ", [gate | up]" : "")
                      << (v.weighted ? ", weighted" : "") << (v.accumulate ? ", accumulate" : ""));
            std::vector<float> y[2];
            for (const int dq : {1, 2}) {
                cuda::set_experts_plan(*e, {3, 0, 0, 0, 0, dq});
                run_variant(*ex, *e, wb, b, in, v, xs, n_tokens, top_k, dq == 1 ? kTol : 1e-2, rng);
                y[dq - 1].resize(size_t((v.weighted ? n_tokens : n_tokens * top_k) * rows));
                ex->download(y[dq - 1].data(), b.y, y[dq - 1].size() * 4);
            }
            if (!v.accumulate) CHECK(std::memcmp(y[0].data(), y[1].data(), y[0].size() * 4) != 0);  // same y init
        }
        CHECK_THROWS_WITH(cuda::set_experts_plan(*e, {3, 0, 0, 0, 0, 3}), Catch::Contains("dequantization 3"));
    }
}

TEST_CASE("quant_ggml cuda experts GEMM: experts_gemm_tokens picks the GEMM from that many tokens on",
          "[quant_ggml_gpu][experts][gemm]") {
    auto ex = make_gpu();
    const uint32_t seed = std::random_device{}();
    INFO("seed " << seed);
    std::mt19937 rng(seed);
    const int64_t n_expert = 8, rows = 64, cols = 768, top_k = 4, xs = 2 * cols;
    const RandomExperts w = random_experts("Q6_K", n_expert, rows, cols, rng);
    cuda::CudaOptions o;
    o.experts_gemm_tokens = 40;
    const auto e = cuda::load_experts("blk.0.ffn_down_exps.weight", Type::Q6_K, n_expert, rows, cols, w.per_expert(),
                                      *ex, o);
    ex->reserve_workspace(e->workspace_bytes(40, top_k));
    const Buffers b = alloc_buffers(*ex, 40 * top_k, xs, rows);
    const Variant v{true, true, true, false};
    // 40 tokens: the GEMM (the bf16-operand reference within 1e-4). 39: the grouped GEMV, within its own bound
    // (1e-3 of the exact reference, cuda_experts_test.cpp).
    const Inputs in40 = upload_inputs(*ex, b, 40 * top_k, xs, 40, top_k, n_expert, rng);
    run_variant(*ex, *e, bf16_weights(w), b, in40, v, xs, 40, top_k, kTol, rng);
    const Inputs in39 = upload_inputs(*ex, b, 39 * top_k, xs, 39, top_k, n_expert, rng);
    run_variant(*ex, *e, w, b, in39, {true, false, true, false}, xs, 39, top_k, 1e-3, rng, false);
}

TEST_CASE("quant_ggml cuda experts GEMM: a captured graph follows new ids and weights in device memory",
          "[quant_ggml_gpu][experts][gemm][graph]") {
    auto ex = make_gpu();
    const uint32_t seed = std::random_device{}();
    INFO("seed " << seed);
    std::mt19937 rng(seed);
    const int64_t n_expert = 16, rows = 96, cols = 1024, top_k = 8, n_tokens = 64, xs = cols;
    for (const std::string type : {"Q4_K", "Q8_0"}) {
        const RandomExperts w = random_experts(type, n_expert, rows, cols, rng);
        const RandomExperts wb = bf16_weights(w);
        const auto e = cuda::load_experts("blk.0.ffn_gate_exps.weight", find_type(type)->type, n_expert, rows, cols,
                                          w.per_expert(), *ex);
        cuda::set_experts_plan(*e, {3, 0, 0});
        ex->reserve_workspace(e->workspace_bytes(n_tokens, top_k));
        const Buffers b = alloc_buffers(*ex, n_tokens * top_k, xs, rows);
        const Variant v{false, false, true, false};
        Inputs in = upload_inputs(*ex, b, n_tokens, xs, n_tokens, top_k, n_expert, rng);
        ex->capture_begin();
        e->grouped_matmul(*ex, args(b, v, xs, n_tokens, top_k, rows));
        const int graph = ex->capture_end();
        for (int rep = 0; rep < 3; ++rep) {
            INFO(type << ", replay " << rep);
            if (rep > 0) in = upload_inputs(*ex, b, n_tokens, xs, n_tokens, top_k, n_expert, rng);
            const std::vector<float> xb = bf16_inputs(in.x, xs, n_tokens, cols, false);
            const Expected ref = combine(pair_dots(wb, xb, cols, false, in.rt, n_tokens, top_k), n_expert, in.rt,
                                         true, n_tokens, top_k, nullptr, rows);
            std::vector<float> init(size_t((n_tokens + 1) * rows));
            std::memset(init.data(), 0xFF, init.size() * 4);
            ex->upload(b.y, init.data(), init.size() * 4);
            ex->replay(graph);
            ex->synchronize();
            std::vector<float> y(init.size());
            ex->download(y.data(), b.y, y.size() * 4);
            require_close(ref, y, init, kTol);
        }
    }
}

// Each output (row, pair) is the same MMAs over the same staged row whatever the group size (8 nt pairs) and the
// register cap (experts_gemm_ctas 2 spills where 1 does not), so the variants agree bit for bit, and each with
// the bf16-operand reference. 100 tokens x top 8 over 16 experts: ~50 pairs per expert, several groups each.
// A test case per type (all four in one ran past 528 s under racecheck).
static void tile_counts_same_bits(const std::string& type) {
    auto ex = make_gpu();
    const uint32_t seed = std::random_device{}();
    INFO("seed " << seed);
    std::mt19937 rng(seed);
    const int64_t n_expert = 16, rows = 272, cols = 1024, top_k = 8, n_tokens = 100, xs = 2 * cols;
    const RandomExperts w = random_experts(type, n_expert, rows, cols, rng);
    const RandomExperts wb = bf16_weights(w);
    const auto e = cuda::load_experts("blk.1.ffn_down_exps.weight", find_type(type)->type, n_expert, rows, cols,
                                      w.per_expert(), *ex);
    ex->reserve_workspace(e->workspace_bytes(n_tokens, top_k));
    const Buffers b = alloc_buffers(*ex, n_tokens * top_k, xs, rows);
    const Inputs in = upload_inputs(*ex, b, n_tokens * top_k, xs, n_tokens, top_k, n_expert, rng);
    for (const Variant& v : {Variant{true, true, true, false}, Variant{false, false, false, false}}) {
        std::vector<float> first;
        for (const int nt : {8, 4, 2})
            for (const int ctas : {1, 2}) {
                INFO(type << ", " << nt << " tiles, " << ctas << " CTAs per SM" << (v.weighted ? ", weighted" : ""));
                cuda::set_experts_plan(*e, {3, 0, 0, nt, ctas});
                run_variant(*ex, *e, wb, b, in, v, xs, n_tokens, top_k, kTol, rng);
                const int64_t n_out = v.weighted ? n_tokens : n_tokens * top_k;
                std::vector<float> y(size_t(n_out * rows));
                ex->download(y.data(), b.y, y.size() * 4);
                if (first.empty())
                    first = y;
                else
                    CHECK(std::memcmp(first.data(), y.data(), y.size() * 4) == 0);
            }
    }
    CHECK_THROWS_WITH(cuda::set_experts_plan(*e, {3, 0, 0, 3, 1}), Catch::Contains("3 token tiles"));
    CHECK_THROWS_WITH(cuda::set_experts_plan(*e, {3, 0, 0, 0, 3}), Catch::Contains("3 CTAs per SM"));
}

#define TILE_COUNTS_SAME_BITS(TYPE)                                                                            \
    TEST_CASE("quant_ggml cuda experts GEMM: every tile count and CTAs per SM give the same bits: " TYPE,     \
              "[quant_ggml_gpu][experts][gemm]") {                                                             \
        tile_counts_same_bits(TYPE);                                                                           \
    }
TILE_COUNTS_SAME_BITS("Q4_K")
TILE_COUNTS_SAME_BITS("Q6_K")
TILE_COUNTS_SAME_BITS("Q4_0")
TILE_COUNTS_SAME_BITS("BF16")
#undef TILE_COUNTS_SAME_BITS
