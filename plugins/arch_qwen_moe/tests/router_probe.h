// Test-side probe of the MoE router (blocks.moe_router): a registry with the build tree's arch_qwen_moe +
// quant_ggml plugins whose router kernels (CPU and CUDA) wrap the real ones (taken from moe_registry()), so a test
// can compare an engine against the CPU engine with the same routing:
//  - Record (run the CPU engine): keep every router call's decisions (ids, weights), its input rows, the largest
//    L1 norm of a router row and, per token, the gap in router logits between the weakest expert picked and the best
//    one left out (the margin a change of the router's input must overcome to change the choice);
//  - Force (run the engine under test on the same tokens, CUDA graphs off: the probe downloads): compare each call
//    with the recorded call of the same index, measure the router input against the CPU's, count the tokens whose
//    set of experts differs (flips) and check each against the most the measured input difference can move a logit
//    gap (Hoelder: |d(l_a - l_b)| <= max|d xn| * |w_a - w_b|_1 <= 2 max|d xn| max_e |w_e|_1), then overwrite the
//    engine's ids and weights with the CPU's, so everything after the router runs with the same routing.
// A flip within that bound is a near tie broken by rounding (the device's prefill GEMMs run in bf16); a flip beyond
// it is a router bug, and a wrong expert kernel shows in the logits since the routing is then the same.
// For the CPU tests of this comparison: `noise` perturbs the router input of a forced CPU engine (relative, as the
// device's rounding would), `inject_bug` replaces the first expert of every token after forcing (a kernel reading
// the wrong expert), `wrong_router` changes the decisions the router kernel returned (a router bug), and
// overwrite = false measures without forcing.
#pragma once
#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "imp/blocks/moe.h"
#include "imp/executor.h"
#include "moe_fixture.h"
#include "plugin/loader.h"
#include "runtime/engine.h"

namespace imp::test {

struct RouterCall {
    int64_t n_tokens = 0, n_embd = 0;
    int top_k = 0;
    std::vector<int32_t> ids;
    std::vector<float> weights;
    std::vector<float> gap;  // per token: logit of the weakest pick - best logit left out (inf when k == n_expert)
    std::vector<float> xn;   // the router's input rows [n_tokens, n_embd] (normalized when the op normalizes)
    double w_l1 = 0;         // max over experts of the L1 norm of the router row
};

struct ProbeOptions {
    float noise = 0.f;  // CPU tests of the comparison only (see above)
    bool inject_bug = false;
    bool wrong_router = false;  // the router kernel under test swaps every token's first pick for the best one left out
    bool overwrite = true;  // false: measure and count only, the engine keeps its own routing
};

struct RouterProbe {
    enum class Mode { Pass, Record, Force } mode = Mode::Pass;
    std::vector<RouterCall> calls;  // Record appends; Force reads them in order
    size_t next = 0;
    // Force results
    int flips = 0;                   // tokens whose set of experts differs from the CPU's
    int64_t decisions = 0;           // tokens routed
    float worst_flip_gap = 0.f;      // the largest CPU gap among the flips
    double xn_diff = 0, xn_ref = 0;  // max |device - CPU| and max |CPU| of the router input
    std::string error;               // a call that does not match the recording, or a flip beyond its bound
    ProbeOptions opt;

