// The shared blocks on the CPU executor against double-precision references of the math (block_reference.h), with
// fresh random weights and inputs each run: the attention block with the sigmoid output gate, zero-centred (1 + w)
// norms, q/k norms, partial rotary (NEOX and adjacent pairs, with frequency factors), GQA, fused and unfused q|k|v,
// three sequences over a scrambled paged KV cache through prefill, mixed and decode steps; the SwiGLU FFN with and
// without the norm offset.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "block_harness.h"
#include "block_reference.h"
#include "common/max_err.h"
#include "exec/cpu/cpu_executor.h"
#include "imp/blocks/attention.h"
#include "imp/blocks/ffn.h"

using namespace imp;
using namespace imp::blocks_test;

namespace {

struct AttnCase {
    int n_embd = 48, n_head = 4, n_kv = 2, hd = 16, n_rot = 8;
    bool neox = true, qk_norm = true, gate = true, bf16_norms = false;
    float offset = 1.f, freq_scale = 1.f;
    bool freq_factors = false;
};

// max |got - ref| / max |ref| of each step, against the reference and against `wrong` (a reference with one
// convention changed, which the block must not match).
struct Diffs {
    double ref = 0, wrong = 1e30;
};

Diffs run_attention(const AttnCase& c, bool fuse, uint32_t seed, const AttentionRef* wrong_cfg = nullptr,
                    FusedCalls* fused_input = nullptr) {
    std::mt19937 g(seed);
    const int64_t E = c.n_embd, qd = int64_t(c.n_head) * c.hd, kd = int64_t(c.n_kv) * c.hd;
    const int L = 2;  // the block's layer index: names "blk.2.*"
    HostModel m;
    const float nlo = c.offset != 0 ? -0.4f : 0.6f, nhi = c.offset != 0 ? 0.4f : 1.4f;
    m.add("blk.2.attn_norm.weight", {E}, uniform(g, size_t(E), nlo, nhi), c.bf16_norms);
    m.add("blk.2.attn_q.weight", {(c.gate ? 2 : 1) * qd, E}, uniform(g, size_t((c.gate ? 2 : 1) * qd * E), -.3f, .3f));
    m.add("blk.2.attn_k.weight", {kd, E}, uniform(g, size_t(kd * E), -.3f, .3f));
    m.add("blk.2.attn_v.weight", {kd, E}, uniform(g, size_t(kd * E), -.3f, .3f));
    m.add("blk.2.attn_output.weight", {E, qd}, uniform(g, size_t(E * qd), -.3f, .3f));
    m.add("blk.2.attn_q_norm.weight", {c.hd}, uniform(g, size_t(c.hd), nlo, nhi), c.bf16_norms);
    m.add("blk.2.attn_k_norm.weight", {c.hd}, uniform(g, size_t(c.hd), nlo, nhi), c.bf16_norms);

    blocks::AttentionSpec s;
    s.layer = L;
    s.n_embd = E;
    s.n_head = c.n_head;
    s.n_kv_head = c.n_kv;
    s.head_dim = c.hd;
    s.rope.n_rot = c.n_rot;
    s.rope.base = 1000.f;
    s.rope.neox = c.neox;
    s.rope.freq_scale = c.freq_scale;
    if (c.freq_factors) {
        s.rope.freqs_name = "rope_freqs.test";
        s.rope.freq_factors = uniform(g, size_t(c.n_rot / 2), 1.f, 8.f);
    }
    s.qk_norm = c.qk_norm;
    s.output_gate = c.gate;
    s.norm_offset = c.offset;
    s.eps = 1e-5f;
    s.names = blocks::gguf_names();
    s.source = &m;
    auto layer = blocks::make_attention(s);
    HostWeights w(*layer, m, fuse, fused_input);
    layer->bind(w);
    REQUIRE((w.matrix("blk.2.attn_qkv.fused") != nullptr) == fuse);

    AttentionRef ref;
    ref.n_embd = E, ref.n_head = c.n_head, ref.n_kv = c.n_kv, ref.hd = c.hd, ref.n_rot = c.n_rot;
    ref.base = 1000, ref.freq_scale = c.freq_scale, ref.neox = c.neox, ref.qk_norm = c.qk_norm, ref.gate = c.gate;
    ref.offset = c.offset, ref.eps = 1e-5;
    ref.freq_factors = to_double(s.rope.freq_factors);
    ref.norm = to_double(m.value("blk.2.attn_norm.weight"));
    ref.wq = to_double(m.value("blk.2.attn_q.weight"));
    ref.wk = to_double(m.value("blk.2.attn_k.weight"));
    ref.wv = to_double(m.value("blk.2.attn_v.weight"));
    ref.wo = to_double(m.value("blk.2.attn_output.weight"));
    ref.q_norm = to_double(m.value("blk.2.attn_q_norm.weight"));
    ref.k_norm = to_double(m.value("blk.2.attn_k_norm.weight"));
    AttentionRef wrong = ref;
    if (wrong_cfg) {
        wrong.gate_halves = wrong_cfg->gate_halves;
        wrong.offset = wrong_cfg->offset;
        wrong.n_rot = wrong_cfg->n_rot;
        wrong.neox = wrong_cfg->neox;
        if (wrong.n_rot != ref.n_rot) wrong.freq_factors.clear();
    }

    // Three sequences: prefill; one decodes while another prefills across a KV block boundary; all decode.
    const std::vector<std::vector<int>> steps = {{5, 1, 3}, {1, 17, 1}, {1, 1, 1}};
    CpuExecutor ex(2);
    KvPool kv(3, c.n_kv, c.hd);
    std::vector<Vec> xs(3);  // each sequence's layer inputs so far
    std::vector<int> past = {0, 0, 0};
    Diffs out;
    out.wrong = 0;
    for (const auto& rows : steps) {
        Step st(kv, past, rows);
        const int64_t n = st.b.n_tokens;
        std::vector<float> x = uniform(g, size_t(n * E), -1.f, 1.f), hidden = x;
        std::vector<float> scratch(size_t(layer->scratch_floats(n)), NAN);
        LayerContext ctx{ex, st.b, kv.view, {}, scratch.data()};
        layer->forward(ctx, hidden.data());
        imp::test::MaxRelErr e_ref, e_wrong;  // NaN/Inf anywhere gives +inf
        int64_t row = 0;
        for (int sq = 0; sq < 3; ++sq) {
            const int r = rows[size_t(sq)];
            xs[size_t(sq)].insert(xs[size_t(sq)].end(), x.begin() + row * E, x.begin() + (row + r) * E);
            past[size_t(sq)] += r;
            const int P = past[size_t(sq)];
            const Vec want = ref.run(xs[size_t(sq)], P);
            const Vec other = wrong_cfg ? wrong.run(xs[size_t(sq)], P) : want;
            for (int i = 0; i < r; ++i)
                for (int64_t e = 0; e < E; ++e) {
                    const size_t gi = size_t((row + i) * E + e), ri = size_t((P - r + i) * E + e);
                    const double got = double(hidden[gi]) - double(x[gi]);
                    e_ref.add(got, want[ri]);
                    // |got - other| over max |want|: the same scale as the reference's error.
                    e_wrong.add(got - other[ri] + want[ri], want[ri]);
                }
            row += r;
        }
        out.ref = imp::test::worst_of(out.ref, e_ref.value());
        out.wrong = imp::test::worst_of(out.wrong, e_wrong.value());
    }
    return out;
}

}  // namespace

