// The GDN ops' comparisons (gdn_checks.h) and registered conformance checks (gdn_kernels.h): one problem's inputs on
// both executors, the CPU kernel as the reference, outputs and every state slot compared.
#include "gdn_checks.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <sstream>

#include "gdn_kernels.h"
#include "imp/ops.h"

namespace imp::gdn {

namespace {

using Vec = std::vector<float>;

struct Gen {
    std::mt19937_64 rng;
    float uni(float lo, float hi) { return std::uniform_real_distribution<float>(lo, hi)(rng); }
    float normal(float sd) { return std::normal_distribution<float>(0.f, sd)(rng); }
    int pick(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); }
    Vec fill(size_t n, float lo, float hi) {
        Vec v(n);
        for (auto& x : v) x = uni(lo, hi);
        return v;
    }
};

template <class T>
T* upload(Executor& ex, const std::vector<T>& v) {
    auto* p = static_cast<T*>(ex.alloc(std::max<size_t>(v.size(), 1) * sizeof(T), "gdn.check"));
    if (!v.empty()) ex.upload(p, v.data(), v.size() * sizeof(T));
    return p;
}
Vec download(Executor& ex, const float* p, size_t n) {
    Vec v(n);
    ex.download(v.data(), p, n * sizeof(float));
    return v;
}

// The step layout of p.lens: query_start_loc, token_seq, and slots shuffled among n_seqs + 2.
struct Layout {
    std::vector<int32_t> qsl, token_seq, slots;
    int64_t n_tokens = 0;
    int32_t n_slots = 0, max_len = 0;
};
Layout layout_of(const Problem& p, Gen& gen) {
    Layout l;
    l.qsl.push_back(0);
    for (size_t s = 0; s < p.lens.size(); ++s) {
        for (int i = 0; i < p.lens[s]; ++i) l.token_seq.push_back(int32_t(s));
        l.qsl.push_back(l.qsl.back() + p.lens[s]);
        l.max_len = std::max(l.max_len, p.lens[s]);
    }
    l.n_tokens = l.qsl.back();
    l.n_slots = int32_t(p.lens.size()) + 2;
    std::vector<int32_t> all(size_t(l.n_slots));
    std::iota(all.begin(), all.end(), 0);
    std::shuffle(all.begin(), all.end(), gen.rng);
    l.slots.assign(all.begin(), all.begin() + std::ptrdiff_t(p.lens.size()));
    return l;
}
Seqs seqs_on(Executor& ex, const Layout& l) {
    Seqs s;
    s.n_tokens = l.n_tokens;
    s.n_seqs = int32_t(l.slots.size());
    s.query_start_loc = upload(ex, l.qsl);
    s.token_seq = upload(ex, l.token_seq);
    s.state_slots = upload(ex, l.slots);
    s.max_query_len = l.max_len;
    return s;
}
Seqs seqs_host(const Layout& l) {
    return {l.n_tokens, int32_t(l.slots.size()), l.qsl.data(), l.token_seq.data(), l.slots.data(), l.max_len};
}

std::string tag(const Problem& p) {
    std::ostringstream o;
    o << "Hk " << p.dims.n_k_heads << " Hv " << p.dims.n_v_heads << " dk " << p.dims.head_k_dim << " dv "
      << p.dims.head_v_dim << (p.dims.tiled ? " tiled" : "") << ", " << p.lens.size() << " seqs (";
    for (size_t i = 0; i < p.lens.size() && i < 6; ++i) o << (i ? "," : "") << p.lens[i];
    o << (p.lens.size() > 6 ? ",..)" : ")") << ", variant " << p.variant << (p.gated_norm ? ", gated norm" : "")
      << (p.decode_ctas > 1 ? ", decode_ctas " + std::to_string(p.decode_ctas) : std::string())
      << ", seed " << p.seed << ": ";
    return o.str();
}

float max_abs(const Vec& v) {
    float m = 0.f;
    for (float x : v) m = std::max(m, std::fabs(x));
    return m;
}

}  // namespace

