// The shared blocks on the CUDA executor against the CPU executor, fresh random inputs each run (the seed is in the
// failure message): the output-gate ops (split_gated_q exact; apply_output_gate within 1e-6 relative + 1e-7), on
// 16-byte-vector and scalar paths, PDL on and off; and the whole gated attention block (zero-centred norms, q/k norms, partial
// rotary 8 of 32, GQA 4/2, fused and unfused q|k|v through quant_ggml's F32 format) and the SwiGLU FFN over two
// sequences, prefill then decode: the CUDA layer's update of hidden within 2e-4 of the CPU one (max |diff| over
// max |cpu update|; F32 weights and KV, fp32 GEMM/GEMV and attention on both).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "block_harness.h"
#include "blocks/gate_ops.h"
#include "common/max_err.h"
#include "exec/cpu/cpu_executor.h"
#include "exec/cuda/cuda_executor.h"
#include "fixture_registry.h"
#include "imp/blocks/attention.h"
#include "imp/blocks/ffn.h"

using namespace imp;
using namespace imp::blocks_test;

namespace {

CudaExecutor& gpu() {
    static CudaExecutor ex(0);  // throws imp::Error (a test failure) when there is no GPU
    return ex;
}

template <typename T> T* to_device(Executor& ex, const std::vector<T>& v) {
    auto* d = static_cast<T*>(ex.alloc(std::max<size_t>(v.size(), 1) * sizeof(T), "blocks gpu test"));
    if (!v.empty()) ex.upload(d, v.data(), v.size() * sizeof(T));
    return d;
}
std::vector<float> from_device(Executor& ex, const float* d, size_t n) {
    std::vector<float> h(n);
    ex.synchronize();
    ex.download(h.data(), d, n * 4);
    return h;
}

// A layer's weights on `ex` through the registry's formats (fused where the format takes the parts).
class ExecutorWeights final : public WeightSet {
public:
    ExecutorWeights(const Layer& layer, const HostModel& src, Executor& ex, bool fuse) {
        const Registry& reg = test::full_registry();
        uint64_t ws = 0;
        for (const WeightSpec& s : layer.weight_specs()) {
            if (s.use == WeightSpec::Use::Vector) {
                vectors_[s.name] = to_device(ex, s.values.empty() ? src.value(s.name) : s.values);
                continue;
            }
            static const QuantConfig no_quant_config;
            WeightRequest req;
            req.name = s.name;
            req.shape = s.shape;
            req.config = &no_quant_config;
            req.max_tokens = 64;
            if (!s.concat.empty()) {
                if (!fuse) continue;
                for (const auto& p : s.concat) {
                    req.source.parts.emplace_back();
                    req.source.parts.back().main = src.find(p);
                    REQUIRE(req.source.parts.back().main);
                }
            } else {
                req.source.main = src.find(s.name);
                REQUIRE(req.source.main);
            }
            const QuantFormat* f = nullptr;  // the first format whose plan accepts it (the fused one included)
            for (const QuantFormat* c : reg.formats())
                if (!f && c->plan(req, ex).accepted) f = c;
            REQUIRE(f);
            matrices_[s.name] = f->load(req, ex);
            ws = std::max<uint64_t>(ws, matrices_[s.name]->workspace_bytes(64));
        }
        ex.reserve_workspace(size_t(ws));
    }
    const Weight* matrix(const std::string& name) const override {
        auto it = matrices_.find(name);
        return it == matrices_.end() ? nullptr : it->second.get();
    }
    const float* vector(const std::string& name) const override {
        auto it = vectors_.find(name);
        return it == vectors_.end() ? nullptr : it->second;
    }

private:
    std::map<std::string, std::unique_ptr<Weight>> matrices_;
    std::map<std::string, const float*> vectors_;
};

// Runs `layer` on ex over the steps (rows per sequence), inputs xs[step]; returns hidden after each step.
std::vector<std::vector<float>> run_steps(Executor& ex, Layer& layer, const HostModel& m, bool fuse,
                                          const std::vector<std::vector<int>>& steps,
                                          const std::vector<std::vector<float>>& xs, int n_kv, int hd, int64_t E) {
    ExecutorWeights w(layer, m, ex, fuse);
    layer.bind(w);
    KvPool host_kv(2, n_kv, hd);
    KVCacheView kv = host_kv.view;
    kv.k = to_device(ex, host_kv.k);
    kv.v = to_device(ex, host_kv.v);
    std::vector<int> past(2, 0);
    std::vector<std::vector<float>> out;
    for (size_t i = 0; i < steps.size(); ++i) {
        Step st(host_kv, past, steps[i]);
        StepBatch b = st.b;
        b.token_pos = to_device(ex, st.pos);
        b.token_seq = to_device(ex, st.seq);
        b.query_start_loc = to_device(ex, st.qsl);
        b.seq_lens = to_device(ex, st.lens);
        b.block_tables = to_device(ex, st.tables);
        b.slot_mapping = to_device(ex, st.slots);
        float* hidden = to_device(ex, xs[i]);
        auto* scratch = static_cast<float*>(ex.alloc(size_t(layer.scratch_floats(b.n_tokens)) * 4, "scratch"));
        LayerContext ctx{ex, b, kv, {}, scratch};
        layer.forward(ctx, hidden);
        out.push_back(from_device(ex, hidden, size_t(b.n_tokens * E)));
        for (size_t s = 0; s < past.size(); ++s) past[s] += steps[i][s];
    }
    return out;
}

// max |gpu - cpu| / max |cpu - x| over the steps (the layers' updates of hidden).
double update_diff(const std::vector<std::vector<float>>& cpu, const std::vector<std::vector<float>>& dev,
                   const std::vector<std::vector<float>>& xs) {
    imp::test::MaxRelErr e;  // |(dev - x) - (cpu - x)| = |dev - cpu|; NaN/Inf anywhere gives +inf
    if (dev.size() != cpu.size() || xs.size() != cpu.size()) e.poison();
    for (size_t i = 0; i < cpu.size() && i < dev.size() && i < xs.size(); ++i) {
        if (dev[i].size() != cpu[i].size() || xs[i].size() != cpu[i].size()) e.poison();
        for (size_t j = 0; j < cpu[i].size() && j < dev[i].size() && j < xs[i].size(); ++j)
            e.add(double(dev[i][j]) - double(xs[i][j]), double(cpu[i][j]) - double(xs[i][j]));
    }
    return e.value();
}

}  // namespace

