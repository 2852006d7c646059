// The MoE block's ops (imp/blocks/moe.h): the CPU reference kernels of blocks.moe_router and blocks.row_scale,
// their registration (register_moe_ops: CPU + CUDA kernels) and their conformance checks (CUDA vs CPU on fresh
// random inputs).
#include "blocks/moe_ops.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "imp/error.h"

namespace imp::blocks {

namespace moe_detail {

void route_from_logits(const float* logits, int n_expert, int top_k, bool norm_topk, float scale, int32_t* ids,
                       float* weights) {
    float mx = logits[0];
    for (int e = 1; e < n_expert; ++e) mx = std::max(mx, logits[e]);
    std::vector<float> p(static_cast<size_t>(n_expert));
    float sum = 0.f;
    for (int e = 0; e < n_expert; ++e) sum += (p[size_t(e)] = std::exp(logits[e] - mx));
    for (auto& v : p) v /= sum;
    // Iterated argmax: the largest remaining probability, the lower id on ties (the CUDA kernel does the same).
    std::vector<char> taken(static_cast<size_t>(n_expert), 0);
    float picked = 0.f;
    for (int j = 0; j < top_k; ++j) {
        int best = -1;
        for (int e = 0; e < n_expert; ++e)
            if (!taken[size_t(e)] && (best < 0 || p[size_t(e)] > p[size_t(best)])) best = e;
        taken[size_t(best)] = 1;
        ids[j] = best;
        weights[j] = p[size_t(best)];
        picked += p[size_t(best)];
    }
    const float f = (norm_topk ? 1.f / picked : 1.f) * scale;
    for (int j = 0; j < top_k; ++j) weights[j] *= f;
}

void check_router_args(const MoeRouter::Args& a) {
    const std::string op = MoeRouter::name;
    if (a.n_tokens < 0 || a.n_embd <= 0 || a.x_stride < a.n_embd)
        throw Error(op + ": " + std::to_string(a.n_tokens) + " rows of " + std::to_string(a.n_embd) +
                    " do not fit a row stride of " + std::to_string(a.x_stride));
    if (a.n_expert <= 0 || a.top_k <= 0 || a.top_k > a.n_expert)
        throw Error(op + ": top_k " + std::to_string(a.top_k) + " must be in [1, n_expert = " +
                    std::to_string(a.n_expert) + "]");
    if (a.n_tokens > 0 && (!a.x || !a.w || !a.ids || !a.weights || (a.shared_gate_w && !a.shared_gate) ||
                           (a.norm_w && !a.xn)))
        throw Error(op + ": a null pointer among x, w, ids, weights (or shared_gate with shared_gate_w, xn with norm_w)");
}

void router_cpu(Executor& ex, const MoeRouter::Args& a) {
    check_router_args(a);
    const int64_t grain = std::max<int64_t>(1, 65536 / (a.n_embd * a.n_expert + 1));
    ex.parallel_for(a.n_tokens, grain, [&](int64_t t0, int64_t t1) {
        std::vector<float> logits(static_cast<size_t>(a.n_expert));
        for (int64_t t = t0; t < t1; ++t) {
            const float* x = a.x + t * a.x_stride;
            if (a.norm_w) {  // as the executors' rms_norm
                float* xn = a.xn + t * a.n_embd;
                float ss = 0.f;
                for (int64_t c = 0; c < a.n_embd; ++c) ss += x[c] * x[c];
                const float scale = 1.f / std::sqrt(ss / float(a.n_embd) + a.eps);
                for (int64_t c = 0; c < a.n_embd; ++c) xn[c] = x[c] * scale * a.norm_w[c];
                x = xn;
            }
            for (int e = 0; e < a.n_expert; ++e) {
                const float* w = a.w + int64_t(e) * a.n_embd;
                double s = 0;
                for (int64_t c = 0; c < a.n_embd; ++c) s += double(x[c]) * double(w[c]);
                logits[size_t(e)] = float(s);
            }
            route_from_logits(logits.data(), a.n_expert, a.top_k, a.norm_topk, a.scale, a.ids + t * a.top_k,
                              a.weights + t * a.top_k);
            if (a.shared_gate_w) {
                double s = 0;
                for (int64_t c = 0; c < a.n_embd; ++c) s += double(x[c]) * double(a.shared_gate_w[c]);
                a.shared_gate[t] = float(1.0 / (1.0 + std::exp(-s)));
            }
        }
    });
}

void row_scale_cpu(Executor& ex, const RowScale::Args& a) {
    if (a.n_rows < 0 || a.n < 0 || a.stride < a.n)
        throw Error(std::string(RowScale::name) + ": " + std::to_string(a.n_rows) + " rows of " +
                    std::to_string(a.n) + " do not fit a row stride of " + std::to_string(a.stride));
    ex.parallel_for(a.n_rows, std::max<int64_t>(1, 16384 / (a.n + 1)), [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r)
            for (int64_t c = 0; c < a.n; ++c) a.x[r * a.stride + c] *= a.s[r];
    });
}

}  // namespace moe_detail