std::string compare_scaled(const std::string& what, const Vec& ref, const Vec& got, Tolerance tol) {
    if (ref.size() != got.size()) return what + ": " + std::to_string(got.size()) + " values, expected " +
                                         std::to_string(ref.size());
    return compare_close(what, ref.data(), got.data(), ref.size(), tol.atol_rel_max * max_abs(ref), tol.rtol);
}

// Conv: the same fp32 operations in the same tap order; the L2 norm's sum of 128 squares and expf/log1pf differ
// in rounding only: 1e-5 of max|ref| + 1e-4 relative leaves a margin of ~10x over fp32 reduction-order error.
std::string compare_conv(Executor& cpu, Executor& dev, const Problem& p) {
    Gen gen{std::mt19937_64(p.seed)};
    const Layout l = layout_of(p, gen);
    const Dims& d = p.dims;
    auto pad = [&](int64_t n) { return p.aligned ? (n + 3) / 4 * 4 : n; };
    const int64_t cd = d.conv_dim(), hv = d.n_v_heads, xs = pad(cd + 3 * hv + 5), ss = pad((p.kernel - 1) * cd + 7);
    // x rows hold q|k|v, then b and a (as in a fused projection): strides are not the widths.
    Vec x = gen.fill(size_t(l.n_tokens * xs), -3.f, 3.f), w = gen.fill(size_t(cd * p.kernel), -0.8f, 0.8f);
    Vec state = gen.fill(size_t(l.n_slots * ss), -3.f, 3.f);
    for (int64_t t = 0; t < l.n_tokens; ++t)
        for (int64_t j = 0; j < hv; ++j) {
            x[size_t(t * xs + cd + j)] = gen.normal(2.f);              // b
            x[size_t(t * xs + cd + hv + 2 + j)] = gen.normal(1.5f);   // a
        }
    Vec A(static_cast<size_t>(hv)), dt(static_cast<size_t>(hv));
    for (int64_t j = 0; j < hv; ++j) {
        const float Av = gen.uni(0.02f, 16.f);
        A[size_t(j)] = p.A_is_log ? std::log(Av) : -Av;
        dt[size_t(j)] = gen.uni(-7.f, -2.f);
    }
    const int64_t os = pad(cd + 9);
    Vec out(size_t(l.n_tokens * os), 0.f), g(size_t(l.n_tokens * hv)), beta(g.size());
    auto args = [&](const float* px, const float* pw, float* pst, float* pout, const float* pA, const float* pdt,
                    float* pg, float* pb, Seqs s) {
        Conv::Args a;
        a.dims = d;
        a.seqs = s;
        a.kernel = p.kernel;
        a.x = px, a.x_stride = xs, a.w = pw, a.conv_state = pst, a.state_stride = ss, a.out = pout, a.out_stride = os;
        a.b = px + cd, a.b_stride = xs, a.a = px + cd + hv + 2, a.a_stride = xs;
        a.A = pA, a.A_is_log = p.A_is_log, a.dt_bias = pdt, a.g = pg, a.beta = pb;
        a.variant = p.conv_variant;
        return a;
    };
    Vec st_ref = state, out_ref = out, g_ref = g, b_ref = beta;
    conv_cpu(cpu, args(x.data(), w.data(), st_ref.data(), out_ref.data(), A.data(), dt.data(), g_ref.data(),
                       b_ref.data(), seqs_host(l)));
    float* dst = upload(dev, state);
    float* dout = upload(dev, out);
    float* dg = upload(dev, g);
    float* db = upload(dev, beta);
    const auto a = args(upload(dev, x), upload(dev, w), dst, dout, upload(dev, A), upload(dev, dt), dg, db,
                        seqs_on(dev, l));
    (dev.kind() == DeviceKind::CUDA ? conv_cuda : conv_cpu)(dev, a);
    const Tolerance tol{1e-5f, 1e-4f};
    const std::string t = tag(p);
    std::string e = compare_scaled(t + "out", out_ref, download(dev, dout, out.size()), tol);
    if (e.empty()) e = compare_scaled(t + "conv state", st_ref, download(dev, dst, state.size()), tol);
    if (e.empty()) e = compare_scaled(t + "g", g_ref, download(dev, dg, g.size()), tol);
    if (e.empty()) e = compare_scaled(t + "beta", b_ref, download(dev, db, beta.size()), tol);
    return e;
}

