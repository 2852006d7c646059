// gdn.conv and gdn.gated_norm CPU references against naive double-precision formulas (HF causal_conv1d with the
// conv state prepended, l2norm, the gates; Qwen3_5MoeRMSNormGated); the conv state carried across calls; the op
// registration.
#include <catch2/catch.hpp>

#include <cmath>
#include <random>

#include "exec/cpu/cpu_executor.h"
#include "gdn_kernels.h"
#include "gdn_test_util.h"
#include "imp/ops.h"
#include "imp/registry.h"

using namespace imp;
using namespace imp::gdn;
using namespace imp::gdn::test;

namespace {

struct ConvData {
    Dims d{2, 4, 16, 8, false};
    int K = 4;
    std::vector<int> lens;
    std::vector<int32_t> qsl{0}, token_seq, slots;
    int64_t T = 0, cd = 0, xs = 0, ss = 0, os = 0;
    std::vector<float> x, w, state, out, A, dt, g, beta;
    bool A_is_log = true;

    ConvData(std::vector<int> l, int k, bool is_log, uint64_t seed) : K(k), lens(std::move(l)), A_is_log(is_log) {
        std::mt19937_64 rng(seed);
        std::uniform_real_distribution<float> u(-3.f, 3.f);
        std::normal_distribution<float> n1(0.f, 1.f);
        for (size_t s = 0; s < lens.size(); ++s) {
            for (int i = 0; i < lens[s]; ++i) token_seq.push_back(int32_t(s));
            qsl.push_back(qsl.back() + lens[s]);
            slots.push_back(int32_t(lens.size() - 1 - s));  // reversed: slot != sequence index
        }
        T = qsl.back();
        cd = d.conv_dim();
        xs = cd + 2 * d.n_v_heads + 1;  // q|k|v, b, a, one spare
        ss = (K - 1) * cd + 3;
        os = cd + 2;
        x.resize(size_t(T * xs));
        for (auto& v : x) v = u(rng);
        for (int64_t t = 0; t < T; ++t)
            for (int j = 0; j < 2 * d.n_v_heads; ++j) x[size_t(t * xs + cd + j)] = 1.5f * n1(rng);
        w.resize(size_t(cd * K));
        for (auto& v : w) v = 0.8f * u(rng) / 3.f;
        state.resize(size_t(int64_t(lens.size()) * ss));
        for (auto& v : state) v = u(rng);
        out.assign(size_t(T * os), 0.f);
        for (int j = 0; j < d.n_v_heads; ++j) {
            const float Av = std::uniform_real_distribution<float>(0.02f, 16.f)(rng);
            A.push_back(is_log ? std::log(Av) : -Av);
            dt.push_back(std::uniform_real_distribution<float>(-7.f, -2.f)(rng));
        }
        g.assign(size_t(T * d.n_v_heads), 0.f);
        beta = g;
    }
    Conv::Args args() {
        Conv::Args a;
        a.dims = d;
        a.seqs = {T, int32_t(lens.size()), qsl.data(), token_seq.data(), slots.data(),
                  *std::max_element(lens.begin(), lens.end())};
        a.kernel = K;
        a.x = x.data(), a.x_stride = xs, a.w = w.data(), a.conv_state = state.data(), a.state_stride = ss;
        a.out = out.data(), a.out_stride = os;
        a.b = x.data() + cd, a.b_stride = xs, a.a = x.data() + cd + d.n_v_heads, a.a_stride = xs;
        a.A = A.data(), a.A_is_log = A_is_log, a.dt_bias = dt.data(), a.g = g.data(), a.beta = beta.data();
        return a;
    }
};

}  // namespace

TEST_CASE("gdn conv: causal conv with the state prepended, SiLU, q/k L2 norm and gates equal double math",
          "[gdn][conv]") {
    CpuExecutor ex(2);
    for (int K : {4, 2, 3}) {
        ConvData c({5, 1, 2, 9}, K, K != 3, 100 + K);
        const std::vector<float> state0 = c.state;
        conv_cpu(ex, c.args());
        std::vector<double> ref(c.out.size(), 0.0), st_ref(c.state.size(), 0.0), g_ref(c.g.size()), b_ref(g_ref.size());
        for (size_t s = 0; s < c.lens.size(); ++s) {
            const int64_t slot = c.slots[s], r0 = c.qsl[s], n = c.lens[s];
            for (int64_t ch = 0; ch < c.cd; ++ch) {
                std::vector<double> in;  // K-1 state inputs, then the rows
                for (int j = 0; j < K - 1; ++j) in.push_back(state0[size_t(slot * c.ss + j * c.cd + ch)]);
                for (int64_t r = 0; r < n; ++r) in.push_back(c.x[size_t((r0 + r) * c.xs + ch)]);
                for (int64_t r = 0; r < n; ++r) {
                    double acc = 0;
                    for (int j = 0; j < K; ++j) acc += double(c.w[size_t(ch * K + j)]) * in[size_t(r + j)];
                    ref[size_t((r0 + r) * c.os + ch)] = acc / (1 + std::exp(-acc));
                }
                for (int j = 0; j < K - 1; ++j) st_ref[size_t(slot * c.ss + j * c.cd + ch)] = in[in.size() - (K - 1) + j];
            }
            for (int64_t t = r0; t < r0 + n; ++t) {
                for (int h = 0; h < 2 * c.d.n_k_heads; ++h) {
                    double n2 = 0;
                    for (int i = 0; i < c.d.head_k_dim; ++i) n2 += std::pow(ref[size_t(t * c.os + h * 16 + i)], 2);
                    for (int i = 0; i < c.d.head_k_dim; ++i) ref[size_t(t * c.os + h * 16 + i)] /= std::sqrt(n2 + 1e-6);
                }
                for (int j = 0; j < c.d.n_v_heads; ++j) {
                    const double bb = c.x[size_t(t * c.xs + c.cd + j)], aa = c.x[size_t(t * c.xs + c.cd + 4 + j)];
                    const double A = c.A_is_log ? -std::exp(double(c.A[size_t(j)])) : c.A[size_t(j)];
                    g_ref[size_t(t * 4 + j)] = A * std::log1p(std::exp(aa + c.dt[size_t(j)]));
                    b_ref[size_t(t * 4 + j)] = 1 / (1 + std::exp(-bb));
                }
            }
        }
        for (size_t i = 0; i < c.state.size(); ++i)
            if (i % size_t(c.ss) >= size_t((K - 1) * c.cd)) st_ref[i] = state0[i];  // padding: untouched
        INFO("K " << K);
        CHECK(rel_err(c.out, ref) < 1e-6);
        CHECK(rel_err(c.state, st_ref) == 0);
        CHECK(rel_err(c.g, g_ref) < 1e-6);
        CHECK(rel_err(c.beta, b_ref) < 1e-6);
    }
}

