// gdn_ops_bench: GPU timings of the GDN ops at one layer of a model shape (not a test). Default: Qwen3.6-35B-A3B
// (Hk 16, Hv 32, dk = dv = 128), one sequence of 4096 tokens for the prefill ops, batch 1 for the decode ops.
// Each op is captured in a CUDA graph of --reps launches; the median over 15 replays, divided by reps, is printed.
// rule_chunked runs in each variant (RuleArgs::variant: v0 auto, v1 fused, v2 split 64 columns, v3 split 32, v4 split 32
// with the prep kernel on mma.sync, v5 / v6 both split kernels on mma.sync with 32 / 64 columns); conv and gated_norm in their variants (v0 auto:
// the 16-byte warp kernels where they apply, v1 the block kernels); at batch sizes, the decode rule alone, with the
// gated norm, and gdn.decode_step (conv + rule + norm in one kernel) with 1, 2 and 4 CTAs per v-head.
// Usage: gdn_ops_bench [--tokens N] [--hk N] [--hv N] [--batch N] [--reps N]
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "exec/cuda/cuda_executor.h"
#include "gdn_kernels.h"

using namespace imp;
using namespace imp::gdn;

namespace {

float* dev_random(Executor& ex, size_t n, float lo, float hi, std::mt19937_64& rng) {
    std::vector<float> v(n);
    std::uniform_real_distribution<float> u(lo, hi);
    for (auto& x : v) x = u(rng);
    auto* p = static_cast<float*>(ex.alloc(n * sizeof(float), "gdn.bench"));
    ex.upload(p, v.data(), n * sizeof(float));
    return p;
}
int32_t* dev_ints(Executor& ex, const std::vector<int32_t>& v) {
    auto* p = static_cast<int32_t*>(ex.alloc(v.size() * sizeof(int32_t), "gdn.bench"));
    ex.upload(p, v.data(), v.size() * sizeof(int32_t));
    return p;
}

// Median milliseconds of one call of fn: a graph of `reps` calls replayed 15 times.
double time_ms(CudaExecutor& ex, int reps, const std::function<void()>& fn) {
    fn();  // warm-up (and any one-time setup) outside the capture
    ex.synchronize();
    ex.capture_begin();
    for (int i = 0; i < reps; ++i) fn();
    const int g = ex.capture_end();
    ex.replay(g);
    ex.synchronize();
    std::vector<double> ms;
    for (int i = 0; i < 15; ++i) {
        const auto t0 = std::chrono::steady_clock::now();
        ex.replay(g);
        ex.synchronize();
        ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / reps);
    }
    std::sort(ms.begin(), ms.end());
    return ms[ms.size() / 2];
}

struct Step {
    Seqs seqs;
    float *qkv, *o, *g, *beta, *state, *conv_state, *x;
};

Step make_step(CudaExecutor& ex, const Dims& d, int n_seqs, int len, std::mt19937_64& rng) {
    std::vector<int32_t> qsl{0}, seq, slots;
    for (int s = 0; s < n_seqs; ++s) {
        for (int i = 0; i < len; ++i) seq.push_back(s);
        qsl.push_back(qsl.back() + len);
        slots.push_back(s);
    }
    const int64_t T = int64_t(n_seqs) * len;
    Step st;
    st.seqs = {T, n_seqs, dev_ints(ex, qsl), dev_ints(ex, seq), dev_ints(ex, slots), len};
    st.x = dev_random(ex, size_t(T * (d.conv_dim() + 2 * d.n_v_heads)), -2.f, 2.f, rng);
    st.qkv = static_cast<float*>(ex.alloc(size_t(T * d.conv_dim()) * 4, "gdn.bench"));
    st.o = static_cast<float*>(ex.alloc(size_t(T * d.value_dim()) * 4, "gdn.bench"));
    st.g = static_cast<float*>(ex.alloc(size_t(T * d.n_v_heads) * 4, "gdn.bench"));
    st.beta = static_cast<float*>(ex.alloc(size_t(T * d.n_v_heads) * 4, "gdn.bench"));
    st.state = dev_random(ex, size_t(n_seqs) * d.value_dim() * d.head_k_dim, -0.5f, 0.5f, rng);
    st.conv_state = dev_random(ex, size_t(n_seqs) * 3 * d.conv_dim(), -1.f, 1.f, rng);
    return st;
}

}  // namespace

