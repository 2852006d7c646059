// arch_qwen_moe on the CUDA executor against the CPU executor (label gpu; fails without a GPU):
//  - the router op's conformance check (CUDA vs CPU reference, fresh random shapes: 1..37 tokens, 8..1024 experts,
//    rows up to 4100 wide, k = 1..n_expert, with and without renormalization, the shared gate and the fused norm)
//    for every router shape (cluster of 8 or 16 CTAs, 8 or 16 warps, and the wide router), hand-made ties and
//    non-finite logits;
//  - the tiny Qwen3-MoE fixture (GGUF, fused and per-expert safetensors): prompt + decode logits vs transformers'
//    (rel <= 1e-2: fp32 weights, the device's KV cache and summation order), top-1 equal;
//  - the decode step captured in a CUDA graph replays with other routing at every step: greedy tokens with graphs
//    equal those without, no cudaMalloc in steady-state decode;
//  - several sequences in one step (1, 2, 5, 8 decode rows beside prefill rows of 1..300 tokens, so some experts
//    get no token and others many) equal the CPU engine's;
//  - the synthetic Q4_K_M / Q8_0 model with the CPU's routing forced onto the device (router_probe.h): near ties of
//    its random routers may flip under the device's bf16 prefill GEMMs, each flip is checked against the bound the
//    measured router-input difference allows, and the rest of the layer is compared with the same routing.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdlib>
#include <cmath>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "blocks/moe_ops.h"
#include "exec/cpu/cpu_executor.h"
#include "exec/cuda/cuda_executor.h"
#include "imp/blocks/moe.h"
#include "imp/model.h"
#include "graph_replay_check.h"
#include "moe_fixture.h"
#include "router_probe.h"
#include "runtime/engine.h"
#include "util/op_checks.h"

using namespace imp;
using namespace imp::test;

namespace {

EngineOptions opts(int64_t max_seq_len, int max_seqs, bool graphs) {
    EngineOptions o;
    o.max_seq_len = max_seq_len;
    o.max_seqs = max_seqs;
    o.cuda_graphs = graphs;
    o.prefill_chunk = 512;
    return o;
}

// Rows of logits [rows, V]: max|a - b| / max|a| <= tol, and the same top-1 in every row unless the reference's
// top two are within tol of max|a| (router_probe.h: diff_logits).
void compare_rows(const std::vector<float>& ref, const std::vector<float>& got, size_t V, double tol) {
    REQUIRE(ref.size() == got.size());
    const LogitsDiff d = diff_logits(ref, got, V, tol);
    INFO("max|diff| " << d.max_diff << ", max|ref| " << d.max_ref << "; " << d.first);
    CHECK(d.finite);
    CHECK(d.max_diff <= tol * d.max_ref);
    CHECK(d.top1_differ == 0);
}

// The router and row-scale conformance checks (24 fresh random shapes each) pass on `dev`.
void check_router_ops(CpuExecutor& cpu, CudaExecutor& dev) {
    const uint64_t seed = std::random_device{}();
    for (const char* op : {blocks::MoeRouter::name, blocks::RowScale::name}) {
        const OpCheckResult r = run_op_check(moe_registry(), op, cpu, dev, seed, 24);
        INFO(r.op << ": " << r.message);
        CHECK(r.status == OpCheckResult::Status::Pass);
    }
}

}  // namespace

TEST_CASE("gpu: router and row-scale ops equal the CPU reference (every router cluster and warp count)",
          "[gpu][arch_qwen_moe]") {
    REQUIRE(cuda_device_count() > 0);
    CpuExecutor cpu(2);
    for (const int cluster : {8, 16})
        for (const int warps : {8, 16}) {
            INFO("router_cluster " << cluster << ", router_warps " << warps);
            CudaOptions co;
            co.moe.router_cluster = cluster;
            co.moe.router_warps = warps;
            CudaExecutor dev(0, co);
            // Hopper schedules clusters of 16 (a non-portable size): the fallback to 8 would hide the 16-CTA kernel.
            CHECK(blocks::moe_cuda::router_cluster_in_use(dev, 1) == cluster);
            CHECK(blocks::moe_cuda::router_cluster_in_use(dev, 37) == cluster);
            CHECK_FALSE(blocks::moe_cuda::router_wide_in_use(dev, 1, 2048, 256, true));
            check_router_ops(cpu, dev);
        }
}