TEST_CASE("gdn conv: a sequence in pieces (prefill, then single-token updates) equals it whole", "[gdn][conv]") {
    CpuExecutor ex(2);
    ConvData whole({11}, 4, true, 7);
    ConvData parts = whole;
    conv_cpu(ex, whole.args());
    for (auto [r0, n] : {std::pair<int, int>{0, 6}, {6, 1}, {7, 1}, {8, 3}}) {
        Conv::Args a = parts.args();
        std::vector<int32_t> qsl{0, n}, seq(size_t(n), 0);
        a.seqs = {n, 1, qsl.data(), seq.data(), parts.slots.data(), n};
        a.x += r0 * parts.xs, a.b += r0 * parts.xs, a.a += r0 * parts.xs, a.out += r0 * parts.os;
        a.g += r0 * 4, a.beta += r0 * 4;
        conv_cpu(ex, a);
    }
    CHECK(parts.out == whole.out);
    CHECK(parts.state == whole.state);
    CHECK(parts.g == whole.g);
}

TEST_CASE("gdn gated norm: RMSNorm per head times silu(z), in place too", "[gdn][norm]") {
    CpuExecutor ex(2);
    std::mt19937_64 rng(3);
    std::uniform_real_distribution<float> u(-2.f, 2.f);
    const int64_t T = 5, H = 3, hd = 24, xs = H * hd + 1, zs = H * hd + 7;
    std::vector<float> x(size_t(T * xs)), z(size_t(T * zs)), w(static_cast<size_t>(hd)), y(x.size(), 0.f);
    for (auto* v : {&x, &z, &w})
        for (auto& e : *v) e = u(rng);
    GatedNorm::Args a{x.data(), xs, z.data(), zs, w.data(), y.data(), xs, T, int(H), int(hd), 1e-6f};
    gated_norm_cpu(ex, a);
    std::vector<double> ref(y.size(), 0.0);
    for (int64_t t = 0; t < T; ++t)
        for (int64_t h = 0; h < H; ++h) {
            double ms = 0;
            for (int64_t i = 0; i < hd; ++i) ms += std::pow(double(x[size_t(t * xs + h * hd + i)]), 2) / double(hd);
            for (int64_t i = 0; i < hd; ++i) {
                const double zz = z[size_t(t * zs + h * hd + i)];
                ref[size_t(t * xs + h * hd + i)] =
                    x[size_t(t * xs + h * hd + i)] / std::sqrt(ms + 1e-6) * w[size_t(i)] * zz / (1 + std::exp(-zz));
            }
        }
    CHECK(rel_err(y, ref) < 1e-6);
    for (int64_t t = 0; t < T; ++t) ref[size_t(t * xs + H * hd)] = x[size_t(t * xs + H * hd)];  // stride padding
    a.y = x.data();
    gated_norm_cpu(ex, a);
    CHECK(rel_err(x, ref) < 1e-6);
}

TEST_CASE("gdn ops: registered with CPU and CUDA kernels and a conformance check each", "[gdn]") {
    Registry reg;
    register_gdn_ops(reg);
    const auto conv = reg.op<Conv>();
    const auto dec = reg.op<RuleDecode>();
    const auto chk = reg.op<RuleChunked>();
    const auto norm = reg.op<GatedNorm>();
    const auto step = reg.op<DecodeStep>();
    for (DeviceKind d : {DeviceKind::CPU, DeviceKind::CUDA}) {
        CHECK(step.has(d));
        CHECK(conv.has(d));
        CHECK(dec.has(d));
        CHECK(chk.has(d));
        CHECK(norm.has(d));
    }
    for (const char* n : {Conv::name, RuleDecode::name, RuleChunked::name, GatedNorm::name, DecodeStep::name})
        CHECK(reg.find_op_check(n) != nullptr);
    CpuExecutor cpu(1);
    CHECK(reg.check_ops({Conv::name, RuleDecode::name, RuleChunked::name, GatedNorm::name, DecodeStep::name}, cpu)
              .empty());
    CHECK_FALSE(cuda_supports(cpu));  // the CUDA kernels ask for a CUDA executor
}