int main(int argc, char** argv) {
    int tokens = 4096, hk = 16, hv = 32, batch = 1, reps = 20;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string k = argv[i];
        const int v = std::atoi(argv[i + 1]);
        if (k == "--tokens") tokens = v;
        else if (k == "--hk") hk = v;
        else if (k == "--hv") hv = v;
        else if (k == "--batch") batch = v;
        else if (k == "--reps") reps = v;
        else {
            std::fprintf(stderr, "gdn_ops_bench: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    try {
        CudaExecutor ex(0);
        std::mt19937_64 rng(1);
        const Dims d{hk, hv, 128, 128, false};
        const float* w = dev_random(ex, size_t(d.conv_dim() * 4), -0.5f, 0.5f, rng);
        const float* A = dev_random(ex, size_t(hv), 0.f, 2.7f, rng);
        const float* dt = dev_random(ex, size_t(hv), -7.f, -2.f, rng);
        const float* nw = dev_random(ex, 128, 0.5f, 1.5f, rng);
        std::printf("GDN ops, Hk %d Hv %d dk = dv = 128 (one layer), CUDA graph of %d calls, median of 15\n", hk, hv,
                    reps);
        for (auto [n_seqs, len] : {std::pair<int, int>{1, tokens}, {batch, 1}}) {
            Step st = make_step(ex, d, n_seqs, len, rng);
            const int64_t xs = d.conv_dim() + 2 * d.n_v_heads;
            Conv::Args ca;
            ca.dims = d, ca.seqs = st.seqs, ca.x = st.x, ca.x_stride = xs, ca.w = w, ca.conv_state = st.conv_state;
            ca.state_stride = 3 * d.conv_dim(), ca.out = st.qkv, ca.out_stride = d.conv_dim();
            ca.b = st.x + d.conv_dim(), ca.b_stride = xs, ca.a = st.x + d.conv_dim() + hv, ca.a_stride = xs;
            ca.A = A, ca.dt_bias = dt, ca.g = st.g, ca.beta = st.beta;
            conv_cuda(ex, ca);  // normalized q, k and real gates for the rule
            RuleArgs ra;
            ra.dims = d, ra.seqs = st.seqs, ra.qkv = st.qkv, ra.qkv_stride = d.conv_dim(), ra.g = st.g;
            ra.beta = st.beta, ra.state = st.state, ra.state_stride = d.value_dim() * 128, ra.o = st.o;
            ra.o_stride = d.value_dim(), ra.scale = 1.f / std::sqrt(128.f);
            GatedNorm::Args na{st.o, d.value_dim(), st.x, xs, nw, st.o, d.value_dim(), st.seqs.n_tokens, hv, 128, 1e-6f};
            const std::string shape = std::to_string(n_seqs) + " x " + std::to_string(len);
            for (int v : {0, 1}) {  // Conv::Args::variant: 0 auto (the 16-byte row-window kernel on prefill), 1 block
                Conv::Args cv = ca;
                cv.variant = v;
                const std::string name = "conv v" + std::to_string(v);
                std::printf("%-16s %-12s %9.4f ms\n", name.c_str(), shape.c_str(),
                            time_ms(ex, reps, [&] { conv_cuda(ex, cv); }));
            }
            if (len == 1) {
                std::printf("%-16s %-12s %9.4f ms\n", "rule_decode", shape.c_str(),
                            time_ms(ex, reps, [&] { rule_decode_cuda(ex, ra); }));
                RuleArgs rn = ra;  // with the gated norm in the kernel (z: the x rows, as in the gated-norm row)
                rn.norm_w = nw, rn.z = st.x, rn.z_stride = xs;
                std::printf("%-16s %-12s %9.4f ms\n", "decode+norm", shape.c_str(),
                            time_ms(ex, reps, [&] { rule_decode_cuda(ex, rn); }));
                // gdn.decode_step: conv + rule + norm in one kernel, against conv v0 + decode+norm above.
                for (int ctas : {1, 2, 4}) {
                    if (ctas * hv / hk > 8) continue;
                    RuleArgs rs = rn;
                    rs.decode_ctas = ctas;
                    const std::string name = "decode_step c" + std::to_string(ctas);
                    std::printf("%-16s %-12s %9.4f ms\n", name.c_str(), shape.c_str(),
                                time_ms(ex, reps, [&] { decode_step_cuda(ex, {ca, rs}); }));
                }
            }
            RuleArgs rw = ra;  // the split path's workspace
            rw.workspace_bytes = rule_chunked_workspace_bytes(d, st.seqs.n_tokens);
            rw.workspace = ex.alloc(rw.workspace_bytes, "gdn.bench.workspace");
            for (int v : {0, 1, 2, 3, 4, 5, 6}) {
                rw.variant = v;
                const std::string name = "rule_chunked v" + std::to_string(v);
                std::printf("%-16s %-12s %9.4f ms\n", name.c_str(), shape.c_str(),
                            time_ms(ex, reps, [&] { rule_chunked_cuda(ex, rw); }));
                if (v < 2 || len == 1) continue;
                for (int ph : {1, 2}) {  // each kernel of the split path alone (state: on the records just written)
                    const std::string pn = "  v" + std::to_string(v) + (ph == 1 ? " prep" : " state");
                    std::printf("%-16s %-12s %9.4f ms\n", pn.c_str(), shape.c_str(),
                                time_ms(ex, reps, [&] { rule_chunked_cuda_phases(ex, rw, ph); }));
                }
            }
            for (int v : {0, 1}) {  // GatedNorm::Args::variant: 0 auto (one warp per (row, head)), 1 block
                GatedNorm::Args nv = na;
                nv.variant = v;
                const std::string name = "gated_norm v" + std::to_string(v);
                std::printf("%-16s %-12s %9.4f ms\n", name.c_str(), shape.c_str(),
                            time_ms(ex, reps, [&] { gated_norm_cuda(ex, nv); }));
            }
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "gdn_ops_bench: %s\n", e.what());
        return 1;
    }
    return 0;
}