    void start(Mode m, ProbeOptions o = {}) {
        mode = m;
        opt = o;
        next = 0;
        flips = 0;
        decisions = 0;
        worst_flip_gap = 0.f;
        xn_diff = xn_ref = 0;
        error.clear();
        if (m == Mode::Record) calls.clear();
    }
};

inline RouterProbe& router_probe() {
    static RouterProbe p;
    return p;
}

namespace probe_detail {

inline OpRef<blocks::MoeRouter> real_router() { return moe_registry().op<blocks::MoeRouter>(); }
inline OpRef<blocks::RowScale> real_row_scale() { return moe_registry().op<blocks::RowScale>(); }

// Host rows of the router input: xn when the op normalizes, else x (stride x_stride).
inline std::vector<float> input_rows(Executor& ex, const blocks::MoeRouter::Args& a) {
    std::vector<float> v(size_t(a.n_tokens * a.n_embd));
    for (int64_t t = 0; t < a.n_tokens; ++t) {
        const float* src = a.norm_w ? a.xn + t * a.n_embd : a.x + t * a.x_stride;
        ex.download(v.data() + t * a.n_embd, src, size_t(a.n_embd) * 4);
    }
    return v;
}

// Record may run on any executor (the reference engine is the CPU's, or a device engine when two device paths are
// compared): its ids, weights and router rows are read through the executor.
inline void record(Executor& ex, const blocks::MoeRouter::Args& a) {
    RouterCall c;
    c.n_tokens = a.n_tokens, c.n_embd = a.n_embd, c.top_k = a.top_k;
    const size_t nk = size_t(a.n_tokens * a.top_k);
    c.ids.resize(nk);
    c.weights.resize(nk);
    ex.download(c.ids.data(), a.ids, nk * 4);
    ex.download(c.weights.data(), a.weights, nk * 4);
    c.xn = input_rows(ex, a);
    std::vector<float> w(size_t(a.n_expert * a.n_embd));
    ex.download(w.data(), a.w, w.size() * 4);
    for (int e = 0; e < a.n_expert; ++e) {
        double l1 = 0;
        for (int64_t i = 0; i < a.n_embd; ++i) l1 += std::fabs(w[size_t(e * a.n_embd + i)]);
        c.w_l1 = std::max(c.w_l1, l1);
    }
    std::vector<double> lg(size_t(a.n_expert));
    for (int64_t t = 0; t < a.n_tokens; ++t) {
        for (int e = 0; e < a.n_expert; ++e) {
            double s = 0;
            for (int64_t i = 0; i < a.n_embd; ++i) s += double(c.xn[size_t(t * a.n_embd + i)]) * w[size_t(e * a.n_embd + i)];
            lg[size_t(e)] = s;
        }
        double pick = std::numeric_limits<double>::infinity(), left = -pick;
        const int32_t* ids = c.ids.data() + t * a.top_k;
        for (int e = 0; e < a.n_expert; ++e) {
            if (std::find(ids, ids + a.top_k, e) != ids + a.top_k) pick = std::min(pick, lg[size_t(e)]);
            else left = std::max(left, lg[size_t(e)]);
        }
        c.gap.push_back(float(pick - left));
    }
    router_probe().calls.push_back(std::move(c));
}

inline void force(Executor& ex, const blocks::MoeRouter::Args& a) {
    RouterProbe& p = router_probe();
    if (p.next >= p.calls.size() || p.calls[p.next].n_tokens != a.n_tokens || p.calls[p.next].top_k != a.top_k) {
        p.error = "router call " + std::to_string(p.next) + " (" + std::to_string(a.n_tokens) +
                  " tokens) has no CPU recording of that shape";
        ++p.next;
        return;
    }
    const RouterCall& c = p.calls[p.next++];
    const size_t nk = size_t(a.n_tokens * a.top_k);
    std::vector<int32_t> ids(nk);
    ex.download(ids.data(), a.ids, nk * 4);
    if (p.opt.wrong_router)
        for (int64_t t = 0; t < a.n_tokens; ++t) {
            const auto first = ids.begin() + t * a.top_k, last = first + a.top_k;
            for (int e = 0; e < a.n_expert; ++e)
                if (std::find(first, last, e) == last) {
                    *first = e;
                    break;
                }
        }
    const std::vector<float> xn = input_rows(ex, a);
    double dx = 0;
    for (size_t i = 0; i < xn.size(); ++i) {
        dx = std::max(dx, double(std::fabs(xn[i] - c.xn[i])));
        p.xn_ref = std::max(p.xn_ref, double(std::fabs(c.xn[i])));
    }
    p.xn_diff = std::max(p.xn_diff, dx);
    const double bound = 2 * dx * c.w_l1 * (1 + 1e-5) + 1e-6;
    for (int64_t t = 0; t < a.n_tokens; ++t) {
        std::vector<int32_t> g(ids.begin() + t * a.top_k, ids.begin() + (t + 1) * a.top_k);
        std::vector<int32_t> r(c.ids.begin() + t * a.top_k, c.ids.begin() + (t + 1) * a.top_k);
        std::sort(g.begin(), g.end());
        std::sort(r.begin(), r.end());
        ++p.decisions;
        if (g == r) continue;
        ++p.flips;
        p.worst_flip_gap = std::max(p.worst_flip_gap, c.gap[size_t(t)]);
        if (c.gap[size_t(t)] > bound && p.error.empty())
            p.error = "router call " + std::to_string(p.next - 1) + " token " + std::to_string(t) +
                      ": the experts differ from the CPU's at a logit gap of " + std::to_string(c.gap[size_t(t)]) +
                      ", beyond the " + std::to_string(bound) + " the input difference allows";
    }
    if (!p.opt.overwrite) return;
    std::vector<int32_t> forced = c.ids;
    if (p.opt.inject_bug)
        for (int64_t t = 0; t < a.n_tokens; ++t) forced[size_t(t * a.top_k)] = (forced[size_t(t * a.top_k)] + 1) % a.n_expert;
    ex.upload(a.ids, forced.data(), nk * 4);
    ex.upload(a.weights, c.weights.data(), nk * 4);
}

// The kernel registered for every device kind.
inline void probe_router(Executor& ex, const blocks::MoeRouter::Args& a0) {
    RouterProbe& p = router_probe();
    blocks::MoeRouter::Args a = a0;
    std::vector<float> noisy;
    if (p.mode == RouterProbe::Mode::Force && p.opt.noise > 0.f && ex.kind() == DeviceKind::CPU) {
        static uint64_t state = 88172645463325252ull;  // xorshift: uniform in [-noise, noise] relative
        noisy.resize(size_t(a.n_tokens * a.x_stride));
        for (int64_t i = 0; i < a.n_tokens * a.x_stride; ++i) {
            state ^= state << 13, state ^= state >> 7, state ^= state << 17;
            noisy[size_t(i)] = a.x[i] * (1.f + p.opt.noise * (float(state >> 40) / float(1 << 23) - 1.f));
        }
        a.x = noisy.data();
    }
    real_router()(ex, a);
    if (p.mode == RouterProbe::Mode::Record) record(ex, a);
    if (p.mode == RouterProbe::Mode::Force) force(ex, a);
}

inline void row_scale_fwd(Executor& ex, const blocks::RowScale::Args& a) { real_row_scale()(ex, a); }

}  // namespace probe_detail

// The probe's registry (one per test process): the router ops wrapped, then the plugins loaded (register_moe_ops
// sees the ops present and adds none). The first call's `plugins` are the ones loaded (an arch using the SDK MoE
// block and its formats; arch_gdn's tests pass their own).
inline Registry& probe_registry(const std::vector<std::string>& plugins = {"arch_qwen_moe", "quant_ggml"}) {
    static std::unique_ptr<Registry> reg;
    static std::unique_ptr<PluginLoader> loader;
    if (!reg) {
        (void)moe_registry();  // the real kernels
        reg = std::make_unique<Registry>();
        reg->add_op<blocks::MoeRouter>(DeviceKind::CPU, probe_detail::probe_router);
        reg->add_op<blocks::MoeRouter>(DeviceKind::CUDA, probe_detail::probe_router);
        reg->add_op<blocks::RowScale>(DeviceKind::CPU, probe_detail::row_scale_fwd);
        reg->add_op<blocks::RowScale>(DeviceKind::CUDA, probe_detail::row_scale_fwd);
        loader = std::make_unique<PluginLoader>(*reg, std::vector<std::string>{kPluginDir});
        for (const std::string& p : plugins) loader->load(p);
    }
    return *reg;
}

// Logits rows [rows, V] of the engine under test against the reference's.
struct LogitsDiff {
    double max_diff = 0, max_ref = 0;
    bool finite = true;
    int top1_differ = 0;       // rows whose top-1 differs where the reference's top-2 margin exceeds the tolerance
    std::string first;         // the first such row
};
inline LogitsDiff diff_logits(const std::vector<float>& ref, const std::vector<float>& got, size_t V, double tol) {
    LogitsDiff d;
    for (size_t i = 0; i < ref.size() && i < got.size(); ++i) {
        d.finite = d.finite && std::isfinite(got[i]);
        d.max_diff = std::max(d.max_diff, double(std::fabs(ref[i] - got[i])));
        d.max_ref = std::max(d.max_ref, double(std::fabs(ref[i])));
    }
    for (size_t r = 0; r < ref.size() / V && (r + 1) * V <= got.size(); ++r) {
        const auto a = ref.begin() + std::ptrdiff_t(r * V), b = got.begin() + std::ptrdiff_t(r * V);
        const auto ia = std::max_element(a, a + std::ptrdiff_t(V)) - a, ib = std::max_element(b, b + std::ptrdiff_t(V)) - b;
        if (ia != ib && double(a[ia] - a[ib]) > tol * d.max_ref && ++d.top1_differ == 1)
            d.first = "row " + std::to_string(r) + ": top-1 " + std::to_string(ia) + " vs " + std::to_string(ib) +
                      " at a reference margin of " + std::to_string(a[ia] - a[ib]);
    }
    return d;
}

// Prompt `toks` (logits of every row) then one decode step per token of `steps` (their logits appended), from a
// reset engine.
inline std::vector<float> run_prompt(Engine& e, const std::vector<int32_t>& toks, const std::vector<int32_t>& steps) {
    const size_t V = size_t(e.desc().n_vocab);
    std::vector<float> out(toks.size() * V), last(V);
    e.reset();
    e.forward(toks.data(), int64_t(toks.size()), out.data(), true);
    for (int32_t t : steps) {
        e.forward(&t, 1, last.data());
        out.insert(out.end(), last.begin(), last.end());
    }
    return out;
}

// Prompt `toks` (logits of every row) then one decode step per token of `steps` through the reference engine
// (probe recording) and the engine under test (routing forced to the reference's); returns both logits. The
// probe's statistics are those of the forced run.
inline void run_forced(Engine& ref, Engine& dut, const std::vector<int32_t>& toks, const std::vector<int32_t>& steps,
                       std::vector<float>& a, std::vector<float>& b, ProbeOptions opt = {}) {
    Engine* e[2] = {&ref, &dut};
    std::vector<float>* out[2] = {&a, &b};
    for (int g = 0; g < 2; ++g) {
        if (g == 0) router_probe().start(RouterProbe::Mode::Record);
        else router_probe().start(RouterProbe::Mode::Force, opt);
        *out[g] = run_prompt(*e[g], toks, steps);
    }
    RouterProbe& p = router_probe();
    if (p.error.empty() && p.next != p.calls.size())
        p.error = std::to_string(p.next) + " router calls forced, " + std::to_string(p.calls.size()) + " recorded";
    p.mode = RouterProbe::Mode::Pass;
}

}  // namespace imp::test