TEST_CASE("gpu: the wide router (router_grid = wide) equals the CPU reference, call after call",
          "[gpu][arch_qwen_moe]") {
    REQUIRE(cuda_device_count() > 0);
    CpuExecutor cpu(2);
    CudaOptions co;
    co.moe.router_wide = true;
    CudaExecutor dev(0, co);
    // decode-sized, float4-aligned calls run it (the conformance shapes' 1, 3 and 8 tokens; 37 tokens and the
    // unaligned widths take the cluster kernel); a counter left unreset by one call fails every later one.
    CHECK(blocks::moe_cuda::router_wide_in_use(dev, 1, 2048, 256, true));
    CHECK(blocks::moe_cuda::router_wide_in_use(dev, 8, 4100, 1024, true));
    CHECK_FALSE(blocks::moe_cuda::router_wide_in_use(dev, 9, 2048, 256, true));
    CHECK_FALSE(blocks::moe_cuda::router_wide_in_use(dev, 1, 2051, 256, true));
    check_router_ops(cpu, dev);
}

TEST_CASE("gpu: the wide router turned on after the executor was made runs, and equals the CPU reference",
          "[gpu][arch_qwen_moe]") {
    // moe_options() says a change takes effect for later calls: the wide router's scratch was allocated only when
    // the option was set at construction, so turning it on later silently kept the cluster kernel.
    REQUIRE(cuda_device_count() > 0);
    CpuExecutor cpu(2);
    CudaExecutor dev(0, CudaOptions{});
    CHECK_FALSE(blocks::moe_cuda::router_wide_in_use(dev, 1, 2048, 256, true));
    dev.moe_options().router_wide = true;
    CHECK(blocks::moe_cuda::router_wide_in_use(dev, 1, 2048, 256, true));
    check_router_ops(cpu, dev);
}

TEST_CASE("gpu: router ties, all-equal and non-finite logits pick the same ids as the CPU", "[gpu][arch_qwen_moe]") {
    REQUIRE(cuda_device_count() > 0);
    CpuExecutor cpu(1);
    CudaOptions co;
    const int shape = GENERATE(8, 16, 0);  // the default shape, both at 16, and (0) the wide router
    co.moe.router_cluster = co.moe.router_warps = shape ? shape : 8;
    co.moe.router_wide = shape == 0;
    INFO("router_cluster and router_warps " << co.moe.router_cluster << ", wide " << co.moe.router_wide);
    CudaExecutor dev(0, co);
    CHECK(blocks::moe_cuda::router_wide_in_use(dev, 3, 4, 128, false) == co.moe.router_wide);
    auto op = moe_registry().op<blocks::MoeRouter>();
    for (int ne : {8, 128}) {
        for (int k : {1, 2, 8, ne}) {
            if (k > ne) continue;
            INFO("n_expert " << ne << " top_k " << k);
            // token 0: all-equal logits; token 1: pairs of equal logits; token 2: distinct. x = e_t picks column t.
            // Token 3: NaN logits, token 4: +inf logits (inf - inf in the softmax): every probability is NaN, and
            // both pick the lowest ids with NaN weights (the cluster kernel once wrote past its shared memory).
            const int64_t emb = 4, n = 5;
            std::vector<float> x(static_cast<size_t>(n * emb), 0.f), w(size_t(ne) * emb, 0.f);
            for (int64_t t = 0; t < 3; ++t) x[size_t(t * emb + t)] = 1.f;
            x[size_t(3 * emb)] = std::nanf("");
            x[size_t(4 * emb)] = INFINITY;
            for (int e = 0; e < ne; ++e) {
                w[size_t(e) * emb + 0] = 0.5f;
                w[size_t(e) * emb + 1] = float((e * 7) % 5);
                w[size_t(e) * emb + 2] = float(e % 11) * 0.37f - float(e) * 0.01f;
            }
            std::vector<int32_t> ci(static_cast<size_t>(n * k)), gi(ci.size());
            std::vector<float> cw(ci.size()), gw(ci.size());
            op(cpu, {x.data(), emb, w.data(), n, emb, ne, k, true, 1.f, nullptr, ci.data(), cw.data(), nullptr});
            auto* dx = static_cast<float*>(dev.alloc(x.size() * 4, "t.x"));
            auto* dw = static_cast<float*>(dev.alloc(w.size() * 4, "t.w"));
            auto* di = static_cast<int32_t*>(dev.alloc(ci.size() * 4, "t.ids"));
            auto* dwt = static_cast<float*>(dev.alloc(ci.size() * 4, "t.wts"));
            dev.upload(dx, x.data(), x.size() * 4);
            dev.upload(dw, w.data(), w.size() * 4);
            op(dev, {dx, emb, dw, n, emb, ne, k, true, 1.f, nullptr, di, dwt, nullptr});
            dev.download(gi.data(), di, gi.size() * 4);
            dev.download(gw.data(), dwt, gw.size() * 4);
            CHECK(gi == ci);
            for (int j = 0; j < k; ++j) CHECK(ci[size_t(3 * k + j)] == j);
            for (size_t i = 0; i < cw.size(); ++i) {
                INFO("weight " << i);
                if (i >= size_t(3 * k)) {
                    CHECK(std::isnan(cw[i]));
                    CHECK(std::isnan(gw[i]));
                } else {
                    CHECK(gw[i] == Approx(cw[i]).epsilon(1e-5));
                }
            }
        }
    }
}