TEST_CASE("gated attention with zero-centred norms matches the double reference", "[blocks]") {
    const uint32_t seed = fresh_seed();
    INFO("seed " << seed);
    AttnCase c;  // output gate, norm offset 1, q/k norms, partial NEOX rotary (8 of 16), GQA 4/2
    for (const bool fuse : {true, false}) {
        INFO("fused q|k|v " << fuse);
        AttentionRef halves;
        halves.gate_halves = true, halves.offset = 1, halves.n_rot = c.n_rot, halves.neox = true;
        const Diffs d = run_attention(c, fuse, seed, &halves);
        INFO("rel diff " << d.ref << ", against the [all queries | all gates] layout " << d.wrong);
        CHECK(d.ref <= 5e-6);
        CHECK(d.wrong > 1e-2);  // the layout matters: the check can fail
        AttentionRef no_offset = halves;
        no_offset.gate_halves = false, no_offset.offset = 0;
        const Diffs d0 = run_attention(c, fuse, seed, &no_offset);
        INFO("against plain (w, not 1 + w) norm weights " << d0.wrong);
        CHECK(d0.ref <= 5e-6);
        CHECK(d0.wrong > 1e-2);
    }
    c.bf16_norms = true;  // zero-centred weights stored as BF16, as in the HF checkpoints
    CHECK(run_attention(c, true, seed + 1).ref <= 5e-6);
    // q|k|v formats that take the norm into their matmul (Weight::matmul_fused: a GEMM's bf16 conversion): one call
    // per matrix and step (3 steps), the same result
    for (const bool fuse : {true, false}) {
        INFO("norm fused into the q|k|v matmuls, fused q|k|v " << fuse);
        FusedCalls calls;
        CHECK(run_attention(c, fuse, seed + 2, nullptr, &calls).ref <= 5e-6);
        CHECK(calls.norm == (fuse ? 3 : 9));
        CHECK(calls.up == 0);
    }
}

