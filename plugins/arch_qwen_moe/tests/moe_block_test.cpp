// The SDK MoE block (imp/blocks/moe.h) on the CPU executor against a double-precision reference of its formula, in
// the forms the arch never builds from the tiny fixture: a shared expert with its sigmoid gate (Qwen3-Next / 3.5
// layout, gate vector [1, n_embd]), no renormalization with an expert_weights_scale, separate gate and up expert
// weights with and without the shared expert's fused gate|up, several tokens, expert weights that take the
// [gate | up] input (ExpertMatmul::x_swiglu). Also: spec validation messages.
#include <catch2/catch.hpp>

#include <cmath>
#include <map>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "block_harness.h"  // plugins/arch_llama/tests: F32Weight
#include "exec/cpu/cpu_executor.h"
#include "imp/blocks/moe.h"
#include "imp/error.h"
#include "imp/experts.h"
#include "moe_fixture.h"

using namespace imp;
using namespace imp::test;
using blocks_test::F32Weight;

namespace {

// n_expert fp32 matrices [rows, cols] in host memory with ExpertMatmul's semantics (imp/experts.h); `swiglu`:
// what swiglu_input() answers (then the block hands the down projection [gate | up] rows with x_swiglu).
class F32Experts final : public ExpertWeights {
public:
    F32Experts(std::vector<float> w, int64_t ne, int64_t rows, int64_t cols, bool swiglu)
        : w_(std::move(w)), swiglu_(swiglu) {
        n_expert_ = ne, rows_ = rows, cols_ = cols;
    }
    std::string type() const override { return "F32"; }
    uint64_t bytes() const override { return w_.size() * 4; }
    bool swiglu_input() const override { return swiglu_; }
    void grouped_matmul(Executor&, const ExpertMatmul& m) const override {
        if (m.x_swiglu && !swiglu_) throw Error("x_swiglu given to experts whose swiglu_input() is false");
        std::vector<float> act(static_cast<size_t>(cols_));
        for (int64_t t = 0; t < m.n_tokens; ++t) {
            std::vector<double> acc(static_cast<size_t>(rows_), 0.0);
            for (int64_t j = 0; j < m.top_k; ++j) {
                const int64_t p = t * m.top_k + j, e = m.ids[p];
                const float* x = m.x + (m.x_per_slot ? p : t) * m.x_stride;
                if (m.x_swiglu) {  // [gate | up] -> silu(gate) * up
                    for (int64_t c = 0; c < cols_; ++c) act[size_t(c)] = x[c] / (1.f + std::exp(-x[c])) * x[cols_ + c];
                    x = act.data();
                }
                float* y = m.weights ? nullptr : m.y + p * m.y_stride;
                for (int64_t r = 0; r < rows_; ++r) {
                    double s = 0;
                    if (e >= 0 && e < n_expert_)
                        for (int64_t c = 0; c < cols_; ++c) s += double(x[c]) * w_[size_t((e * rows_ + r) * cols_ + c)];
                    if (m.weights) acc[size_t(r)] += m.weights[p] * s;
                    else y[r] = float(m.accumulate ? y[r] + s : s);
                }
            }
            if (m.weights)
                for (int64_t r = 0; r < rows_; ++r) {
                    float& y = m.y[t * m.y_stride + r];
                    y = float(m.accumulate ? y + acc[size_t(r)] : acc[size_t(r)]);
                }
        }
    }

private:
    std::vector<float> w_;
    bool swiglu_;
};

// Random weights for every spec of the layer (fused matrices built from their parts when `fuse`).
class RandomWeights final : public WeightSet {
public:
    // fuse: the file's fused gate|up experts (else separate gate and up); cat: the core's stack of the two;
    // swiglu: the experts take [gate | up] input (swiglu_input())
    RandomWeights(const Layer& layer, std::mt19937& g, bool fuse, bool cat, bool swiglu) {
        std::normal_distribution<float> nd(0.f, 1.f);
        for (const WeightSpec& s : layer.weight_specs()) {
            const int64_t n = std::accumulate(s.shape.begin(), s.shape.end(), int64_t(1), std::multiplies<>());
            std::vector<float> v(static_cast<size_t>(n));
            const float sc = s.use == WeightSpec::Use::Vector && s.shape.size() == 1 ? 0.f : 1.f / std::sqrt(float(s.shape.back()));
            for (auto& x : v) x = s.use == WeightSpec::Use::Vector && s.shape.size() == 1 && sc == 0.f
                                      ? 0.5f + std::abs(nd(g)) * 0.5f
                                      : nd(g) * sc * (s.name.find("gate_inp") != std::string::npos ? 3.f : 1.f);
            if (s.use == WeightSpec::Use::Vector) {
                vec[s.name] = v;
            } else if (s.use == WeightSpec::Use::Experts && !s.concat.empty()) {
                if (!cat) continue;  // the core's gate|up stack from the parts, per expert
                const auto& g0 = raw.at(s.concat[0]);
                const auto& u0 = raw.at(s.concat[1]);
                const int64_t per = s.shape[1] / 2 * s.shape[2];
                std::vector<float> w;
                for (int64_t e = 0; e < s.shape[0]; ++e) {
                    w.insert(w.end(), g0.begin() + e * per, g0.begin() + (e + 1) * per);
                    w.insert(w.end(), u0.begin() + e * per, u0.begin() + (e + 1) * per);
                }
                exp[s.name] = std::make_unique<F32Experts>(w, s.shape[0], s.shape[1], s.shape[2], swiglu);
            } else if (s.use == WeightSpec::Use::Experts) {
                if (s.optional && s.name.find("gate_up") != std::string::npos && !fuse) continue;
                if (s.optional && s.name.find("gate_up") == std::string::npos && fuse) continue;
                raw[s.name] = v;
                exp[s.name] = std::make_unique<F32Experts>(v, s.shape[0], s.shape[1], s.shape[2], swiglu);
            } else if (!s.concat.empty()) {
                if (!fuse) continue;
                std::vector<float> w;
                for (const auto& p : s.concat) w.insert(w.end(), raw.at(p).begin(), raw.at(p).end());
                mat[s.name] = std::make_unique<F32Weight>(w, s.shape[0], s.shape[1]);
            } else {
                raw[s.name] = v;
                mat[s.name] = std::make_unique<F32Weight>(v, s.shape[0], s.shape[1]);
            }
        }
    }
    const Weight* matrix(const std::string& n) const override { return mat.count(n) ? mat.at(n).get() : nullptr; }
    const float* vector(const std::string& n) const override { return vec.count(n) ? vec.at(n).data() : nullptr; }
    const ExpertWeights* experts(const std::string& n) const override { return exp.count(n) ? exp.at(n).get() : nullptr; }
    std::map<std::string, std::vector<float>> raw, vec;
    std::map<std::string, std::unique_ptr<F32Weight>> mat;
    std::map<std::string, std::unique_ptr<F32Experts>> exp;
};

blocks::MoeSpec spec(int ne, int k, int64_t fs) {
    blocks::MoeSpec s;
    s.layer = 3;
    s.n_embd = 48;
    s.n_expert = ne;
    s.top_k = k;
    s.n_ff_exp = 24;
    s.n_ff_shared = fs;
    s.shared_gate = fs > 0;
    s.shared_gate_shape = {1, 48};
    s.norm_topk = false;
    s.weights_scale = 2.f;
    s.eps = 1e-6f;
    s.names = blocks::hf_names("model.layers.{L}.");
    blocks::add_moe_hf_names(s.names);
    s.registry = &moe_registry();
    return s;
}

double silu(double v) { return v / (1 + std::exp(-v)); }

// y = W[e] x for W stored [ne, rows, cols] (e = 0 for a plain matrix)
std::vector<double> mv(const std::vector<float>& w, int64_t e, int64_t rows, int64_t cols, const std::vector<double>& x,
                       int64_t row0 = 0) {
    std::vector<double> y(static_cast<size_t>(rows), 0.0);
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c) y[size_t(r)] += double(w[size_t((e * 0 + r + row0) * cols + c)]) * x[size_t(c)];
    (void)e;
    return y;
}