TEST_CASE("gpu: qwen3moe tiny logits match transformers, prompt and decode", "[gpu][arch_qwen_moe]") {
    REQUIRE(cuda_device_count() > 0);
    const Reference ref = load_reference("qwen3moe_tiny");
    const size_t V = size_t(ref.n_vocab), n1 = ref.tokens.size(), n2 = ref.continuation.size();
    CudaOptions co;
    co.moe.router_wide = GENERATE(false, true);  // the wide router inside the captured decode graph too
    INFO("router_grid " << (co.moe.router_wide ? "wide" : "cluster"));
    for (const std::string name : {"qwen3moe_tiny.gguf", "qwen3moe_tiny_fused", "qwen3moe_tiny"}) {
        INFO(name);
        auto src = open_model(kFixtures + "/" + name);
        CudaExecutor dev(0, co);
        Engine eng(*src, moe_registry(), dev, opts(64, 1, true));
        std::vector<float> got(n1 * V), last(V);
        eng.forward(ref.tokens.data(), int64_t(n1), got.data(), true);
        for (size_t i = 0; i < n2; ++i) {  // decode steps (captured, then replayed with other routing)
            eng.forward(&ref.continuation[i], 1, last.data(), false);
            got.insert(got.end(), last.begin(), last.end());
        }
        CHECK(eng.graphs_active());
        compare_rows(ref.logits, got, V, 1e-2);
    }
}

TEST_CASE("gpu: graph replay with new routing every step equals no graphs: no cudaMalloc in decode",
          "[gpu][arch_qwen_moe]") {
    REQUIRE(cuda_device_count() > 0);
    auto src = open_model(kFixtures + "/qwen3moe_tiny.gguf");
    CudaOptions co;
    co.moe.router_wide = GENERATE(false, true);
    INFO("router_grid " << (co.moe.router_wide ? "wide" : "cluster"));
    CudaExecutor dev_a(0, co), dev_b(0, co);  // one executor per engine (each plans its own workspace)
    Engine with(*src, moe_registry(), dev_a, opts(128, 1, true));
    Engine without(*src, moe_registry(), dev_b, opts(128, 1, false));
    for (const std::vector<int32_t>& prompt : {std::vector<int32_t>{1, 17, 200}, std::vector<int32_t>{5, 6, 7, 300, 2}})
        compare_graphs_eager(with, without, prompt, 24);
}

