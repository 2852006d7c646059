// quant_ggml expert weights on a CUDA device, the decode fusions of the MoE block ([plugin.quant_ggml]
// experts_swiglu, experts_fused_sum).
// ExpertMatmul::x_swiglu: the activation rows hold [gate | up] and
// the GEMV stages silu(gate) * up (the MoE block's down projection without its SwiGLU kernel). Against the
// double-precision reference of each expert on silu(gate) * up computed on the host, for every CUDA type, both
// paths (per pair: the dp4a and the tensor-core forms of Q4_K / Q6_K; grouped), weighted and unweighted, 1/5/33
// tokens x top_k 8 (ids out of range included), 16-byte and unaligned row strides. Outputs start poisoned; rows
// of unweighted pairs whose id is out of range must be zero. Bound as cuda_experts_test.cpp: relative norm
// ||y - ref|| / ||ref|| <= 1e-3 (the staged activations keep ~16 bits, or the dp4a form's ~1.5e-5 of a chunk's
// largest value; the device's expf against the host's differs by ulps). swiglu_input() follows the
// experts_swiglu option.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "cuda_experts.h"
#include "experts_check.h"
#include "experts_reference.h"
#include "gpu_test_util.h"

using namespace imp::ggml;
using namespace imp::ggml::test;

TEST_CASE("quant_ggml cuda experts: x_swiglu ([gate | up] rows) equals the reference on silu(gate) * up",
          "[quant_ggml_gpu][experts]") {
    auto ex = make_gpu();
    const uint32_t seed = std::random_device{}();
    INFO("seed " << seed);
    std::mt19937 rng(seed);
    const int64_t n_expert = 12, rows = 160, top_k = 8, max_pairs = 33 * 8;
    for (const std::string& type : cuda_types()) {
        const TypeInfo& t = *find_type(type);
        const int64_t cols = t.block == 1 ? 1001 : 1024;  // 1001: the unaligned up half takes the scalar loads
        const RandomExperts w = random_experts(type, n_expert, rows, cols, rng);
        for (const bool dp4a : {true, false}) {
            cuda::CudaOptions o;
            o.dp4a = dp4a;
            o.experts_swiglu = true;
            const auto e = cuda::load_experts("blk.0.ffn_down_exps.weight", t.type, n_expert, rows, cols,
                                              w.per_expert(), *ex, o);
            CHECK(e->swiglu_input());
            ex->reserve_workspace(e->workspace_bytes(33, top_k));
            for (const int64_t pad : {4, 3}) {
                const int64_t xs = 2 * cols + pad;
                auto* dx = static_cast<float*>(ex->alloc(size_t(max_pairs * xs) * 4, "x"));
                auto* dids = static_cast<int32_t*>(ex->alloc(size_t(max_pairs) * 4, "ids"));
                auto* dw = static_cast<float*>(ex->alloc(size_t(max_pairs) * 4, "weights"));
                auto* dy = static_cast<float*>(ex->alloc(size_t(max_pairs * rows) * 4, "y"));
                for (const int64_t n_tokens : {1, 5, 33}) {
                    const int64_t n_pairs = n_tokens * top_k;
                    const auto x = random_floats(size_t(n_pairs * xs), rng);
                    std::vector<float> act(size_t(n_pairs * cols));
                    for (int64_t p = 0; p < n_pairs; ++p)
                        for (int64_t c = 0; c < cols; ++c) {
                            const float g = x[size_t(p * xs + c)], u = x[size_t(p * xs + cols + c)];
                            act[size_t(p * cols + c)] = g / (1.f + std::exp(-g)) * u;
                        }
                    const Routing rt = random_routing(n_tokens, top_k, n_expert, true, rng);
                    ex->upload(dx, x.data(), x.size() * 4);
                    ex->upload(dids, rt.ids.data(), rt.ids.size() * 4);
                    ex->upload(dw, rt.weights.data(), rt.weights.size() * 4);
                    const PairDots dots = pair_dots(w, act, cols, true, rt, n_tokens, top_k);
                    for (const int path : {1, 2})
                        for (const bool weighted : {false, true}) {
                            INFO(type << (dp4a ? " dp4a" : " mma") << ", row stride " << xs << ", tokens "
                                      << n_tokens << ", path " << path << (weighted ? ", weighted" : ""));
                            cuda::set_experts_plan(*e, {path, 0, 0});
                            const Expected ref = combine(dots, n_expert, rt, weighted, n_tokens, top_k, nullptr, rows);
                            std::vector<float> y(size_t(ref.n_out * rows));
                            std::memset(y.data(), 0xFF, y.size() * 4);
                            ex->upload(dy, y.data(), y.size() * 4);
                            imp::ExpertMatmul m;
                            m.x = dx;
                            m.x_stride = xs;
                            m.x_per_slot = true;
                            m.x_swiglu = true;
                            m.ids = dids;
                            m.weights = weighted ? dw : nullptr;
                            m.n_tokens = n_tokens;
                            m.top_k = top_k;
                            m.y = dy;
                            m.y_stride = rows;
                            e->grouped_matmul(*ex, m);
                            ex->synchronize();
                            ex->download(y.data(), dy, y.size() * 4);
                            double num = 0, den = 0;
                            int64_t bad_zero = 0;
                            for (int64_t oi = 0; oi < ref.n_out; ++oi)
                                for (int64_t r = 0; r < rows; ++r) {
                                    const float v = y[size_t(oi * rows + r)];
                                    if (ref.exact[size_t(oi)]) {
                                        bad_zero += v != 0.f;
                                        continue;
                                    }
                                    const double d = double(v) - ref.value[size_t(oi * rows + r)];
                                    num += d * d;
                                    den += ref.value[size_t(oi * rows + r)] * ref.value[size_t(oi * rows + r)];
                                }
                            const double rel = std::sqrt(num) / std::sqrt(den > 0 ? den : 1e-300);
                            INFO("relative error " << rel);
                            CHECK(bad_zero == 0);
                            CHECK(rel <= 1e-3);  // NaN (an unwritten, poisoned output) fails too
                        }
                }
            }
        }
    }
    // The option's default: the block applies SwiGLU itself.
    const RandomExperts w = random_experts("Q4_K", 2, 16, 256, rng);
    CHECK_FALSE(cuda::load_experts("e", Type::Q4_K, 2, 16, 256, w.per_expert(), *ex)->swiglu_input());
}