std::vector<double> reference(const blocks::MoeSpec& s, const RandomWeights& w, const float* x, bool fuse) {
    const int64_t E = s.n_embd, F = s.n_ff_exp;
    const std::string p = s.names.prefix(s.layer);
    const auto& nw = w.vec.at(p + "post_attention_layernorm.weight");
    double ms = 0;
    for (int64_t c = 0; c < E; ++c) ms += double(x[c]) * x[c];
    const double inv = 1.0 / std::sqrt(ms / double(E) + s.eps);
    std::vector<double> xn(static_cast<size_t>(E));
    std::vector<double> out(x, x + E);
    for (int64_t c = 0; c < E; ++c) xn[size_t(c)] = double(float(x[c] * inv)) * nw[size_t(c)];
    const auto& R = w.vec.at(p + "mlp.gate.weight");
    std::vector<double> pr(static_cast<size_t>(s.n_expert));
    for (int e = 0; e < s.n_expert; ++e) {
        double l = 0;
        for (int64_t c = 0; c < E; ++c) l += double(R[size_t(e * E + c)]) * xn[size_t(c)];
        pr[size_t(e)] = l;
    }
    const double mx = *std::max_element(pr.begin(), pr.end());
    double sum = 0;
    for (auto& v : pr) sum += (v = std::exp(v - mx));
    for (auto& v : pr) v /= sum;
    std::vector<int> order(static_cast<size_t>(s.n_expert));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return pr[size_t(a)] > pr[size_t(b)]; });
    for (int j = 0; j < s.top_k; ++j) {
        const int e = order[size_t(j)];
        const double wt = pr[size_t(e)] * s.weights_scale;
        std::vector<double> g, u;
        if (fuse) {
            const auto& gu = w.raw.at(p + "mlp.experts.gate_up_proj");
            std::vector<float> ex(gu.begin() + e * 2 * F * E, gu.begin() + (e + 1) * 2 * F * E);
            g = mv(ex, 0, F, E, xn), u = mv(ex, 0, F, E, xn, F);
        } else {
            const auto& G = w.raw.at(p + "mlp.experts.gate_proj");
            const auto& U = w.raw.at(p + "mlp.experts.up_proj");
            g = mv(std::vector<float>(G.begin() + e * F * E, G.begin() + (e + 1) * F * E), 0, F, E, xn);
            u = mv(std::vector<float>(U.begin() + e * F * E, U.begin() + (e + 1) * F * E), 0, F, E, xn);
        }
        std::vector<double> a(static_cast<size_t>(F));
        for (int64_t i = 0; i < F; ++i) a[size_t(i)] = silu(g[size_t(i)]) * u[size_t(i)];
        const auto& D = w.raw.at(p + "mlp.experts.down_proj");
        const auto d = mv(std::vector<float>(D.begin() + e * E * F, D.begin() + (e + 1) * E * F), 0, E, F, a);
        for (int64_t c = 0; c < E; ++c) out[size_t(c)] += wt * d[size_t(c)];
    }
    if (s.n_ff_shared > 0) {
        const int64_t FS = s.n_ff_shared;
        const auto g = mv(w.raw.at(p + "mlp.shared_expert.gate_proj.weight"), 0, FS, E, xn);
        const auto u = mv(w.raw.at(p + "mlp.shared_expert.up_proj.weight"), 0, FS, E, xn);
        std::vector<double> a(static_cast<size_t>(FS));
        for (int64_t i = 0; i < FS; ++i) a[size_t(i)] = silu(g[size_t(i)]) * u[size_t(i)];
        const auto d = mv(w.raw.at(p + "mlp.shared_expert.down_proj.weight"), 0, E, FS, a);
        const auto& sg = w.vec.at(p + "mlp.shared_expert_gate.weight");
        double gl = 0;
        for (int64_t c = 0; c < E; ++c) gl += double(sg[size_t(c)]) * xn[size_t(c)];
        const double gate = 1 / (1 + std::exp(-gl));
        for (int64_t c = 0; c < E; ++c) out[size_t(c)] += gate * d[size_t(c)];
    }
    return out;
}