namespace {

template <class T>
T* put(Executor& ex, const std::vector<T>& v, const char* tag) {
    auto* d = static_cast<T*>(ex.alloc(std::max<size_t>(1, v.size()) * sizeof(T), tag));
    if (!v.empty()) ex.upload(d, v.data(), v.size() * sizeof(T));
    return d;
}
template <class T>
std::vector<T> get(Executor& ex, const T* d, size_t n) {
    std::vector<T> v(n);
    if (n) ex.download(v.data(), d, n * sizeof(T));
    return v;
}

// Router shapes: decode and prefill token counts, small, Qwen3-30B-A3B-like, Qwen3.6-like and the CUDA kernel's
// largest expert counts (8 .. 1024) and widths,
// k = 1 .. n_expert, with and without renormalization and the shared gate. Ids must match exactly except where the
// two experts' reference weights are within 1e-5 (a near tie that the different summation order may break the other way).
std::string check_router(Executor& cpu, Executor& dev, uint64_t seed) {
    std::mt19937_64 rng(seed);
    const int64_t tokens[] = {1, 3, 8, 37};
    const int experts[] = {8, 60, 128, 256, 1024};  // 256: Qwen3.5/3.6; 1024: the CUDA kernel's most
    // n_embd up to 512, or 2048 (Qwen3-30B-A3B: the CUDA GEMV's load batches run more than once per row)
    const int64_t n = tokens[rng() % 4];
    // (or 4100: the wide kernel's register batch of 2048 columns runs three times, the last one partial)
    const int64_t e_embd =
        (rng() % 4 == 0 ? (rng() % 2 ? 2048 : 4100) : 64 * int64_t(1 + rng() % 8)) + (rng() % 2 ? 0 : 3);
    const int ne = experts[rng() % 5];
    const int ks[] = {1, 2, 8, ne};
    const int k = std::min(ne, ks[rng() % 4]);
    const bool norm = rng() % 2, shared = rng() % 2, fused_norm = rng() % 2;
    const float scale = rng() % 2 ? 1.f : 2.5f;
    std::normal_distribution<float> nd(0.f, 1.f);
    const int64_t stride = e_embd + (rng() % 2 ? 0 : 4);
    std::vector<float> x(static_cast<size_t>(n * stride)), w(static_cast<size_t>(ne * e_embd)), sg(static_cast<size_t>(e_embd));
    for (auto& v : x) v = nd(rng);
    for (auto& v : w) v = nd(rng) * 2.f / std::sqrt(float(e_embd));
    for (auto& v : sg) v = nd(rng) / std::sqrt(float(e_embd));
    std::vector<float> nw(static_cast<size_t>(e_embd)), rxn(static_cast<size_t>(n * e_embd));
    for (auto& v : nw) v = 0.5f + std::fabs(nd(rng));
    std::vector<int32_t> rid(static_cast<size_t>(n * k));
    std::vector<float> rw(static_cast<size_t>(n * k)), rg(static_cast<size_t>(n));
    MoeRouter::Args a{x.data(), stride, w.data(), n, e_embd, ne, k, norm, scale, shared ? sg.data() : nullptr,
                      rid.data(), rw.data(), rg.data()};
    if (fused_norm) a.norm_w = nw.data(), a.eps = 1e-6f, a.xn = rxn.data();
    moe_detail::router_cpu(cpu, a);
    MoeRouter::Args d = a;
    d.x = put(dev, x, "moe.check.x");
    d.w = put(dev, w, "moe.check.w");
    d.shared_gate_w = shared ? put(dev, sg, "moe.check.sg") : nullptr;
    d.ids = put(dev, std::vector<int32_t>(size_t(n * k), -7), "moe.check.ids");
    d.weights = put(dev, std::vector<float>(size_t(n * k), -7.f), "moe.check.weights");
    d.shared_gate = put(dev, std::vector<float>(size_t(n), -7.f), "moe.check.gate");
    if (fused_norm) {
        d.norm_w = put(dev, nw, "moe.check.norm");
        d.xn = put(dev, std::vector<float>(rxn.size(), -7.f), "moe.check.xn");
    }
    moe_cuda::router(dev, d);
    const auto gid = get(dev, d.ids, rid.size());
    const auto gw = get(dev, d.weights, rw.size());
    const std::string shape = "n_tokens " + std::to_string(n) + " n_embd " + std::to_string(e_embd) + " n_expert " +
                              std::to_string(ne) + " top_k " + std::to_string(k) + (fused_norm ? " +norm" : "");
    for (size_t i = 0; i < rid.size(); ++i)
        if (gid[i] != rid[i]) {
            // a near tie: the reference weight of the expert the device picked equals the one it skipped
            const size_t t0 = i / size_t(k) * size_t(k);
            float other = -1.f;
            for (size_t j = t0; j < t0 + size_t(k); ++j)
                if (rid[j] == gid[i]) other = rw[j];
            if (other < 0 || std::fabs(other - rw[i]) > 1e-5f * std::max(1.f, std::fabs(rw[i])))
                return shape + ": ids[" + std::to_string(i) + "]: cuda " + std::to_string(gid[i]) + " vs cpu " +
                       std::to_string(rid[i]);
        }
    std::string diff = compare_close(shape + ": weights", rw.data(), gw.data(), rw.size(), 1e-6f, 1e-4f);
    if (diff.empty() && fused_norm) {
        const auto gx = get(dev, d.xn, rxn.size());
        diff = compare_close(shape + ": xn", rxn.data(), gx.data(), rxn.size(), 1e-6f, 1e-5f);
    }
    if (diff.empty() && shared) {
        const auto gg = get(dev, d.shared_gate, rg.size());
        diff = compare_close(shape + ": shared_gate", rg.data(), gg.data(), rg.size(), 1e-6f, 1e-4f);
    }
    return diff;
}

std::string check_row_scale(Executor& cpu, Executor& dev, uint64_t seed) {
    std::mt19937_64 rng(seed);
    const int64_t rows = 1 + int64_t(rng() % 40), n = 1 + int64_t(rng() % 700), stride = n + int64_t(rng() % 5);
    std::normal_distribution<float> nd(0.f, 1.f);
    std::vector<float> x(static_cast<size_t>(rows * stride)), s(static_cast<size_t>(rows));
    for (auto& v : x) v = nd(rng);
    for (auto& v : s) v = nd(rng);
    std::vector<float> ref = x;
    moe_detail::row_scale_cpu(cpu, {ref.data(), stride, s.data(), rows, n});
    float* dx = put(dev, x, "moe.check.x");
    moe_cuda::row_scale(dev, {dx, stride, put(dev, s, "moe.check.s"), rows, n});
    const auto got = get(dev, dx, x.size());
    return compare_close("row_scale " + std::to_string(rows) + "x" + std::to_string(n), ref.data(), got.data(),
                         ref.size(), 0.f, 1e-6f);
}

bool cuda_cc90(const Executor& ex) { return ex.cuda() && ex.cuda()->cc >= 90; }

}  // namespace

void register_moe_ops(Registry& reg) {
    if (reg.find_op(MoeRouter::name, DeviceKind::CPU)) return;  // another plugin registered them
    reg.add_op<MoeRouter>(DeviceKind::CPU, moe_detail::router_cpu);
    reg.add_op<MoeRouter>(DeviceKind::CUDA, moe_cuda::router, cuda_cc90);
    reg.add_op_check(MoeRouter::name, check_router);
    reg.add_op<RowScale>(DeviceKind::CPU, moe_detail::row_scale_cpu);
    reg.add_op<RowScale>(DeviceKind::CUDA, moe_cuda::row_scale, cuda_cc90);
    reg.add_op_check(RowScale::name, check_row_scale);
}

}  // namespace imp::blocks