TEST_CASE("output-gate ops: CUDA equals the CPU kernels", "[blocks][gpu]") {
    const uint32_t seed = fresh_seed();
    INFO("seed " << seed);
    std::mt19937 g(seed);
    CpuExecutor cpu(2);
    const bool pdl_before = gpu().pdl();
    struct Shape { int64_t n; int heads, hd; int64_t extra; };  // row stride = 2 * heads * hd + extra
    for (const bool pdl : {true, false})
    for (const Shape sh : {Shape{1, 4, 16, 0}, Shape{7, 3, 6, 5}, Shape{33, 8, 128, 2 * 2 * 128}, Shape{2, 2, 256, 1}}) {
        INFO("rows " << sh.n << ", heads " << sh.heads << ", head_dim " << sh.hd << ", stride +" << sh.extra
                     << ", pdl " << pdl);
        gpu().set_pdl(pdl);
        const int64_t qd = int64_t(sh.heads) * sh.hd, stride = 2 * qd + sh.extra;
        const std::vector<float> qg = uniform(g, size_t(sh.n * stride), -6.f, 6.f);
        const std::vector<float> x = uniform(g, size_t(sh.n * qd), -2.f, 2.f);
        std::vector<float> q_cpu(size_t(sh.n * qd)), x_cpu = x;
        blocks::ops::split_gated_q(cpu, qg.data(), stride, q_cpu.data(), sh.n, sh.heads, sh.hd);
        blocks::ops::apply_output_gate(cpu, x_cpu.data(), qg.data(), stride, sh.n, sh.heads, sh.hd);
        const float* d_qg = to_device(gpu(), qg);
        float* d_q = to_device(gpu(), std::vector<float>(size_t(sh.n * qd), NAN));
        float* d_x = to_device(gpu(), x);
        blocks::ops::split_gated_q(gpu(), d_qg, stride, d_q, sh.n, sh.heads, sh.hd);
        blocks::ops::apply_output_gate(gpu(), d_x, d_qg, stride, sh.n, sh.heads, sh.hd);
        CHECK(from_device(gpu(), d_q, q_cpu.size()) == q_cpu);
        const std::vector<float> x_gpu = from_device(gpu(), d_x, x_cpu.size());
        for (size_t i = 0; i < x_cpu.size(); ++i) {
            INFO("x[" << i << "]: gpu " << x_gpu[i] << " vs cpu " << x_cpu[i]);
            REQUIRE(std::abs(x_gpu[i] - x_cpu[i]) <= 1e-6f * std::abs(x_cpu[i]) + 1e-7f);
        }
    }
    gpu().set_pdl(pdl_before);
}

