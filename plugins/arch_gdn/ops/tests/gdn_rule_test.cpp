// The delta-rule CPU references (gdn_rule_cpu.cpp) against HF's recurrence in double precision (gdn_test_util.h),
// and the chunked form against the token-by-token recurrence: lengths around the chunk size, several sequences,
// GVA in both head orders, initial states from shuffled slots.
#include <catch2/catch.hpp>

#include "exec/cpu/cpu_executor.h"
#include "gdn_kernels.h"
#include "gdn_test_util.h"
#include "imp/error.h"

using namespace imp;
using namespace imp::gdn;
using namespace imp::gdn::test;

namespace {

Dims dims(int hk, int hv, int dk, int dv, bool tiled = false) { return {hk, hv, dk, dv, tiled}; }

// Steps every sequence of r token by token through gdn.rule_decode (one row per sequence per call).
void token_by_token(Executor& ex, RuleData& r) {
    const int max_len = *std::max_element(r.lens.begin(), r.lens.end());
    for (int i = 0; i < max_len; ++i) {
        std::vector<int32_t> qsl{0}, seq, slots, rows;
        for (size_t s = 0; s < r.lens.size(); ++s)
            if (i < r.lens[s]) {
                rows.push_back(r.qsl[s] + i);
                seq.push_back(int32_t(slots.size()));
                slots.push_back(r.slots[s]);
                qsl.push_back(qsl.back() + 1);
            }
        // Gather the rows of this step (the op takes rows grouped by sequence), run, scatter the outputs.
        const int64_t n = int64_t(rows.size());
        std::vector<float> qkv(size_t(n * r.qs)), g(size_t(n * r.d.n_v_heads)), beta(g.size()), o(size_t(n * r.os));
        for (int64_t j = 0; j < n; ++j) {
            std::copy_n(&r.qkv[size_t(rows[j] * r.qs)], r.qs, &qkv[size_t(j * r.qs)]);
            std::copy_n(&r.g[size_t(rows[j] * r.d.n_v_heads)], r.d.n_v_heads, &g[size_t(j * r.d.n_v_heads)]);
            std::copy_n(&r.beta[size_t(rows[j] * r.d.n_v_heads)], r.d.n_v_heads, &beta[size_t(j * r.d.n_v_heads)]);
        }
        RuleArgs a = r.args();
        a.seqs = {n, int32_t(n), qsl.data(), seq.data(), slots.data(), 1};
        a.qkv = qkv.data(), a.g = g.data(), a.beta = beta.data(), a.o = o.data();
        rule_decode_cpu(ex, a);
        for (int64_t j = 0; j < n; ++j) std::copy_n(&o[size_t(j * r.os)], r.os, &r.o[size_t(rows[j] * r.os)]);
    }
}

}  // namespace

TEST_CASE("gdn rule: decode recurrence and chunked form equal HF's recurrence in double", "[gdn][rule]") {
    CpuExecutor ex(2);
    struct Case {
        Dims d;
        std::vector<int> lens;
    };
    const Case cases[] = {
        {dims(1, 1, 16, 8), {1}},
        {dims(2, 4, 32, 16), {63, 64, 65}},
        {dims(2, 4, 32, 16, true), {130, 1, 7}},
        {dims(1, 3, 16, 24), {200}},
        {dims(3, 6, 128, 128), {70, 2}},
    };
    uint64_t seed = 11;
    for (const Case& c : cases) {
        RuleData base(c.d, c.lens, seed++);
        RuleData naive = base, chunked = base, stepped = base;
        std::vector<double> o_ref;
        naive_rule(naive, o_ref);
        rule_chunked_wy_cpu(ex, chunked.args());
        token_by_token(ex, stepped);
        INFO("Hk " << c.d.n_k_heads << " Hv " << c.d.n_v_heads << " dk " << c.d.head_k_dim << " dv " << c.d.head_v_dim
                   << (c.d.tiled ? " tiled" : "") << ", first length " << c.lens[0]);
        // fp32 against double: the recurrence runs up to 200 steps of 128-term sums (~1e-6 relative each).
        CHECK(rel_err(stepped.o, o_ref) < 2e-5);
        CHECK(rel_err(stepped.state, naive.state) < 2e-5);
        CHECK(rel_err(chunked.o, o_ref) < 5e-5);
        CHECK(rel_err(chunked.state, naive.state) < 5e-5);
        // Chunked == token by token (both fp32): what the chunk-invariance of the model rests on.
        CHECK(rel_err(chunked.o, stepped.o) < 5e-5);
        CHECK(rel_err(chunked.state, stepped.state) < 5e-5);
    }
}