// Chunked rule on the tensor cores: q, k, v, the decays and the UT inverse enter the products as bf16 (8 significant
// bits, rounding 2^-9 = 2e-3 relative per operand) with fp32 accumulation and fp32 state. Three products chain in a
// chunk (T (beta v) -> w S -> attn v_new), each adding ~2e-3 of its operands' scale, and the state carries errors from
// chunk to chunk damped by exp(g) and the delta rule's (I - beta k k^T): 2e-2 of max|ref| + 2e-2 relative. The
// mma.sync variants (4, 5) round at the same points (same bf16 records, bf16 h and v_new, fp32 accumulators and state):
// the same tolerance.
Tolerance rule_chunked_tolerance() { return {2e-2f, 2e-2f}; }

std::string compare_rule(Executor& cpu, Executor& dev, const Problem& p, bool decode) {
    Gen gen{std::mt19937_64(p.seed)};
    const Layout l = layout_of(p, gen);
    const Dims& d = p.dims;
    // Odd seeds: a row stride that is not a multiple of 4 floats (the chunked kernels' scalar loads).
    const int64_t cd = d.conv_dim(), hv = d.n_v_heads, qs = cd + (p.seed % 2 ? 3 : 4), os = d.value_dim() + 4;
    const int64_t ss = d.value_dim() * d.head_k_dim + 64;
    Vec qkv = gen.fill(size_t(l.n_tokens * qs), -2.f, 2.f);
    for (int64_t t = 0; t < l.n_tokens; ++t)
        for (int h = 0; h < 2 * d.n_k_heads; ++h) {
            float* v = &qkv[size_t(t * qs + int64_t(h) * d.head_k_dim)];
            float n2 = 0.f;
            for (int i = 0; i < d.head_k_dim; ++i) {
                v[i] = gen.normal(1.f);
                n2 += v[i] * v[i];
            }
            for (int i = 0; i < d.head_k_dim; ++i) v[i] /= std::sqrt(n2);
        }
    Vec g(size_t(l.n_tokens * hv)), beta(g.size());
    Vec A(static_cast<size_t>(hv)), dt(static_cast<size_t>(hv));
    for (int64_t j = 0; j < hv; ++j) A[size_t(j)] = gen.uni(0.02f, 16.f), dt[size_t(j)] = gen.uni(-7.f, -2.f);
    for (size_t i = 0; i < g.size(); ++i) {
        const float x = gen.normal(1.5f) + dt[i % size_t(hv)];
        g[i] = -A[i % size_t(hv)] * (x > 20.f ? x : std::log1p(std::exp(x)));
        beta[i] = 1.f / (1.f + std::exp(-gen.normal(2.f)));
    }
    Vec state(size_t(l.n_slots * ss));
    for (auto& v : state) v = gen.normal(0.5f);
    Vec o(size_t(l.n_tokens * os), 0.f);
    const int64_t zs = d.value_dim() + 3;
    const Vec z = gen.fill(size_t(l.n_tokens * zs), -4.f, 4.f), nw = gen.fill(size_t(d.head_v_dim), 0.2f, 1.8f);
    auto args = [&](const float* pq, const float* pg, const float* pb, float* pst, float* po, Seqs s) {
        RuleArgs a;
        a.dims = d;
        a.seqs = s;
        a.qkv = pq, a.qkv_stride = qs, a.g = pg, a.beta = pb, a.state = pst, a.state_stride = ss, a.o = po;
        a.o_stride = os, a.scale = 1.f / std::sqrt(float(d.head_k_dim));
        return a;
    };
    const bool norm = decode && p.gated_norm;
    auto with_norm = [&](RuleArgs a, const float* pz, const float* pw) {
        if (norm) a.z = pz, a.z_stride = zs, a.norm_w = pw, a.norm_eps = 1e-6f;
        return a;
    };
    Vec st_ref = state, o_ref = o;
    (decode ? rule_decode_cpu : rule_chunked_cpu)(
        cpu, with_norm(args(qkv.data(), g.data(), beta.data(), st_ref.data(), o_ref.data(), seqs_host(l)), z.data(),
                       nw.data()));
    float* dst = upload(dev, state);
    float* dout = upload(dev, o);
    auto a = with_norm(args(upload(dev, qkv), upload(dev, g), upload(dev, beta), dst, dout, seqs_on(dev, l)),
                       upload(dev, z), upload(dev, nw));
    a.variant = p.variant;
    a.decode_ctas = p.decode_ctas;
    if (!decode && p.variant != 1) {
        a.workspace_bytes = rule_chunked_workspace_bytes(d, l.n_tokens);
        a.workspace = dev.alloc(a.workspace_bytes, "gdn.check.workspace");
    }
    if (dev.kind() == DeviceKind::CUDA)
        (decode ? rule_decode_cuda : rule_chunked_cuda)(dev, a);
    else
        (decode ? rule_decode_cpu : rule_chunked_cpu)(dev, a);
    // Decode: fp32 throughout; the 128-term dot products are summed in another order (~1e-6 relative): 1e-5, 1e-4.
    const Tolerance tol = decode ? Tolerance{1e-5f, 1e-4f} : rule_chunked_tolerance();
    const std::string t = tag(p);
    std::string e = compare_scaled(t + "o", o_ref, download(dev, dout, o.size()), tol);
    if (e.empty()) e = compare_scaled(t + "state", st_ref, download(dev, dst, state.size()), tol);
    return e;
}