TEST_CASE("gpu: several sequences (decode rows beside prefill of 1..300 tokens) equal the CPU",
          "[gpu][arch_qwen_moe]") {
    REQUIRE(cuda_device_count() > 0);
    auto src = open_model(kFixtures + "/qwen3moe_tiny.gguf");
    for (int n_decode : {1, 2, 5, 8}) {
        for (int prefill : {0, 1, 37, 300}) {
            INFO(n_decode << " decode rows, prefill of " << prefill);
            CpuExecutor cpu(2);
            Engine* e[2];
            CudaExecutor dev(0);  // fresh per engine: its memory is freed with it
            Engine ec(*src, moe_registry(), cpu, opts(512, 9, false)), eg(*src, moe_registry(), dev, opts(512, 9, true));
            e[0] = &ec, e[1] = &eg;
            std::vector<float> out[2];
            for (int g = 0; g < 2; ++g) {
                std::vector<SeqId> ids;
                std::vector<std::vector<int32_t>> toks;
                for (int s = 0; s < n_decode; ++s) {  // give each decode sequence a short history first
                    ids.push_back(e[g]->add_sequence());
                    toks.push_back({int32_t(3 + s), int32_t(40 + 13 * s), int32_t(7 * s + 1)});
                    SeqWork w{ids.back(), toks.back().data(), 3};
                    e[g]->step(std::span<const SeqWork>(&w, 1), nullptr);
                }
                std::vector<SeqWork> work;
                std::vector<int32_t> next(static_cast<size_t>(n_decode));
                for (int s = 0; s < n_decode; ++s) {
                    next[size_t(s)] = int32_t((s * 53 + 11) % 320);
                    work.push_back({ids[size_t(s)], &next[size_t(s)], 1});
                }
                std::vector<int32_t> pre(static_cast<size_t>(prefill));
                for (int i = 0; i < prefill; ++i) pre[size_t(i)] = int32_t((i * 97 + 5) % 320);
                if (prefill > 0) work.push_back({e[g]->add_sequence(), pre.data(), int64_t(prefill)});
                out[g].resize(work.size() * size_t(e[g]->desc().n_vocab));
                e[g]->step(work, out[g].data());
            }
            compare_rows(out[0], out[1], size_t(ec.desc().n_vocab), 1e-2);
        }
    }
}