TEST_CASE("gdn rule: a prompt split at any point continues from the state in its slot", "[gdn][rule]") {
    CpuExecutor ex(2);
    RuleData whole(dims(2, 4, 32, 16), {150}, 5);
    RuleData split = whole, rec = whole;
    rule_chunked_cpu(ex, rec.args());  // the registered CPU kernel: the recurrence, exactly chunk invariant
    rule_chunked_wy_cpu(ex, whole.args());
    for (int cut : {1, 64, 97}) {
        RuleData part = split;
        // First `cut` rows, then the rest, each as one call on the same slot.
        RuleArgs a = part.args();
        std::vector<int32_t> qsl1{0, cut}, seq1(size_t(cut), 0), qsl2{0, 150 - cut}, seq2(size_t(150 - cut), 0);
        a.seqs = {cut, 1, qsl1.data(), seq1.data(), part.slots.data(), cut};
        rule_chunked_wy_cpu(ex, a);
        RuleArgs b = part.args();
        b.seqs = {150 - cut, 1, qsl2.data(), seq2.data(), part.slots.data(), 150 - cut};
        b.qkv += cut * part.qs, b.g += cut * 4, b.beta += cut * 4, b.o += cut * part.os;
        rule_chunked_wy_cpu(ex, b);
        INFO("cut at " << cut);
        CHECK(rel_err(part.o, whole.o) < 2e-5);
        CHECK(rel_err(part.state, whole.state) < 2e-5);
        RuleData exact = split;  // the same split through the registered CPU kernel: bit for bit
        RuleArgs e1 = exact.args(), e2 = exact.args();
        e1.seqs = a.seqs, e2.seqs = b.seqs;
        e2.qkv += cut * exact.qs, e2.g += cut * 4, e2.beta += cut * 4, e2.o += cut * exact.os;
        rule_chunked_cpu(ex, e1);
        rule_chunked_cpu(ex, e2);
        CHECK(exact.o == rec.o);
        CHECK(exact.state == rec.state);
    }
}

TEST_CASE("gdn rule: decode with the gated norm equals the rule, then gdn.gated_norm", "[gdn][rule]") {
    CpuExecutor ex(2);
    RuleData base(dims(2, 4, 32, 16), {1, 1, 1}, 9);
    RuleData plain = base, fused = base;
    std::vector<float> z(size_t(3 * 70)), w(16);
    for (size_t i = 0; i < z.size(); ++i) z[i] = std::sin(float(i)) * 3.f;
    for (size_t i = 0; i < w.size(); ++i) w[i] = 0.5f + 0.1f * float(i);
    rule_decode_cpu(ex, plain.args());
    std::vector<double> ref(plain.o.size(), 0.0);
    for (int64_t t = 0; t < 3; ++t)
        for (int h = 0; h < 4; ++h) {
            double ms = 0;
            for (int j = 0; j < 16; ++j) ms += std::pow(double(plain.o[size_t(t * plain.os + h * 16 + j)]), 2) / 16;
            for (int j = 0; j < 16; ++j) {
                const double zz = z[size_t(t * 70 + h * 16 + j)];
                ref[size_t(t * plain.os + h * 16 + j)] =
                    plain.o[size_t(t * plain.os + h * 16 + j)] / std::sqrt(ms + 1e-6) * w[size_t(j)] * zz / (1 + std::exp(-zz));
            }
        }
    RuleArgs a = fused.args();
    a.norm_w = w.data(), a.z = z.data(), a.z_stride = 70, a.norm_eps = 1e-6f;
    rule_decode_cpu(ex, a);
    CHECK(rel_err(fused.o, ref) < 1e-6);
    CHECK(fused.state == plain.state);
}

TEST_CASE("gdn rule: bad arguments are one clear error", "[gdn][rule]") {
    CpuExecutor ex(1);
    RuleData r(dims(2, 3, 16, 16), {2}, 1);
    RuleArgs a = r.args();
    CHECK_THROWS_WITH(rule_chunked_cpu(ex, a), "gdn.rule_chunked: value heads 3 are not a multiple of key heads 2");
    RuleData r2(dims(2, 4, 16, 16), {2}, 1);
    a = r2.args();
    CHECK_THROWS_WITH(rule_decode_cpu(ex, a), "gdn.rule_decode: 2 rows for 1 sequences (one row per sequence)");
    a.qkv_stride = 10;
    CHECK_THROWS_WITH(rule_chunked_cpu(ex, a), "gdn.rule_chunked: qkv row stride 10 < width 128");
}