// experts_fused_sum: the last GEMV CTA of a token's slots writes the weighted sum (no reduce kernel). The same
// arithmetic in the same order as the separate sum kernel, so bit for bit the same y: every CUDA type, per-pair
// path, 1/2/5/16 tokens (16 = kSumTokens; 17 takes the sum kernel), top_k 1/4/8 with ids out of range, y = and
// y +=, the automatic plan and forced column splits over a cluster (only the first CTA of a cluster counts), three
// calls in a row (the counters must be back at zero after each) and a captured graph replayed.
namespace {

// The test case's body over `types` (every_type_part: one of 9 test cases, each a part of the types).
void fused_sum_types(const std::vector<std::string>& types) {
    REQUIRE(!types.empty());
    auto ex = make_gpu();
    const uint32_t seed = std::random_device{}();
    INFO("seed " << seed);
    std::mt19937 rng(seed);
    const int64_t n_expert = 12, rows = 160, max_pairs = 17 * 8;
    for (const std::string& type : types) {
        const TypeInfo& t = *find_type(type);
        const int64_t cols = t.block == 1 ? 1001 : 1024, ys = rows + 3;
        const RandomExperts w = random_experts(type, n_expert, rows, cols, rng);
        cuda::CudaOptions on;
        on.experts_fused_sum = true;
        const auto fused = cuda::load_experts("blk.0.ffn_down_exps.weight", t.type, n_expert, rows, cols,
                                              w.per_expert(), *ex, on);
        const auto plain = cuda::load_experts("blk.0.ffn_down_exps.weight", t.type, n_expert, rows, cols,
                                              w.per_expert(), *ex);
        CHECK(fused->bytes() > plain->bytes());  // the counters
        ex->reserve_workspace(fused->workspace_bytes(17, 8));
        auto* dx = static_cast<float*>(ex->alloc(size_t(max_pairs * cols) * 4, "x"));
        auto* dids = static_cast<int32_t*>(ex->alloc(size_t(max_pairs) * 4, "ids"));
        auto* dw = static_cast<float*>(ex->alloc(size_t(max_pairs) * 4, "weights"));
        auto* dy = static_cast<float*>(ex->alloc(size_t(17 * ys) * 4, "y"));
        for (const int64_t n_tokens : {1, 2, 5, 16, 17})
            for (const int64_t top_k : {1, 4, 8}) {
                const auto x = random_floats(size_t(n_tokens * top_k * cols), rng);
                const Routing rt = random_routing(n_tokens, top_k, n_expert, true, rng);
                ex->upload(dx, x.data(), x.size() * 4);
                ex->upload(dids, rt.ids.data(), rt.ids.size() * 4);
                ex->upload(dw, rt.weights.data(), rt.weights.size() * 4);
                const auto y0 = random_floats(size_t(n_tokens * ys), rng);
                for (const int splits : {0, 2})
                    for (const bool acc : {false, true}) {
                        INFO(type << ", tokens " << n_tokens << ", top_k " << top_k << ", splits " << splits
                                  << (acc ? ", accumulate" : ""));
                        cuda::set_experts_plan(*fused, {1, splits, splits ? 4 : 0});
                        cuda::set_experts_plan(*plain, {1, splits, splits ? 4 : 0});
                        imp::ExpertMatmul m;
                        m.x = dx;
                        m.x_stride = cols;
                        m.x_per_slot = true;
                        m.ids = dids;
                        m.weights = dw;
                        m.n_tokens = n_tokens;
                        m.top_k = top_k;
                        m.y = dy;
                        m.y_stride = ys;
                        m.accumulate = acc;
                        const auto call = [&](const imp::ExpertWeights& e) {
                            ex->upload(dy, y0.data(), y0.size() * 4);
                            e.grouped_matmul(*ex, m);
                            ex->synchronize();
                            std::vector<float> y(y0.size());
                            ex->download(y.data(), dy, y.size() * 4);
                            return y;
                        };
                        const auto want = call(*plain);
                        const Expected ref = expected(w, x, cols, true, rt, true, n_tokens, top_k, acc ? &y0 : nullptr, ys);
                        double num = 0, den = 0;
                        for (int64_t o = 0; o < n_tokens; ++o)
                            for (int64_t r = 0; r < rows; ++r) {
                                const double d = double(want[size_t(o * ys + r)]) - ref.value[size_t(o * rows + r)];
                                num += d * d;
                                den += ref.value[size_t(o * rows + r)] * ref.value[size_t(o * rows + r)];
                            }
                        CHECK(std::sqrt(num) <= 1e-3 * std::sqrt(den));
                        for (int rep = 0; rep < 3; ++rep) {
                            INFO("call " << rep);
                            const auto got = call(*fused);
                            CHECK(std::memcmp(got.data(), want.data(), got.size() * 4) == 0);
                        }
                        ex->upload(dy, y0.data(), y0.size() * 4);
                        ex->capture_begin();
                        fused->grouped_matmul(*ex, m);
                        const int graph = ex->capture_end();
                        for (int rep = 0; rep < 2; ++rep) {
                            INFO("replay " << rep);
                            ex->upload(dy, y0.data(), y0.size() * 4);
                            ex->replay(graph);
                            ex->synchronize();
                            std::vector<float> got(y0.size());
                            ex->download(got.data(), dy, got.size() * 4);
                            CHECK(std::memcmp(got.data(), want.data(), got.size() * 4) == 0);
                        }
                    }
            }
    }
}

}  // namespace

#define FUSED_SUM_TYPES(K)                                                                     \
    TEST_CASE("quant_ggml cuda experts: the fused weighted sum equals the sum kernel bit for " \
              "bit (part " #K " of 9)",                                                        \
              "[quant_ggml_gpu][experts]") {                                                   \
        fused_sum_types(every_type_part(cuda_types(), K - 1, 9));                              \
    }
FUSED_SUM_TYPES(1)
FUSED_SUM_TYPES(2)
FUSED_SUM_TYPES(3)
FUSED_SUM_TYPES(4)
FUSED_SUM_TYPES(5)
FUSED_SUM_TYPES(6)
FUSED_SUM_TYPES(7)
FUSED_SUM_TYPES(8)
FUSED_SUM_TYPES(9)
#undef FUSED_SUM_TYPES