TEST_CASE("gated attention and SwiGLU FFN blocks: CUDA equals the CPU executor", "[blocks][gpu]") {
    const uint32_t seed = fresh_seed();
    INFO("seed " << seed);
    std::mt19937 g(seed);
    const int64_t E = 64;
    const int n_head = 4, n_kv = 2, hd = 32, F = 96;
    HostModel m;
    m.add("blk.0.attn_norm.weight", {E}, uniform(g, size_t(E), -.4f, .4f), true);
    m.add("blk.0.attn_q.weight", {2 * n_head * hd, E}, uniform(g, size_t(2 * n_head * hd * E), -.2f, .2f));
    m.add("blk.0.attn_k.weight", {n_kv * hd, E}, uniform(g, size_t(n_kv * hd * E), -.2f, .2f));
    m.add("blk.0.attn_v.weight", {n_kv * hd, E}, uniform(g, size_t(n_kv * hd * E), -.2f, .2f));
    m.add("blk.0.attn_output.weight", {E, n_head * hd}, uniform(g, size_t(E * n_head * hd), -.2f, .2f));
    m.add("blk.0.attn_q_norm.weight", {hd}, uniform(g, size_t(hd), -.4f, .4f), true);
    m.add("blk.0.attn_k_norm.weight", {hd}, uniform(g, size_t(hd), -.4f, .4f), true);
    m.add("blk.0.ffn_norm.weight", {E}, uniform(g, size_t(E), -.4f, .4f), true);
    m.add("blk.0.ffn_gate.weight", {F, E}, uniform(g, size_t(F * E), -.2f, .2f));
    m.add("blk.0.ffn_up.weight", {F, E}, uniform(g, size_t(F * E), -.2f, .2f));
    m.add("blk.0.ffn_down.weight", {E, F}, uniform(g, size_t(E * F), -.2f, .2f));
    blocks::AttentionSpec a;
    a.n_embd = E, a.n_head = n_head, a.n_kv_head = n_kv, a.head_dim = hd;
    a.rope.n_rot = 8, a.rope.base = 10000.f, a.rope.neox = true;
    a.qk_norm = true, a.output_gate = true, a.norm_offset = 1.f, a.eps = 1e-6f;
    a.names = blocks::gguf_names();
    a.source = &m;
    blocks::FfnSpec f;
    f.n_embd = E, f.n_ff = F, f.eps = 1e-6f, f.norm_offset = 1.f, f.names = a.names, f.source = &m;

    const std::vector<std::vector<int>> steps = {{9, 20}, {1, 1}, {1, 3}};  // prefill, decode, mixed
    std::vector<std::vector<float>> xs;
    for (const auto& s : steps) xs.push_back(uniform(g, size_t((s[0] + s[1]) * E), -1.f, 1.f));
    CpuExecutor cpu(2);
    for (const bool fuse : {true, false}) {
        INFO("fused " << fuse);
        auto ca = blocks::make_attention(a), ga = blocks::make_attention(a);
        const double da = update_diff(run_steps(cpu, *ca, m, fuse, steps, xs, n_kv, hd, E),
                                      run_steps(gpu(), *ga, m, fuse, steps, xs, n_kv, hd, E), xs);
        INFO("attention rel diff " << da);
        CHECK(da <= 2e-4);
        auto cf = blocks::make_swiglu_ffn(f), gf = blocks::make_swiglu_ffn(f);
        const double df = update_diff(run_steps(cpu, *cf, m, fuse, steps, xs, n_kv, hd, E),
                                      run_steps(gpu(), *gf, m, fuse, steps, xs, n_kv, hd, E), xs);
        INFO("ffn rel diff " << df);
        CHECK(df <= 2e-4);
    }
}
