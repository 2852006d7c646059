// Weight-only GPU tests (quant_fp8 and quant_nvfp4): the checks both formats run on a loaded Weight /
// ExpertWeights against the double-precision reference of their exact CPU dequantization (wo_test_util.h).
// Outputs start poisoned (or random when accumulating); every output must be written and nothing else.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <initializer_list>

#include "imp/quant_format.h"
#include "wo_kernels.h"
#include "wo_test_util.h"
#include "wo_weight.h"

namespace imp::wo::test {

// One matmul of n tokens (x stride xs, y stride ys) on fresh random x; returns the check against
// want = ref(w_ref, x_ref(x)) (+ init when accumulating). x_ref maps x to what the kernel is meant to multiply
// (identity, or the FP8 activation quantization).
inline Check matmul_case(CudaExecutor& ex, const Weight& w, const std::vector<float>& w_ref, int64_t n, int64_t xs,
                         int64_t ys, bool accumulate, std::mt19937& rng,
                         const std::function<std::vector<float>(const std::vector<float>&)>& x_ref = {}) {
    const int64_t rows = w.rows(), cols = w.cols(), n_alloc = n + 1;
    const auto x = random_floats(size_t(n * xs), rng);
    const auto xr = x_ref ? x_ref(x) : x;
    const auto delta = reference(w_ref, rows, cols, xr, xs, n);
    std::vector<float> init = poison_floats(size_t(n_alloc * ys));
    std::vector<double> want = delta;
    if (accumulate) {
        const auto z = random_floats(size_t(n * ys), rng);
        for (int64_t t = 0; t < n; ++t)
            for (int64_t r = 0; r < rows; ++r) {
                init[size_t(t * ys + r)] = z[size_t(t * ys + r)];
                want[size_t(t * rows + r)] += double(z[size_t(t * ys + r)]);
            }
    }
    float* xd = device_copy(ex, x);
    float* yd = device_copy(ex, init);
    w.matmul(ex, xd, xs, yd, ys, n, accumulate);
    return check_output(download(ex, yd, init.size()), init, ys, n_alloc, rows, want, delta, n);
}

// Prefill of a weight whose prefill runs cuBLASLt's FP8 GEMM, for 1/7/16/33/100/512/600 tokens (600: more rows
// than the per-tensor amax pass has CTAs), y strides rows and
// rows + 1 (cuBLASLt writes y directly, or through the fp32 buffer), y = and +=:
//   - up to gemv_max tokens (the weight's gemv_max_tokens) the GEMV: exact (1e-4);
//   - above, the FP8 GEMM: against the reference of the same E4M3 activation rounding (per tensor, or per token
//     when per_token) on w_fp8 (the
//     weights the GEMM multiplies) within 1e-2 (left: the tensor cores' fast accumulation), and against the exact
//     weights w_exact within exact_tol (E4M3 keeps 4 significant bits);
//   - a call cuBLASLt refused went through bf16 tiles instead: exact within 5e-3 (bf16 activations).
// Returns how many calls cuBLASLt refused.
inline int64_t fp8_prefill_cases(CudaExecutor& ex, const Weight& w, const std::vector<float>& w_exact,
                                 const std::vector<float>& w_fp8, double exact_tol, std::mt19937& rng,
                                 bool per_token = false, int64_t gemv_max = kMaxGemvTokens) {
    const int64_t rows = w.rows(), cols = w.cols();
    for (const int64_t t : {1, 7, 16, 33, 100, 512, 600})
        for (const int64_t ys : {rows, rows + 1})
            for (const bool acc : {false, true}) {
                ex.reserve_workspace(w.workspace_bytes(t));
                INFO(rows << "x" << cols << ", tokens " << t << ", y stride " << ys << (acc ? ", accumulate" : ""));
                std::mt19937 r1 = rng, r2 = rng;  // the same x for both references
                const int64_t before = fp8_refusals(w);
                const Check exact = matmul_case(ex, w, w_exact, t, cols, ys, acc, r1);
                CHECK(exact.unwritten == 0);
                CHECK(exact.overwritten == 0);
                const bool refused = fp8_refusals(w) > before;
                if (t <= gemv_max) {
                    CHECK(exact.rel <= 1e-4);
                } else if (refused) {
                    CHECK(exact.rel <= 5e-3);
                } else {
                    CHECK(exact.rel <= exact_tol);
                    auto sim = [&](const std::vector<float>& x) {
                        return fp8_activations(x, cols, t, cols, per_token);
                    };
                    CHECK(matmul_case(ex, w, w_fp8, t, cols, ys, acc, r2, sim).rel <= 1e-2);
                }
                rng = r1;
            }
    return fp8_refusals(w);
}

// get_rows: ids in range give the reference rows bit for bit, ids out of range zero rows.
inline void get_rows_case(CudaExecutor& ex, const Weight& w, const std::vector<float>& w_ref) {
    const int64_t rows = w.rows(), cols = w.cols();
    const std::vector<int32_t> ids = {0, int32_t(rows - 1), int32_t(rows / 2), -1, int32_t(rows), 0};
    int32_t* idd = device_copy(ex, ids);
    float* out = device_copy(ex, poison_floats(ids.size() * size_t(cols)));
    w.get_rows(ex, idd, int64_t(ids.size()), out);
    const auto got = download(ex, out, ids.size() * size_t(cols));
    int64_t bad = 0;
    for (size_t i = 0; i < ids.size(); ++i)
        for (int64_t c = 0; c < cols; ++c) {
            const bool ok = ids[i] >= 0 && ids[i] < rows;
            const float want = ok ? w_ref[size_t(ids[i] * cols + c)] : 0.f;
            bad += std::memcmp(&got[i * size_t(cols) + size_t(c)], &want, 4) != 0;
        }
    CHECK(bad == 0);
}

struct ExpertsCase {
    int64_t n_tokens = 1, top_k = 1;
    bool weighted = false, x_per_slot = false, accumulate = false;
    bool swiglu = false;  // x rows are [gate | up] (ExpertMatmul::x_swiglu)
};

// Random routing over experts {0, 1, 2, 4, ...} (expert 3 and the last one get no token), ~1 in 8 ids out of range
// (-1 or n_expert); routing weights in [0.1, 1).
inline std::vector<int32_t> random_ids(int64_t n, int64_t n_expert, std::mt19937& rng) {
    std::vector<int32_t> ids(static_cast<size_t>(n));
    std::uniform_int_distribution<int> d(0, int(n_expert) - 1), bad(0, 7);
    for (auto& id : ids) {
        do id = d(rng);
        while (id == 3 || id == int(n_expert) - 1);
        const int b = bad(rng);
        if (b == 0) id = -1;
        if (b == 1) id = int32_t(n_expert);
    }
    return ids;
}

// x as bf16 (round to nearest even), back to fp32: what the tensor-core expert GEMM multiplies.
inline std::vector<float> bf16_round(std::vector<float> x) {
    for (float& v : x) {
        uint32_t b;
        std::memcpy(&b, &v, 4);
        b = (b + 0x7FFFu + ((b >> 16) & 1u)) & 0xFFFF0000u;
        std::memcpy(&v, &b, 4);
    }
    return x;
}

// How the kernels of a call round the activations they multiply: not at all (fp32), to bf16 (the expert GEMM), or
// to int8 per 16 columns (the NVFP4 GEMV with gemv_int8_x; x rows of stride xs, cols columns).
enum class XRound { None, Bf16, Int8 };
inline std::vector<float> round_x(const std::vector<float>& x, XRound r, int64_t xs = 0, int64_t cols = 0) {
    if (r == XRound::Int8) return int8_activations(x, xs, int64_t(x.size()) / xs, cols);
    return r == XRound::Bf16 ? bf16_round(x) : x;
}

// One grouped matmul on fresh random inputs against the double reference of x rounded as `round` says.
inline Check experts_case(CudaExecutor& ex, const ExpertWeights& w, const std::vector<std::vector<float>>& w_ref,
                          const ExpertsCase& c, std::mt19937& rng, XRound round = XRound::None) {
    const int64_t rows = w.rows(), cols = w.cols(), n_pairs = c.n_tokens * c.top_k, xc = c.swiglu ? 2 * cols : cols;
    // Odd token counts: a row stride of whole 16-byte steps (the GEMV's vector loads), even: an odd one.
    const int64_t xs = (xc + 3) / 4 * 4 + (c.n_tokens % 2 ? 4 : 1), ys = rows + 3;
    const int64_t x_rows = c.x_per_slot ? n_pairs : c.n_tokens, n_out = c.weighted ? c.n_tokens : n_pairs;
    const auto x = random_floats(size_t(x_rows * xs), rng);
    const auto ids = random_ids(n_pairs, w.n_expert(), rng);
    std::vector<float> weights(static_cast<size_t>(n_pairs));
    std::uniform_real_distribution<float> u(0.1f, 1.f);
    for (auto& g : weights) g = u(rng);
    std::vector<float> init = poison_floats(size_t((n_out + 1) * ys));
    if (c.accumulate) {
        const auto z = random_floats(init.size(), rng);
        for (int64_t o = 0; o < n_out; ++o)
            for (int64_t r = 0; r < rows; ++r) init[size_t(o * ys + r)] = z[size_t(o * ys + r)];
    }
    ExpertMatmul m;
    m.x = device_copy(ex, x);
    m.x_stride = xs;
    m.x_per_slot = c.x_per_slot;
    m.ids = device_copy(ex, ids);
    m.weights = c.weighted ? device_copy(ex, weights) : nullptr;
    m.n_tokens = c.n_tokens;
    m.top_k = c.top_k;
    m.y = device_copy(ex, init);
    m.y_stride = ys;
    m.accumulate = c.accumulate;
    m.x_swiglu = c.swiglu;
    // What the kernels multiply: x, or silu(gate) * up of its rows (as the executor computes it), then bf16_x.
    ExpertMatmul mr = m;
    std::vector<float> xr = x;
    if (c.swiglu) {
        mr.x_stride = cols;
        xr.assign(size_t(x_rows * cols), 0.f);
        for (int64_t i = 0; i < x_rows; ++i)
            for (int64_t j = 0; j < cols; ++j) {
                const float g = x[size_t(i * xs + j)], u = x[size_t(i * xs + cols + j)];
                xr[size_t(i * cols + j)] = g / (1.f + std::exp(-g)) * u;
            }
    }
    const auto e = experts_expected(w_ref, rows, cols, mr, round_x(xr, round, mr.x_stride, cols), ids, weights, init, ys);
    w.grouped_matmul(ex, m);
    return check_output(download(ex, m.y, init.size()), init, ys, n_out + 1, rows, e.want, e.delta, n_out);
}

// Every experts case the formats run: 1/2/5/8/33 tokens (or `tokens`), top_k 1/2/4 (or `top_ks`; so more and fewer
// (token, slot) pairs than the 6 experts of the tests), weighted or not, x per slot or not, y = or +=; swiglu: x rows
// [gate | up] (ExpertMatmul::x_swiglu). round(case, grouped): how the kernels that run the case round x (grouped:
// more pairs than experts); default none.
using RoundOf = std::function<XRound(const ExpertsCase&, bool grouped)>;
inline void experts_cases(CudaExecutor& ex, const ExpertWeights& w, const std::vector<std::vector<float>>& w_ref,
                          double tol, std::mt19937& rng, const std::vector<int64_t>& tokens = {1, 2, 5, 8, 33},
                          const RoundOf& round = {}, bool swiglu = false,
                          const std::vector<int64_t>& top_ks = {1, 2, 4}) {
    for (const int64_t n : tokens)
        for (const int64_t k : top_ks)
            for (const bool weighted : {false, true})
                for (const bool per_slot : {false, true})
                    for (const bool acc : {false, true}) {
                        ExpertsCase c{n, k, weighted, per_slot, acc, swiglu};
                        ex.reserve_workspace(w.workspace_bytes(n, k));
                        const XRound r = round ? round(c, n * k > w.n_expert()) : XRound::None;
                        const Check res = experts_case(ex, w, w_ref, c, rng, r);
                        INFO("tokens " << n << ", top_k " << k << (weighted ? ", weighted" : "")
                                       << (per_slot ? ", x per slot" : "") << (acc ? ", accumulate" : "")
                                       << (swiglu ? ", [gate | up] rows" : ""));
                        CHECK(res.unwritten == 0);
                        CHECK(res.overwritten == 0);
                        CHECK(res.rel <= tol);
                    }
}
// A decode-sized grouped matmul of n tokens and top_k k on fresh random inputs: x (x_rows rows of stride xs, x per
// slot), ids, routing weights when weighted, the extra slot's weights when extra_weighted; y poisoned (n_out + 1
// rows of stride ys; init keeps its host copy).
struct DecodeCall {
    ExpertMatmul m;
    std::vector<float> init;
};
inline DecodeCall random_decode_call(CudaExecutor& ex, int64_t n_expert, int64_t n, int64_t k, int64_t x_rows,
                                     int64_t xs, int64_t n_out, int64_t ys, bool weighted, bool extra_weighted,
                                     std::mt19937& rng) {
    std::uniform_real_distribution<float> u(0.1f, 1.f);
    std::vector<float> g(static_cast<size_t>(n * k)), eg(static_cast<size_t>(n));
    for (auto& v : g) v = u(rng);
    for (auto& v : eg) v = u(rng);
    DecodeCall c;
    c.init = poison_floats(size_t((n_out + 1) * ys));
    c.m.x = device_copy(ex, random_floats(size_t(x_rows * xs), rng));
    c.m.x_stride = xs;
    c.m.x_per_slot = true;
    c.m.ids = device_copy(ex, random_ids(n * k, n_expert, rng));
    c.m.weights = weighted ? device_copy(ex, g) : nullptr;
    c.m.extra_weights = extra_weighted ? device_copy(ex, eg) : nullptr;
    c.m.n_tokens = n;
    c.m.top_k = k;
    c.m.y = device_copy(ex, c.init);
    c.m.y_stride = ys;
    return c;
}

// Whether two device outputs of `count` floats are the same bytes.
inline bool same_bytes(CudaExecutor& ex, const float* a, const float* b, size_t count) {
    const auto ha = download(ex, a, count), hb = download(ex, b, count);
    return std::memcmp(ha.data(), hb.data(), count * sizeof(float)) == 0;
}

// experts_swiglu: decode calls of `staged` (a weight with the setting) on [gate | up] rows against the same call of
// `plain` (the same experts without it) on the executor's SwiGLU of those rows, bit for bit: the GEMV stages
// silu(gate) * up in each CTA with the executor's formula and sums in the same order. Weighted with x per slot (the
// MoE block's down projection) with and without the extra slot (d_staged / d_plain: a dense weight of one expert's
// shape), and unweighted; fresh random inputs, outputs start poisoned.
inline void swiglu_staged_cases(CudaExecutor& ex, const ExpertWeights& staged, const ExpertWeights& plain,
                                const Weight& d_staged, const Weight& d_plain, std::mt19937& rng) {
    const int64_t rows = staged.rows(), cols = staged.cols(), xs = 2 * cols + 4, ys = rows + 3;
    for (const int64_t n : {1, 3})
        for (const int64_t k : {1, 2})
            for (const bool weighted : {false, true})
                for (const bool extra : {false, true}) {
                    if (n * k > staged.n_expert()) continue;
                    INFO("tokens " << n << ", top_k " << k << (weighted ? ", weighted" : "")
                                   << (extra ? ", extra slot" : ""));
                    const int64_t x_rows = n * k + (extra ? n : 0), n_out = weighted ? n : x_rows;
                    ex.reserve_workspace(std::max(staged.workspace_bytes(n, k), plain.workspace_bytes(n, k)));
                    DecodeCall c = random_decode_call(ex, staged.n_expert(), n, k, x_rows, xs, n_out, ys, weighted,
                                                      extra && weighted, rng);
                    c.m.x_swiglu = true;
                    c.m.extra = extra ? &d_staged : nullptr;
                    staged.grouped_matmul(ex, c.m);
                    auto* act = static_cast<float*>(ex.alloc(size_t(x_rows * cols) * 4, "act"));
                    ex.swiglu(c.m.x, xs, c.m.x + cols, xs, act, x_rows, cols);
                    ExpertMatmul r = c.m;
                    r.x = act;
                    r.x_stride = cols;
                    r.x_swiglu = false;
                    r.y = device_copy(ex, c.init);
                    r.extra = extra ? &d_plain : nullptr;
                    plain.grouped_matmul(ex, r);
                    CHECK(same_bytes(ex, c.m.y, r.y, c.init.size()));
                }
}

// gemv_stage_x: `staged` (x copied into shared memory by each CTA) against `plain` (the same weights without it) on
// the same fresh random inputs, bit for bit: dense calls of 1-8 tokens (x stride cols: staged; cols + 3 at several
// tokens: not 16-byte rows, the plain kernel) and, when both are expert weights, decode expert calls (weighted or
// not, x per slot or per token).
// Dense calls of w and of ref_of(n) (a weight of the same matrix) on the same fresh random inputs, bit for bit: each
// token count n of `tokens`, x strides cols and cols + 3, y = and +=.
template <typename RefOf>
void dense_same_bits(CudaExecutor& ex, const Weight& w, const RefOf& ref_of, std::mt19937& rng,
                     std::initializer_list<int64_t> tokens) {
    const int64_t rows = w.rows(), cols = w.cols(), ys = rows + 5;
    for (const int64_t n : tokens)
        for (const int64_t xs : {cols, cols + 3})
            for (const bool acc : {false, true}) {
                INFO("dense, tokens " << n << ", x stride " << xs << (acc ? ", accumulate" : ""));
                const auto init = acc ? random_floats(size_t((n + 1) * ys), rng) : poison_floats(size_t((n + 1) * ys));
                const float* xd = device_copy(ex, random_floats(size_t(n * xs), rng));
                float *ya = device_copy(ex, init), *yb = device_copy(ex, init);
                w.matmul(ex, xd, xs, ya, ys, n, acc);
                static_cast<const Weight&>(ref_of(n)).matmul(ex, xd, xs, yb, ys, n, acc);
                CHECK(same_bytes(ex, ya, yb, init.size()));
            }
}
inline void stage_x_same_bits(CudaExecutor& ex, const Weight& staged, const Weight& plain, std::mt19937& rng) {
    dense_same_bits(ex, staged, [&](int64_t) -> const Weight& { return plain; }, rng, {1, 2, 3, 5, 8});
}
inline void stage_x_same_bits(CudaExecutor& ex, const ExpertWeights& staged, const ExpertWeights& plain,
                              std::mt19937& rng) {
    const int64_t rows = staged.rows(), cols = staged.cols(), xs = cols + 4, ys = rows + 3;
    for (const int64_t n : {1, 3})
        for (const int64_t k : {1, 2})
            for (const bool weighted : {false, true})
                for (const bool per_slot : {false, true}) {
                    if (n * k > staged.n_expert()) continue;
                    INFO("experts, tokens " << n << ", top_k " << k << (weighted ? ", weighted" : "")
                                            << (per_slot ? ", x per slot" : ""));
                    ex.reserve_workspace(std::max(staged.workspace_bytes(n, k), plain.workspace_bytes(n, k)));
                    DecodeCall c = random_decode_call(ex, staged.n_expert(), n, k, per_slot ? n * k : n, xs,
                                                      weighted ? n : n * k, ys, weighted, false, rng);
                    c.m.x_per_slot = per_slot;
                    staged.grouped_matmul(ex, c.m);
                    ExpertMatmul r = c.m;
                    r.y = device_copy(ex, c.init);
                    plain.grouped_matmul(ex, r);
                    CHECK(same_bytes(ex, c.m.y, r.y, c.init.size()));
                }
}

// The shared expert as ExpertMatmul::extra: d (a dense weight of one expert's shape, format and layout; d_ref its
// exact values) as slot top_k of every token on decode-sized calls (at most n_expert pairs, so w must take it):
// unweighted, row n k + t of y; weighted, added to y[t] with extra_weights[t] or (null) 1. x rows per slot: the
// extra slot's is row n k + t. Against the double reference of the routed slots plus d; every output written once,
// nothing else touched. A dense weight of another shape is refused (takes_extra false, the call throws). swiglu: x
// rows are [gate | up] (ExpertMatmul::x_swiglu; for weights whose swiglu_input(): weighted calls with x per slot run
// the fused down projection, the extra slot among its slots).
inline void extra_cases(CudaExecutor& ex, const ExpertWeights& w, const std::vector<std::vector<float>>& w_ref,
                        const Weight& d, const std::vector<float>& d_ref, const Weight& other, std::mt19937& rng,
                        bool swiglu = false) {
    const int64_t rows = w.rows(), cols = w.cols(), x_cols = swiglu ? 2 * cols : cols;
    CHECK_FALSE(w.takes_extra(other, 1, 1));
    for (const int64_t n : {1, 2, 3})
        for (const int64_t k : {1, 2}) {
            if (n * k > w.n_expert()) continue;
            CHECK(w.takes_extra(d, n, k));
            ex.reserve_workspace(w.workspace_bytes(n, k));
            const int64_t pairs = n * k;
            for (const bool weighted : {false, true})
                for (const bool per_slot : {false, true})
                    for (const bool acc : {false, true})
                        for (const bool gate : {false, true}) {
                            if (gate && !weighted) continue;
                            const int64_t xs = (x_cols + 3) / 4 * 4 + (n % 2 ? 4 : 1), ys = rows + 3;
                            const int64_t x_rows = per_slot ? pairs + n : n, n_out = weighted ? n : pairs + n;
                            const auto x = random_floats(size_t(x_rows * xs), rng);
                            const auto ids = random_ids(pairs, w.n_expert(), rng);
                            std::vector<float> g(static_cast<size_t>(pairs)), eg(static_cast<size_t>(n));
                            std::uniform_real_distribution<float> u(0.1f, 1.f);
                            for (auto& v : g) v = u(rng);
                            for (auto& v : eg) v = u(rng);
                            std::vector<float> init = poison_floats(size_t((n_out + 1) * ys));
                            if (acc) {
                                const auto z = random_floats(init.size(), rng);
                                for (int64_t o = 0; o < n_out; ++o)
                                    for (int64_t r = 0; r < rows; ++r) init[size_t(o * ys + r)] = z[size_t(o * ys + r)];
                            }
                            std::vector<double> delta(size_t(n_out * rows), 0.0);
                            auto act = [&](int64_t xr, int64_t c) {
                                const double g = x[size_t(xr * xs + c)];
                                return swiglu ? g / (1.0 + std::exp(-g)) * double(x[size_t(xr * xs + cols + c)]) : g;
                            };
                            auto add = [&](const std::vector<float>& W, int64_t xr, int64_t o, double gw) {
                                for (int64_t r = 0; r < rows; ++r) {
                                    double sum = 0;
                                    for (int64_t c = 0; c < cols; ++c) sum += double(W[size_t(r * cols + c)]) * act(xr, c);
                                    delta[size_t(o * rows + r)] += gw * sum;
                                }
                            };
                            for (int64_t p = 0; p < pairs; ++p)
                                if (ids[size_t(p)] >= 0 && ids[size_t(p)] < w.n_expert())
                                    add(w_ref[size_t(ids[size_t(p)])], per_slot ? p : p / k, weighted ? p / k : p,
                                        weighted ? double(g[size_t(p)]) : 1.0);
                            for (int64_t t = 0; t < n; ++t)
                                add(d_ref, per_slot ? pairs + t : t, weighted ? t : pairs + t,
                                    gate ? double(eg[size_t(t)]) : 1.0);
                            std::vector<double> want = delta;
                            if (acc)
                                for (int64_t o = 0; o < n_out; ++o)
                                    for (int64_t r = 0; r < rows; ++r)
                                        want[size_t(o * rows + r)] += double(init[size_t(o * ys + r)]);
                            ExpertMatmul m;
                            m.x = device_copy(ex, x);
                            m.x_stride = xs;
                            m.x_per_slot = per_slot;
                            m.x_swiglu = swiglu;
                            m.ids = device_copy(ex, ids);
                            m.weights = weighted ? device_copy(ex, g) : nullptr;
                            m.n_tokens = n;
                            m.top_k = k;
                            m.y = device_copy(ex, init);
                            m.y_stride = ys;
                            m.accumulate = acc;
                            m.extra = &d;
                            m.extra_weights = gate ? device_copy(ex, eg) : nullptr;
                            w.grouped_matmul(ex, m);
                            const Check res = check_output(download(ex, m.y, init.size()), init, ys, n_out + 1, rows,
                                                           want, delta, n_out);
                            INFO("tokens " << n << ", top_k " << k << (weighted ? ", weighted" : "")
                                           << (swiglu ? ", [gate | up] rows" : "")
                                           << (per_slot ? ", x per slot" : "") << (acc ? ", accumulate" : "")
                                           << (gate ? ", extra weights" : ""));
                            CHECK(res.unwritten == 0);
                            CHECK(res.overwritten == 0);
                            CHECK(res.rel <= 1e-4);
                        }
        }
    ExpertMatmul bad;
    std::vector<int32_t> ids(1, 0);
    bad.x = device_copy(ex, random_floats(size_t(cols), rng));
    bad.x_stride = cols;
    bad.ids = device_copy(ex, ids);
    bad.n_tokens = 1;
    bad.y = device_copy(ex, poison_floats(size_t(2 * rows)));
    bad.y_stride = rows;
    bad.extra = &other;
    CHECK_THROWS_WITH(w.grouped_matmul(ex, bad), Catch::Contains("takes_extra is false"));
}

// Dense GEMV calls of w at each token count, y = and +=, x row strides cols and cols + 3 (y stride rows + 5), each
// against the reference within 1e-4, every output written and nothing else; `what` names the plan in messages.
inline void gemv_cases(CudaExecutor& ex, const Weight& w, const std::vector<float>& w_ref, std::mt19937& rng,
                       const std::vector<int64_t>& tokens, const std::string& what) {
    const int64_t rows = w.rows(), cols = w.cols();
    for (const int64_t t : tokens)
        for (const bool acc : {false, true})
            for (const int64_t xs : {cols, cols + 3}) {
                INFO(rows << "x" << cols << ", " << what << ", tokens " << t << (acc ? ", accumulate" : "")
                          << ", x stride " << xs);
                const Check c = matmul_case(ex, w, w_ref, t, xs, rows + 5, acc, rng);
                CHECK(c.unwritten == 0);
                CHECK(c.overwritten == 0);
                CHECK(c.rel <= 1e-4);
            }
}

// The norm tests' inputs: a norm weight in [0.5, 1.5) on the device; n rows of x (stride xs) whose scales differ
// (the norm is per token); the fused call on them with y (stride ys) starting as init.
inline const float* random_norm_weight(CudaExecutor& ex, int64_t cols, std::mt19937& rng) {
    std::vector<float> g = random_floats(size_t(cols), rng);
    for (auto& v : g) v = 1.f + 0.5f * v;
    return device_copy(ex, g);
}
inline std::vector<float> scaled_rows(int64_t n, int64_t xs, int64_t cols, std::mt19937& rng) {
    auto x = random_floats(size_t(n * xs), rng);
    for (int64_t t = 0; t < n; ++t)
        for (int64_t c = 0; c < cols; ++c) x[size_t(t * xs + c)] *= float(t + 1) * 0.7f;
    return x;
}
inline FusedMatmul norm_call(CudaExecutor& ex, const std::vector<float>& x, int64_t xs, const std::vector<float>& init,
                             int64_t ys, int64_t n, bool acc, const float* g, float eps) {
    FusedMatmul fm;
    fm.x = device_copy(ex, x);
    fm.x_stride = xs;
    fm.y = device_copy(ex, init);
    fm.y_stride = ys;
    fm.n_tokens = n;
    fm.accumulate = acc;
    fm.norm = g;
    fm.norm_eps = eps;
    return fm;
}

// Weight::matmul_fused with an RMSNorm (setting fuse_norm) on w, which has it on: 1-8 tokens, y = and +=, x row
// strides cols and cols + 4 (y stride rows + 5): y = W (x * rsqrt(mean(x^2) + eps) * g) within 1e-4 of the double
// reference, every output written once and nothing else. Calls the kernel cannot take are refused (false, nothing
// run): an x stride off 16 bytes with several tokens, staged rows over kMaxNormSmem, the SwiGLU fusions. A weight without the setting refuses all.
inline void norm_cases(CudaExecutor& ex, const Weight& w, const std::vector<float>& w_ref, const Weight& off,
                       std::mt19937& rng) {
    const int64_t rows = w.rows(), cols = w.cols();
    const float eps = 1e-5f;
    const float* gd = random_norm_weight(ex, cols, rng);
    const std::vector<float> g = download(ex, gd, size_t(cols));
    for (const int64_t n : {1, 2, 3, 5, 8})
        for (const bool acc : {false, true})
            for (const int64_t xs : {cols, cols + 4}) {
                INFO(rows << "x" << cols << ", fused norm, tokens " << n << (acc ? ", accumulate" : "") << ", x stride "
                          << xs);
                const int64_t ys = rows + 5, n_alloc = n + 1;
                const auto x = scaled_rows(n, xs, cols, rng);
                std::vector<float> xn(x.size(), 0.f);
                for (int64_t t = 0; t < n; ++t) {
                    double ss = 0;
                    for (int64_t c = 0; c < cols; ++c) ss += double(x[size_t(t * xs + c)]) * x[size_t(t * xs + c)];
                    const double sc = 1.0 / std::sqrt(ss / double(cols) + eps);
                    for (int64_t c = 0; c < cols; ++c)
                        xn[size_t(t * xs + c)] = float(double(x[size_t(t * xs + c)]) * sc * g[size_t(c)]);
                }
                const auto delta = reference(w_ref, rows, cols, xn, xs, n);
                std::vector<float> init = poison_floats(size_t(n_alloc * ys));
                std::vector<double> want = delta;
                if (acc) {
                    const auto z = random_floats(size_t(n * ys), rng);
                    for (int64_t t = 0; t < n; ++t)
                        for (int64_t r = 0; r < rows; ++r) {
                            init[size_t(t * ys + r)] = z[size_t(t * ys + r)];
                            want[size_t(t * rows + r)] += double(z[size_t(t * ys + r)]);
                        }
                }
                const FusedMatmul fm = norm_call(ex, x, xs, init, ys, n, acc, gd, eps);
                CHECK_FALSE(off.matmul_fused(ex, fm));
                FusedMatmul sw = fm;
                sw.swiglu = true;
                CHECK_FALSE(w.matmul_fused(ex, sw));
                const int64_t bucket = n <= 1 ? 1 : n <= 2 ? 2 : n <= 4 ? 4 : 8;
                if (bucket * cols * 4 > wo::kMaxNormSmem) {  // the staged rows would not fit: refused
                    CHECK_FALSE(w.matmul_fused(ex, fm));
                    continue;
                }
                REQUIRE(w.matmul_fused(ex, fm));
                const Check c = check_output(download(ex, fm.y, init.size()), init, ys, n_alloc, rows, want, delta, n);
                CHECK(c.unwritten == 0);
                CHECK(c.overwritten == 0);
                CHECK(c.rel <= 1e-4);
                if (n > 1) {  // rows 16-byte aligned no more: refused
                    FusedMatmul odd = fm;
                    odd.x_stride = xs + 1;
                    odd.x = device_copy(ex, random_floats(size_t(n * (xs + 1)), rng));
                    CHECK_FALSE(w.matmul_fused(ex, odd));
                }
            }
}

// Norm-fused calls (FusedMatmul::norm) of two weights of the same matrix that both take them (`a` and `b` differ in a
// setting that must not change the result, e.g. the gemv plan, which norm-fused calls ignore), bit for bit: 1-8 tokens (those whose staged rows
// fit), x strides cols and cols + 4, y = and +=; fresh random inputs, rows of different scales.
inline void norm_same_bits(CudaExecutor& ex, const Weight& a, const Weight& b, std::mt19937& rng) {
    const int64_t rows = a.rows(), cols = a.cols(), ys = rows + 5;
    const float* gd = random_norm_weight(ex, cols, rng);
    for (const int64_t n : {1, 2, 3, 5, 8})
        for (const bool acc : {false, true})
            for (const int64_t xs : {cols, cols + 4}) {
                const int64_t bucket = n <= 1 ? 1 : n <= 2 ? 2 : n <= 4 ? 4 : 8;
                if (bucket * cols * 4 > wo::kMaxNormSmem) continue;
                INFO(rows << "x" << cols << ", fused norm, tokens " << n << (acc ? ", accumulate" : "")
                          << ", x stride " << xs);
                const auto x = scaled_rows(n, xs, cols, rng);
                const auto init =
                    acc ? random_floats(size_t((n + 1) * ys), rng) : poison_floats(size_t((n + 1) * ys));
                const FusedMatmul fm = norm_call(ex, x, xs, init, ys, n, acc, gd, 1e-5f);
                FusedMatmul fb = fm;
                fb.y = device_copy(ex, init);
                REQUIRE(a.matmul_fused(ex, fm));
                REQUIRE(b.matmul_fused(ex, fb));
                CHECK(same_bytes(ex, fm.y, fb.y, init.size()));
            }
}

// gemv_mma_tokens = 3 on `mixed` (all else as `regs`, whose plan is regs, and `mma`, whose plan is mma): dense calls
// of 1-2 tokens give regs' bits, of 3-8 mma's (x strides cols and cols + 3, y = and +=); and a norm-fused call is
// taken below 3 tokens and refused from 3 on (its norm then runs as its own kernel, the GEMV on the tensor cores).
inline void mma_tokens_cases(CudaExecutor& ex, const Weight& mixed, const Weight& regs, const Weight& mma,
                             std::mt19937& rng) {
    const int64_t cols = mixed.cols(), ys = mixed.rows() + 5;
    dense_same_bits(ex, mixed, [&](int64_t n) -> const Weight& { return n >= 3 ? mma : regs; }, rng,
                    {1, 2, 3, 4, 5, 8});
    const float* gd = random_norm_weight(ex, cols, rng);
    for (const int64_t n : {1, 2, 3, 8}) {
        INFO("fused norm, tokens " << n);
        const auto init = poison_floats(size_t((n + 1) * ys));
        const FusedMatmul fm = norm_call(ex, scaled_rows(n, cols, cols, rng), cols, init, ys, n, false, gd, 1e-5f);
        CHECK(mixed.matmul_fused(ex, fm) == (n < 3 && n * cols * 4 <= wo::kMaxNormSmem));
    }
}

// The tensor-core GEMV (w loaded with gemv = mma) against the exact sums, 8 tokens of normal activations times 1,
// 1e-2, 1e-3: the kernel's fp16 x (x * 2^-4) keeps 11 significant bits down to |x| = 2^-10 and an absolute step of
// 2^-20 below, so the error stays near fp16's ~2^-12 of max |y| at every scale here (about 3e-4 at 1e-3; with the
// 2^-8 scale of before, 4e-3 there); 1e-3 of max |y| (the int8 GEMV's per-16-column rounding: ~4e-3 at any scale).
inline void mma_small_x_cases(CudaExecutor& ex, const Weight& w, const std::vector<float>& w_ref, std::mt19937& rng) {
    const int64_t rows = w.rows(), cols = w.cols(), n = 8;
    for (const float scale : {1.f, 1e-2f, 1e-3f}) {
        INFO(rows << "x" << cols << ", mma, activations x " << scale);
        auto x = random_floats(size_t(n * cols), rng);
        for (auto& v : x) v *= scale;
        const auto ref = reference(w_ref, rows, cols, x, cols, n);
        float* xd = device_copy(ex, x);
        float* yd = device_copy(ex, std::vector<float>(size_t(n * rows), 0.f));
        w.matmul(ex, xd, cols, yd, rows, n, false);
        const auto y = download(ex, yd, size_t(n * rows));
        double md = 0, mr = 0;
        for (size_t i = 0; i < y.size(); ++i) {
            md = std::max(md, std::fabs(double(y[i]) - ref[i]));
            mr = std::max(mr, std::fabs(ref[i]));
        }
        INFO("max|diff| " << md << ", max|ref| " << mr);
        CHECK(md <= 1e-3 * mr);
    }
}

// The streaming GEMV (gemv = stream) on a weight w loaded with it, of a shape with enough row groups that it
// applies at 1-2 tokens on this device (checked: l is w's layout); 3 tokens run the regs plan. Strides and
// accumulate as the other GEMV cases.
inline void stream_cases(CudaExecutor& ex, const Weight& w, const std::vector<float>& w_ref, const Layout& l,
                         std::mt19937& rng) {
    REQUIRE(stream_grid(l, 1, ex.cuda()->sm_count) > 0);
    CHECK(stream_grid(l, 3, ex.cuda()->sm_count) == 0);
    gemv_cases(ex, w, w_ref, rng, {1, 2, 3}, "stream");
}

// The expert GEMM's rounding: bf16 on grouped calls.
inline XRound gemm_rounding(const ExpertsCase&, bool grouped) { return grouped ? XRound::Bf16 : XRound::None; }

// A graph captured with a one-token GEMV, a prefill matmul of n_big tokens and a weighted grouped matmul replays
// with new activations, ids and weights written to the same device buffers. experts_round: how the grouped matmul
// rounds its activations (the expert GEMM: bf16).
inline void graph_case(CudaExecutor& ex, const Weight& w, const std::vector<float>& w_ref, int64_t n_big,
                       double tol_big, const ExpertWeights& e, const std::vector<std::vector<float>>& e_ref,
                       std::mt19937& rng,
                       const std::function<std::vector<float>(const std::vector<float>&, int64_t)>& x_ref_big = {},
                       const std::vector<float>* w_ref_gemv = nullptr,
                       XRound experts_round = XRound::None) {
    // w_ref: the weights the n_big GEMM multiplies; w_ref_gemv (default w_ref): those the 1-token GEMV reads, which
    // differ when the prefill path multiplies a converted copy (NVFP4 weights converted to FP8 at load).
    const std::vector<float>& w_gemv = w_ref_gemv ? *w_ref_gemv : w_ref;
    const int64_t rows = w.rows(), cols = w.cols(), er = e.rows(), ec = e.cols(), top_k = 2, n_tok = 3;
    ex.reserve_workspace(std::max(w.workspace_bytes(n_big), e.workspace_bytes(n_tok, top_k)));
    float* xd = device_copy(ex, std::vector<float>(size_t(n_big * cols), 1.f));
    float* y1 = device_copy(ex, poison_floats(size_t(rows)));
    float* y2 = device_copy(ex, poison_floats(size_t(n_big * rows)));
    float* ex_x = device_copy(ex, std::vector<float>(size_t(n_tok * ec), 1.f));
    int32_t* ex_ids = device_copy(ex, std::vector<int32_t>(size_t(n_tok * top_k), 0));
    float* ex_w = device_copy(ex, std::vector<float>(size_t(n_tok * top_k), 1.f));
    float* ex_y = device_copy(ex, poison_floats(size_t(n_tok * er)));
    ExpertMatmul m;
    m.x = ex_x;
    m.x_stride = ec;
    m.ids = ex_ids;
    m.weights = ex_w;
    m.n_tokens = n_tok;
    m.top_k = top_k;
    m.y = ex_y;
    m.y_stride = er;
    auto step = [&] {
        w.matmul(ex, xd, cols, y1, rows, 1, false);
        w.matmul(ex, xd, cols, y2, rows, n_big, false);
        e.grouped_matmul(ex, m);
    };
    step();  // plans (cuBLASLt heuristics) are made outside the capture
    ex.synchronize();
    ex.capture_begin();
    step();
    const int graph = ex.capture_end();
    REQUIRE(graph >= 0);
    for (int rep = 0; rep < 2; ++rep) {
        const auto x = random_floats(size_t(n_big * cols), rng);
        const auto xe = random_floats(size_t(n_tok * ec), rng);
        const auto ids = random_ids(n_tok * top_k, e.n_expert(), rng);
        const auto g = random_floats(size_t(n_tok * top_k), rng);
        ex.upload(xd, x.data(), x.size() * 4);
        ex.upload(ex_x, xe.data(), xe.size() * 4);
        ex.upload(ex_ids, ids.data(), ids.size() * 4);
        ex.upload(ex_w, g.data(), g.size() * 4);
        for (float* p : {y1, y2, ex_y}) ex.fill_zero(p, 4);  // one float changed: the replay must rewrite it
        ex.replay(graph);
        INFO("replay " << rep);
        const auto r1 = reference(w_gemv, rows, cols, x, cols, 1);
        const auto xb = x_ref_big ? x_ref_big(x, n_big) : x;
        const auto r2 = reference(w_ref, rows, cols, xb, cols, n_big);
        const auto got1 = download(ex, y1, size_t(rows));
        const auto got2 = download(ex, y2, size_t(n_big * rows));
        CHECK(check_output(got1, got1, rows, 1, rows, r1, r1, 1).rel <= 1e-4);
        CHECK(check_output(got2, got2, rows, n_big, rows, r2, r2, n_big).rel <= tol_big);
        const auto init = poison_floats(size_t(n_tok * er));
        const auto want = experts_expected(e_ref, er, ec, m, round_x(xe, experts_round), ids, g, init, er);
        const auto got3 = download(ex, ex_y, size_t(n_tok * er));
        CHECK(check_output(got3, got3, er, n_tok, er, want.want, want.delta, n_tok).rel <= 1e-4);
    }
}

}  // namespace imp::wo::test