// The synthetic routers (rows uniform in [-0.04, 0.04]) leave some tokens near-tied: at a prompt of 100 tokens the
// CPU's smallest logit gaps between the last expert picked and the best left out are 7.5e-4 .. 1.5e-3 (median 0.047).
// The device's prefill GEMMs run in bf16 (unit roundoff 2^-9), so its router input differs from the CPU's by ~1e-3
// relative and may break such a tie the other way; one flipped token moves the logits by ~5 % of their maximum (the
// CPU test "forced routing: ..." reproduces it with 4e-3 noise). So the comparison forces the CPU's routing onto the
// device (router_probe.h, graphs off) and checks: the router input within 1e-2 of max|xn| (5x the bf16 roundoff of
// one GEMM whose output the hidden state carries), every flip within the gap the measured input difference can
// close (Hoelder bound), the logits within 2e-2 of max|ref| and the same top-1 unless the CPU's top-2 margin is
// below that. Then the decode steps through a CUDA graph, with the device's own routing, equal the same engine
// without graphs (same kernels: 1e-4). With [plugin.quant_ggml] experts_swiglu + experts_fused_sum off and on, and
// on with experts_gemm_tokens = 2 (prompts of 2+ tokens take the grouped expert GEMM, which rounds its operands to
// bf16 as the dense prefill GEMMs do: the same bounds).
TEST_CASE("gpu: synthetic tiny-qwen3moe (Q4_K_M, Q8_0 experts, stacked gate|up) equals the CPU", "[gpu][arch_qwen_moe]") {
    REQUIRE(cuda_device_count() > 0);
    constexpr double kInputTol = 1e-2, kLogitTol = 2e-2;
    const std::vector<int32_t> steps{3, 20, 37, 54};
    const auto prompt = [](int n) {
        std::vector<int32_t> toks(static_cast<size_t>(n));
        for (int i = 0; i < n; ++i) toks[size_t(i)] = int32_t((i * 131 + n) % 500);
        return toks;
    };
    for (const std::string quant : {"q4_k_m", "q8_0"}) {
        INFO(quant);
        const std::string path = std::string(IMP_BINARY_DIR) + "/gpu-moe-test.tiny-qwen3moe." + quant + ".gguf";
        const std::string cmd = std::string(IMP_BINARY_DIR) + "/bin/synth-gguf --shape tiny-qwen3moe --quant " +
                                quant + " --out " + path + " > /dev/null";
        REQUIRE(std::system(cmd.c_str()) == 0);
        auto src = open_model(path);
        CpuExecutor cpu(4);
        Engine ec(*src, probe_registry(), cpu, opts(256, 1, false));
        const size_t V = size_t(ec.desc().n_vocab);
        // [plugin.quant_ggml] experts_swiglu (the down projection applies SwiGLU while staging its input) and
        // experts_fused_sum (the decode GEMV writes the weighted sum over the slots): both off, both on; then the
        // expert GEMM from 2 tokens on (experts_gemm_tokens)
        for (const int mode : {0, 1, 2}) {
            const bool fused = mode > 0;
            INFO("experts_swiglu and experts_fused_sum " << fused << ", experts_gemm_tokens " << (mode == 2 ? 2 : 0));
            probe_registry().configure("quant_ggml", "experts_swiglu", fused);
            probe_registry().configure("quant_ggml", "experts_fused_sum", fused);
            probe_registry().configure("quant_ggml", "experts_gemm_tokens", int64_t(mode == 2 ? 2 : 0));
            CudaExecutor dev(0), dev_graph(0);
            Engine eg(*src, probe_registry(), dev, opts(256, 1, false));
            Engine graph(*src, probe_registry(), dev_graph, opts(256, 1, true));
            for (int n : {1, 2, 5, 8, 100}) {  // prompt sizes: per-pair path (<= 16 pairs), grouped path above
                INFO("prompt of " << n);
                const std::vector<int32_t> toks = prompt(n);
                std::vector<float> a, b;
                run_forced(ec, eg, toks, steps, a, b);
                const RouterProbe& p = router_probe();
                INFO("router: " << p.flips << " of " << p.decisions << " tokens flipped (worst CPU gap "
                                << p.worst_flip_gap << "), max|d xn| " << p.xn_diff << " of " << p.xn_ref << "; "
                                << p.error);
                CHECK(p.error.empty());
                CHECK(p.xn_diff <= kInputTol * p.xn_ref);
                const LogitsDiff d = diff_logits(a, b, V, kLogitTol);
                INFO("logits: max|diff| " << d.max_diff << ", max|ref| " << d.max_ref << "; " << d.first);
                CHECK(d.finite);
                CHECK(d.max_diff <= kLogitTol * d.max_ref);
                CHECK(d.top1_differ == 0);

                // the device's own routing, without and with graphs
                const LogitsDiff gd = diff_logits(run_prompt(eg, toks, steps), run_prompt(graph, toks, steps), V, 1e-4);
                INFO("graphs: max|diff| " << gd.max_diff << ", max|ref| " << gd.max_ref << "; " << gd.first);
                CHECK(gd.finite);
                CHECK(gd.max_diff <= 1e-4 * gd.max_ref);
                CHECK(gd.top1_differ == 0);
            }
            CHECK(graph.graphs_active());
            CHECK_FALSE(eg.graphs_active());
        }
        probe_registry().configure("quant_ggml", "experts_swiglu", false);
        probe_registry().configure("quant_ggml", "experts_fused_sum", false);
        probe_registry().configure("quant_ggml", "experts_gemm_tokens", int64_t(64));
    }
}