TEST_CASE("partial rotary: only the first n_rot dims of each head rotate", "[blocks]") {
    const uint32_t seed = fresh_seed();
    INFO("seed " << seed);
    for (const bool neox : {true, false})
        for (const int n_rot : {4, 10, 16}) {
            AttnCase c;
            c.gate = false, c.offset = 0, c.qk_norm = n_rot != 10;
            c.neox = neox, c.n_rot = n_rot, c.n_kv = n_rot == 16 ? 4 : 1;
            c.freq_factors = n_rot == 10, c.freq_scale = n_rot == 4 ? 0.25f : 1.f;
            INFO("neox " << neox << ", n_rot " << n_rot << " of 16");
            AttentionRef full;
            full.offset = 0, full.neox = neox, full.n_rot = 16;  // rotating every dim instead
            const Diffs d = run_attention(c, n_rot != 4, seed + uint32_t(n_rot), n_rot < 16 ? &full : nullptr);
            INFO("rel diff " << d.ref << ", against full rotary " << d.wrong);
            CHECK(d.ref <= 5e-6);
            if (n_rot < 16) CHECK(d.wrong > 1e-3);
        }
}

TEST_CASE("SwiGLU FFN block matches the double reference, with and without the norm offset", "[blocks]") {
    const uint32_t seed = fresh_seed();
    INFO("seed " << seed);
    std::mt19937 g(seed);
    const int64_t E = 40, F = 56;
    for (const float offset : {0.f, 1.f})
        for (const bool fuse : {true, false})
        for (const bool fused_input : {false, true}) {
            INFO("offset " << offset << ", fused gate|up " << fuse << ", norm / SwiGLU fused into the matmuls "
                           << fused_input);
            FusedCalls calls;
            HostModel m;
            const std::string p = "model.layers.1.";
            m.add(p + "post_attention_layernorm.weight", {E},
                  uniform(g, size_t(E), offset != 0 ? -.4f : .6f, offset != 0 ? .4f : 1.4f), offset != 0);
            m.add(p + "mlp.gate_proj.weight", {F, E}, uniform(g, size_t(F * E), -.3f, .3f));
            m.add(p + "mlp.up_proj.weight", {F, E}, uniform(g, size_t(F * E), -.3f, .3f));
            m.add(p + "mlp.down_proj.weight", {E, F}, uniform(g, size_t(E * F), -.3f, .3f));
            blocks::FfnSpec s;
            s.layer = 1, s.n_embd = E, s.n_ff = F, s.eps = 1e-6f, s.norm_offset = offset;
            s.names = blocks::hf_names();
            s.source = &m;
            auto layer = blocks::make_swiglu_ffn(s);
            HostWeights w(*layer, m, fuse, fused_input ? &calls : nullptr);
            layer->bind(w);
            FfnRef ref;
            ref.n_embd = E, ref.n_ff = F, ref.offset = offset;
            ref.norm = to_double(m.value(p + "post_attention_layernorm.weight"));
            ref.gate = to_double(m.value(p + "mlp.gate_proj.weight"));
            ref.up = to_double(m.value(p + "mlp.up_proj.weight"));
            ref.down = to_double(m.value(p + "mlp.down_proj.weight"));

            CpuExecutor ex(2);
            KvPool kv(2, 1, 4);
            Step st(kv, {0, 3}, {6, 1});
            const int64_t n = st.b.n_tokens;
            std::vector<float> x = uniform(g, size_t(n * E), -1.f, 1.f), hidden = x;
            std::vector<float> scratch(size_t(layer->scratch_floats(n)), NAN);
            LayerContext ctx{ex, st.b, kv.view, {}, scratch.data()};
            layer->forward(ctx, hidden.data());
            imp::test::MaxRelErr err;
            for (int64_t t = 0; t < n; ++t) {
                const Vec xt(x.begin() + t * E, x.begin() + (t + 1) * E);
                const Vec want = ref.run(xt.data());
                for (int64_t e = 0; e < E; ++e) {
                    err.add(double(hidden[size_t(t * E + e)]) - xt[size_t(e)], want[size_t(e)]);
                }
            }
            INFO("rel diff " << err.value());
            CHECK(err.value() <= 5e-6);
            // the norm goes into gate|up where that is one weight; the SwiGLU into down either way
            CHECK(calls.norm == (fused_input && fuse ? 1 : 0));
            CHECK(calls.up == (fused_input ? 1 : 0));
        }
}
