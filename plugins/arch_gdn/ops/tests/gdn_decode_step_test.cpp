// gdn.decode_step's CPU reference: sequences stepped token by token through it give what the prefill ops (gdn.conv
// over all rows, gdn.rule_chunked, gdn.gated_norm) give on the same rows, outputs and both states; its argument
// errors; the conformance check on the CPU.
#include <catch2/catch.hpp>

#include <random>

#include "exec/cpu/cpu_executor.h"
#include "gdn_checks.h"
#include "gdn_kernels.h"
#include "gdn_test_util.h"
#include "imp/error.h"

using namespace imp;
using namespace imp::gdn;
using namespace imp::gdn::test;

namespace {

// Rows of the layer's projections (q|k|v | z | b | a) for sequences of `lens` rows, random states in shuffled slots.
struct StepData {
    Dims d;
    std::vector<int> lens;
    int K = 4;
    int64_t cd, vd, hv, xs, css, sss, T = 0;
    std::vector<int32_t> qsl{0}, token_seq, slots;
    std::vector<float> x, w, A, dt, nw, cstate, sstate;

    StepData(const Dims& dims, std::vector<int> l, uint64_t seed)
        : d(dims), lens(std::move(l)), cd(d.conv_dim()), vd(d.value_dim()), hv(d.n_v_heads) {
        std::mt19937_64 rng(seed);
        std::uniform_real_distribution<float> u(-3.f, 3.f);
        std::normal_distribution<float> n1(0.f, 1.f);
        for (size_t s = 0; s < lens.size(); ++s) {
            for (int i = 0; i < lens[s]; ++i) token_seq.push_back(int32_t(s));
            qsl.push_back(qsl.back() + lens[s]);
            slots.push_back(int32_t(lens.size() - s));  // slot 0 unused, the others reversed
        }
        T = qsl.back();
        xs = cd + vd + 2 * hv + 1, css = (K - 1) * cd + 3, sss = vd * d.head_k_dim + 2;
        x.resize(size_t(T * xs));
        for (auto& v : x) v = u(rng);
        w.resize(size_t(cd * K));
        for (auto& v : w) v = 0.3f * u(rng);
        for (int j = 0; j < hv; ++j) {
            A.push_back(std::log(0.02f + 5.f * std::fabs(n1(rng))));
            dt.push_back(-4.f + n1(rng));
        }
        for (int i = 0; i < d.head_v_dim; ++i) nw.push_back(1.f + 0.2f * n1(rng));
        cstate.resize(size_t((lens.size() + 1) * css));
        for (auto& v : cstate) v = u(rng);
        sstate.resize(size_t((lens.size() + 1) * sss));
        for (auto& v : sstate) v = 0.5f * n1(rng);
    }

    // Conv arguments over rows xr (n rows of stride xs) with seqs; outputs into out (stride cd), g, beta.
    Conv::Args conv(const float* xr, Seqs seqs, float* cst, float* out, float* g, float* beta) const {
        Conv::Args c;
        c.dims = d, c.seqs = seqs, c.kernel = K, c.x = xr, c.x_stride = xs, c.w = w.data();
        c.conv_state = cst, c.state_stride = css, c.out = out, c.out_stride = cd;
        c.b = xr + cd + vd, c.b_stride = xs, c.a = xr + cd + vd + hv, c.a_stride = xs;
        c.A = A.data(), c.dt_bias = dt.data(), c.g = g, c.beta = beta;
        return c;
    }
    RuleArgs rule(const float* xr, Seqs seqs, float* sst, float* o) const {
        RuleArgs r;
        r.dims = d, r.seqs = seqs, r.state = sst, r.state_stride = sss, r.o = o, r.o_stride = vd;
        r.scale = 1.f / std::sqrt(float(d.head_k_dim));
        r.norm_w = nw.data(), r.z = xr + cd, r.z_stride = xs, r.norm_eps = 1e-6f;
        return r;
    }
};

}  // namespace