void run(const blocks::MoeSpec& s, bool fuse, int64_t n_tokens, uint32_t seed, bool cat = false, bool swiglu = false) {
    INFO("n_expert " << s.n_expert << " top_k " << s.top_k << " shared " << s.n_ff_shared << " fuse " << fuse
                     << " cat " << cat << " swiglu input " << swiglu << " tokens " << n_tokens << " seed " << seed);
    std::mt19937 g(seed);
    auto layer = blocks::make_moe(s);
    RandomWeights w(*layer, g, fuse, cat && !fuse, swiglu);
    layer->bind(w);
    std::vector<float> hidden = blocks_test::uniform(g, size_t(n_tokens * s.n_embd), -2.f, 2.f), in = hidden;
    std::vector<float> scratch(static_cast<size_t>(layer->scratch_floats(n_tokens)), NAN);
    std::vector<int32_t> pos(static_cast<size_t>(n_tokens), 0);
    StepBatch b;
    b.n_tokens = n_tokens;
    b.token_pos = pos.data();
    CpuExecutor ex(2);
    LayerContext ctx{ex, b, {}, {}, scratch.data()};
    layer->forward(ctx, hidden.data());
    double md = 0, mr = 0;
    for (int64_t t = 0; t < n_tokens; ++t) {
        const auto ref = reference(s, w, in.data() + t * s.n_embd, fuse);
        for (int64_t c = 0; c < s.n_embd; ++c) {
            md = std::max(md, std::abs(ref[size_t(c)] - hidden[size_t(t * s.n_embd + c)]));
            mr = std::max(mr, std::abs(ref[size_t(c)]));
        }
    }
    INFO("max|diff| " << md << " max|ref| " << mr);
    CHECK(md <= 1e-5 * mr);
}

}  // namespace