// Gated norm: fp32, one 128-term sum of squares in another order and expf: 1e-5 of max|ref| + 1e-5 relative.
std::string compare_gated_norm(Executor& cpu, Executor& dev, int64_t n_tokens, int n_heads, int head_dim,
                               uint64_t seed, int variant, bool aligned) {
    Gen gen{std::mt19937_64(seed)};
    const int64_t width = int64_t(n_heads) * head_dim, xs = width + (aligned ? 4 : 3), zs = width + (aligned ? 8 : 5);
    Vec x = gen.fill(size_t(n_tokens * xs), -2.f, 2.f), z = gen.fill(size_t(n_tokens * zs), -4.f, 4.f);
    Vec w = gen.fill(size_t(head_dim), 0.2f, 1.8f), y(size_t(n_tokens * xs), 0.f);
    auto args = [&](const float* px, const float* pz, const float* pw, float* py) {
        GatedNorm::Args a;
        a.x = px, a.x_stride = xs, a.z = pz, a.z_stride = zs, a.w = pw, a.y = py, a.y_stride = xs;
        a.n_tokens = n_tokens, a.n_heads = n_heads, a.head_dim = head_dim, a.eps = 1e-6f;
        a.variant = variant;
        return a;
    };
    std::string e;
    for (bool in_place : {false, true}) {
        Vec ref = in_place ? x : y;
        Vec xr = x;
        gated_norm_cpu(cpu, args(xr.data(), z.data(), w.data(), in_place ? xr.data() : ref.data()));
        if (in_place) ref = xr;
        float* dx = upload(dev, x);
        float* dy = in_place ? dx : upload(dev, y);
        const auto a = args(dx, upload(dev, z), upload(dev, w), dy);
        (dev.kind() == DeviceKind::CUDA ? gated_norm_cuda : gated_norm_cpu)(dev, a);
        e = compare_scaled(std::string(in_place ? "in place" : "y") + ", " + std::to_string(n_tokens) + " rows: y",
                           ref, download(dev, dy, ref.size()), {1e-5f, 1e-5f});
        if (!e.empty()) break;
    }
    return e;
}