TEST_CASE("gdn decode step: token by token equals the prefill ops on the same rows", "[gdn][decode_step]") {
    CpuExecutor ex(2);
    for (const Dims& dims : {Dims{2, 4, 16, 8, false}, Dims{2, 4, 16, 8, true}, Dims{1, 1, 32, 16, false}}) {
        StepData sd(dims, {5, 1, 3}, 7);
        const int64_t T = sd.T, cd = sd.cd, vd = sd.vd, hv = sd.hv;
        // Prefill: every row in one step.
        std::vector<float> cst = sd.cstate, sst = sd.sstate, qkv(size_t(T * cd)), g(size_t(T * hv)), beta(g.size());
        std::vector<float> y_pre(size_t(T * vd));
        const Seqs all{T, int32_t(sd.lens.size()), sd.qsl.data(), sd.token_seq.data(), sd.slots.data(), 5};
        conv_cpu(ex, sd.conv(sd.x.data(), all, cst.data(), qkv.data(), g.data(), beta.data()));
        RuleArgs r = sd.rule(sd.x.data(), all, sst.data(), y_pre.data());
        r.qkv = qkv.data(), r.qkv_stride = cd, r.g = g.data(), r.beta = beta.data();
        const float* z = r.z;
        r.norm_w = nullptr;
        rule_chunked_cpu(ex, r);
        gated_norm_cpu(ex, {y_pre.data(), vd, z, sd.xs, sd.nw.data(), y_pre.data(), vd, T, int(hv), dims.head_v_dim,
                            1e-6f});
        // Decode: row i of every sequence still running, gathered into one step.
        std::vector<float> dcst = sd.cstate, dsst = sd.sstate, y_dec(size_t(T * vd));
        for (int i = 0; i < 5; ++i) {
            std::vector<int32_t> qsl{0}, seq, slots, rows;
            for (size_t s = 0; s < sd.lens.size(); ++s)
                if (i < sd.lens[s]) {
                    rows.push_back(sd.qsl[s] + i);
                    seq.push_back(int32_t(slots.size()));
                    slots.push_back(sd.slots[s]);
                    qsl.push_back(qsl.back() + 1);
                }
            const int64_t n = int64_t(rows.size());
            std::vector<float> xr(size_t(n * sd.xs)), out(size_t(n * cd)), gs(size_t(n * hv)), bs(gs.size());
            std::vector<float> y(size_t(n * vd));
            for (int64_t j = 0; j < n; ++j) std::copy_n(&sd.x[size_t(rows[j] * sd.xs)], sd.xs, &xr[size_t(j * sd.xs)]);
            const Seqs step{n, int32_t(n), qsl.data(), seq.data(), slots.data(), 1};
            decode_step_cpu(ex, {sd.conv(xr.data(), step, dcst.data(), out.data(), gs.data(), bs.data()),
                                 sd.rule(xr.data(), step, dsst.data(), y.data())});
            for (int64_t j = 0; j < n; ++j) std::copy_n(&y[size_t(j * vd)], vd, &y_dec[size_t(rows[j] * vd)]);
        }
        INFO("Hk " << dims.n_k_heads << " Hv " << dims.n_v_heads << (dims.tiled ? " tiled" : ""));
        CHECK(rel_err(y_dec, y_pre) < 1e-5);
        CHECK(rel_err(dcst, cst) < 1e-6);
        CHECK(rel_err(dsst, sst) < 1e-5);
        CHECK(rel_err(y_dec, std::vector<float>(y_dec.size(), 0.f)) > 0.5);  // the outputs are not all zero
    }
}

TEST_CASE("gdn decode step: argument errors name the op and the field", "[gdn][decode_step]") {
    CpuExecutor ex(1);
    StepData sd(Dims{2, 4, 16, 8, false}, {2}, 3);
    std::vector<float> out(size_t(2 * sd.cd)), g(8), beta(8), y(size_t(2 * sd.vd));
    const Seqs two{2, 1, sd.qsl.data(), sd.token_seq.data(), sd.slots.data(), 2};
    DecodeStep::Args a{sd.conv(sd.x.data(), two, sd.cstate.data(), out.data(), g.data(), beta.data()),
                       sd.rule(sd.x.data(), two, sd.sstate.data(), y.data())};
    CHECK_THROWS_WITH(decode_step_cpu(ex, a), "gdn.decode_step: 2 rows for 1 sequences, at most 2 per sequence (one row per sequence)");
    const std::vector<int32_t> qsl1{0, 1}, seq1{0};
    const Seqs one{1, 1, qsl1.data(), seq1.data(), sd.slots.data(), 1};
    a.conv.seqs = one;
    a.rule.norm_w = nullptr;
    CHECK_THROWS_WITH(decode_step_cpu(ex, a), Catch::Contains("gdn.decode_step: rule.norm_w is required"));
    a.rule.norm_w = sd.nw.data();
    a.conv.out = nullptr;
    CHECK_THROWS_WITH(decode_step_cpu(ex, a), "gdn.decode_step: conv: out is null");
    a.conv.out = out.data();
    a.rule.o_stride = 3;
    CHECK_THROWS_WITH(decode_step_cpu(ex, a), "gdn.decode_step: o row stride 3 < width 32");
    a.rule.o_stride = sd.vd;
    CHECK_NOTHROW(decode_step_cpu(ex, a));
    CHECK_THROWS_WITH(decode_step_cuda(ex, a), Catch::Contains("is not a CUDA executor"));
}

TEST_CASE("gdn decode step: the conformance comparison passes CPU against CPU for every cluster shape",
          "[gdn][decode_step]") {
    CpuExecutor cpu(1), other(2);
    for (uint64_t seed = 1; seed <= 12; ++seed) CHECK(check_decode_step(cpu, other, seed) == "");
}