TEST_CASE("MoE block with a gated shared expert equals its formula (CPU)", "[arch_qwen_moe][block]") {
    const uint32_t seed = blocks_test::fresh_seed();
    for (bool fuse : {true, false}) {
        run(spec(8, 2, 40), fuse, 5, seed);
        run(spec(16, 4, 16), fuse, 1, seed + 1);
        run(spec(6, 6, 0), fuse, 9, seed + 2);  // k = n_expert, no shared expert
        run(spec(5, 1, 24), fuse, 3, seed + 3);
    }
    run(spec(8, 2, 40), false, 5, seed + 4, true);  // gate|up stacked by the core from separate tensors
    run(spec(6, 6, 0), false, 9, seed + 5, true);
    // experts that take [gate | up] input: the block skips its SwiGLU and passes x_swiglu to the down projection
    run(spec(8, 2, 40), true, 5, seed + 6, false, true);
    run(spec(6, 6, 0), false, 9, seed + 7, true, true);
}

TEST_CASE("MoE block spec errors name the layer and the field", "[arch_qwen_moe][block]") {
    auto s = spec(8, 9, 0);
    CHECK_THROWS_WITH(blocks::make_moe(s), Catch::Contains("(model.layers.3): top_k 9 must be in [1, n_expert = 8]"));
    s = spec(8, 2, 0);
    s.registry = nullptr;
    CHECK_THROWS_WITH(blocks::make_moe(s), Catch::Contains("built without a registry"));
    s = spec(8, 2, 0);
    s.n_ff_exp = 0;
    CHECK_THROWS_WITH(blocks::make_moe(s), Catch::Contains("n_ff_exp must be positive"));
    s = spec(8, 2, 0);
    Registry empty;
    s.registry = &empty;
    CHECK_THROWS_WITH(blocks::make_moe(s), Catch::Contains("register_moe_ops"));
    s = spec(8, 2, 0);
    s.names.names.erase("ffn_gate_inp");
    CHECK_THROWS_WITH(blocks::make_moe(s), Catch::Contains("no name for role 'ffn_gate_inp'"));
}

TEST_CASE("is_moe_layer follows HF mlp_only_layers and decoder_sparse_step", "[arch_qwen_moe][block]") {
    CHECK(blocks::is_moe_layer(0, {}, 1));
    CHECK_FALSE(blocks::is_moe_layer(1, {1}, 1));
    CHECK_FALSE(blocks::is_moe_layer(0, {}, 2));
    CHECK(blocks::is_moe_layer(1, {}, 2));
    CHECK_FALSE(blocks::is_moe_layer(3, {3}, 2));
}