// Decode step: the conv feeding the decode rule and the norm, fp32 throughout; the conv's rounding enters the rule's
// inputs, so twice the decode rule's tolerance: 2e-5 of max|ref| + 2e-4 relative.
std::string compare_decode_step(Executor& cpu, Executor& dev, const Problem& p) {
    Gen gen{std::mt19937_64(p.seed)};
    const Layout l = layout_of(p, gen);
    if (l.n_tokens != int64_t(p.lens.size())) return tag(p) + "a decode step takes one row per sequence";
    const Dims& d = p.dims;
    const int64_t cd = d.conv_dim(), vd = d.value_dim(), hv = d.n_v_heads;
    // Rows as the layer's projections: q|k|v | z | b | a, then padding.
    const int64_t xs = cd + vd + 2 * hv + 3, css = (p.kernel - 1) * cd + 5, sss = vd * d.head_k_dim + 64;
    const int64_t os = cd + 2, ys = vd + 4;
    Vec x = gen.fill(size_t(l.n_tokens * xs), -3.f, 3.f), w = gen.fill(size_t(cd * p.kernel), -0.8f, 0.8f);
    for (int64_t t = 0; t < l.n_tokens; ++t)
        for (int64_t j = 0; j < hv; ++j) {
            x[size_t(t * xs + cd + vd + j)] = gen.normal(2.f);       // b
            x[size_t(t * xs + cd + vd + hv + j)] = gen.normal(1.5f); // a
        }
    Vec A(static_cast<size_t>(hv)), dt(static_cast<size_t>(hv));
    for (int64_t j = 0; j < hv; ++j) {
        const float Av = gen.uni(0.02f, 16.f);
        A[size_t(j)] = p.A_is_log ? std::log(Av) : -Av;
        dt[size_t(j)] = gen.uni(-7.f, -2.f);
    }
    Vec cstate = gen.fill(size_t(l.n_slots * css), -3.f, 3.f), sstate(size_t(l.n_slots * sss));
    for (auto& v : sstate) v = gen.normal(0.5f);
    const Vec nw = gen.fill(size_t(d.head_v_dim), 0.2f, 1.8f);
    Vec out(size_t(l.n_tokens * os), 0.f), g(size_t(l.n_tokens * hv), 0.f), beta(g.size(), 0.f);
    Vec y(size_t(l.n_tokens * ys), 0.f);
    struct Ptrs {
        const float *x, *w, *A, *dt, *nw;
        float *cst, *sst, *out, *g, *beta, *y;
        Seqs seqs;
    };
    auto args = [&](const Ptrs& q) {
        DecodeStep::Args a;
        Conv::Args& c = a.conv;
        c.dims = d, c.seqs = q.seqs, c.kernel = p.kernel, c.x = q.x, c.x_stride = xs, c.w = q.w;
        c.conv_state = q.cst, c.state_stride = css, c.out = q.out, c.out_stride = os;
        c.b = q.x + cd + vd, c.b_stride = xs, c.a = q.x + cd + vd + hv, c.a_stride = xs;
        c.A = q.A, c.A_is_log = p.A_is_log, c.dt_bias = q.dt, c.g = q.g, c.beta = q.beta;
        RuleArgs& r = a.rule;
        r.state = q.sst, r.state_stride = sss, r.o = q.y, r.o_stride = ys, r.scale = 1.f / std::sqrt(float(d.head_k_dim));
        // Odd seeds: a norm epsilon near the mean square of o, so a wrong scale of q or o is not normalized away.
        r.norm_w = q.nw, r.z = q.x + cd, r.z_stride = xs, r.norm_eps = p.seed % 2 ? 0.5f : 1e-6f;
        r.variant = p.variant, r.decode_ctas = p.decode_ctas;
        return a;
    };
    Vec cst_ref = cstate, sst_ref = sstate, y_ref = y, out_ref = out, g_ref = g, b_ref = beta;
    decode_step_cpu(cpu, args({x.data(), w.data(), A.data(), dt.data(), nw.data(), cst_ref.data(), sst_ref.data(),
                               out_ref.data(), g_ref.data(), b_ref.data(), y_ref.data(), seqs_host(l)}));
    float* dcst = upload(dev, cstate);
    float* dsst = upload(dev, sstate);
    float* dy = upload(dev, y);
    const auto a = args({upload(dev, x), upload(dev, w), upload(dev, A), upload(dev, dt), upload(dev, nw), dcst, dsst,
                         upload(dev, out), upload(dev, g), upload(dev, beta), dy, seqs_on(dev, l)});
    (dev.kind() == DeviceKind::CUDA ? decode_step_cuda : decode_step_cpu)(dev, a);
    const Tolerance tol{2e-5f, 2e-4f};
    const std::string t = tag(p) + "decode step: ";
    std::string e = compare_scaled(t + "o", y_ref, download(dev, dy, y.size()), tol);
    // The conv state is a copy of inputs: exact.
    if (e.empty()) e = compare_scaled(t + "conv state", cst_ref, download(dev, dcst, cstate.size()), {0.f, 0.f});
    if (e.empty()) e = compare_scaled(t + "state", sst_ref, download(dev, dsst, sstate.size()), tol);
    return e;
}

namespace {

// A random problem from the seed: 1..4 sequences, GVA ratios 1, 2, 4, grouped or tiled heads, dk = dv = 128 (the
// shape of every released checkpoint and what the chunked CUDA kernel takes).
Problem random_problem(uint64_t seed, int max_len) {
    Gen gen{std::mt19937_64(seed * 7919 + 17)};
    Problem p;
    p.seed = seed;
    p.dims.n_k_heads = gen.pick(1, 3);
    p.dims.n_v_heads = p.dims.n_k_heads * (1 << gen.pick(0, 2));
    p.dims.head_k_dim = p.dims.head_v_dim = 128;
    p.dims.tiled = gen.pick(0, 1) == 1;
    p.A_is_log = gen.pick(0, 1) == 1;
    const int n = gen.pick(1, 4);
    for (int i = 0; i < n; ++i) p.lens.push_back(gen.pick(1, max_len));
    p.variant = gen.pick(0, 6);
    return p;
}

}  // namespace

std::string check_conv(Executor& cpu, Executor& dev, uint64_t seed) {
    Problem p = random_problem(seed, 200);
    p.conv_variant = int(seed % 2);
    p.aligned = seed % 4 < 2;
    return compare_conv(cpu, dev, p);
}
std::string check_rule_decode(Executor& cpu, Executor& dev, uint64_t seed) {
    Problem p = random_problem(seed, 1);
    p.gated_norm = seed % 2 == 1;
    const int warps[] = {0, 16, 32};  // RuleArgs::variant of gdn.rule_decode: the gated-norm kernel's warps per head
    p.variant = warps[(seed / 2) % 3];
    return compare_rule(cpu, dev, p, true);
}
std::string check_rule_chunked(Executor& cpu, Executor& dev, uint64_t seed) {
    return compare_rule(cpu, dev, random_problem(seed, 300), false);
}
std::string check_decode_step(Executor& cpu, Executor& dev, uint64_t seed) {
    Problem p = random_problem(seed, 1);
    const int warps[] = {0, 16, 32};
    p.variant = warps[seed % 3];
    const int ratio = p.dims.n_v_heads / p.dims.n_k_heads;
    p.decode_ctas = std::min(1 << int((seed / 3) % 4), 8 / ratio);  // clusters of at most 8 CTAs
    return compare_decode_step(cpu, dev, p);
}
std::string check_gated_norm(Executor& cpu, Executor& dev, uint64_t seed) {
    Gen gen{std::mt19937_64(seed)};
    return compare_gated_norm(cpu, dev, gen.pick(1, 300), gen.pick(1, 32), 128, seed, int(seed % 2), seed % 4 < 2);
}

}  // namespace imp::gdn
