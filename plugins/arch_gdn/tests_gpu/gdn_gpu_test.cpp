// arch_gdn on the CUDA executor against the CPU executor and transformers (label gpu; fails without a GPU):
//  - the tiny Qwen3.5-MoE and Qwen3-Next fixtures (safetensors and GGUF): prompt and decode logits vs transformers';
//  - a 300-token prompt in one chunk, in chunks of 7 and token by token, each against the CPU engine;
//  - the hybrid decode step captured in a CUDA graph replays (recurrent state and KV advancing every step): greedy
//    tokens equal those without graphs, no cudaMalloc in steady-state decode;
//  - several sequences in one step (decode rows beside prefill rows, each its own state slot) equal the CPU;
//  - the synthetic tiny-qwen35moe Q4_K_M GGUF and tiny-qwen3.6-nvfp4 MIXED_PRECISION folder equal the CPU.
// Tolerances (max|diff| <= tol * max|ref| over the logits, and the same top-1 unless the reference's top two are
// within 1e-3 * max|ref|): 2e-2 where the chunked delta rule runs (its CUDA kernel multiplies bf16 operands on the
// tensor cores: unit roundoff 2^-8 ~ 4e-3 per product, through 3 GDN layers, fp32 weights and KV cache otherwise);
// 1e-4 between graph replay and eager launches of the same kernels; 5e-2 for the quantized synthetic models (random
// weights: flat logits, the CPU and CUDA block kernels sum in other orders).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "exec/cpu/cpu_executor.h"
#include "exec/cuda/cuda_executor.h"
#include "gdn_fixture.h"
#include "imp/model.h"
#include "runtime/engine.h"

using namespace imp;
using namespace imp::test;

namespace {

constexpr double kChunkedTol = 2e-2;

EngineOptions opts(int64_t max_seq_len, int max_seqs, bool graphs, int64_t chunk = 512) {
    EngineOptions o;
    o.max_seq_len = max_seq_len;
    o.max_seqs = max_seqs;
    o.cuda_graphs = graphs;
    o.prefill_chunk = chunk;
    return o;
}

void compare_rows(const std::vector<float>& ref, const std::vector<float>& got, size_t V, double tol) {
    REQUIRE(ref.size() == got.size());
    double md = 0, mr = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
        REQUIRE(std::isfinite(got[i]));
        md = std::max(md, double(std::fabs(ref[i] - got[i])));
        mr = std::max(mr, double(std::fabs(ref[i])));
    }
    INFO("max|diff| " << md << ", max|ref| " << mr);
    CHECK(md <= tol * mr);
    for (size_t r = 0; r < ref.size() / V; ++r) {
        const auto a = ref.begin() + std::ptrdiff_t(r * V), b = got.begin() + std::ptrdiff_t(r * V);
        const auto ia = std::max_element(a, a + std::ptrdiff_t(V)) - a;
        const auto ib = std::max_element(b, b + std::ptrdiff_t(V)) - b;
        if (ia != ib) {
            INFO("row " << r << ": top-1 " << ia << " (ref " << a[ia] << ") vs " << ib << " (ref " << a[ib] << ")");
            CHECK(double(a[ia] - a[ib]) <= 1e-3 * mr);
        }
    }
}

Registry& full_gdn_registry() { return registry_with({"arch_gdn", "quant_ggml", "quant_nvfp4", "quant_fp8"}); }

}  // namespace

TEST_CASE("gpu: tiny hybrids match transformers, prompt and decode (graphs)", "[gpu][arch_gdn]") {
    REQUIRE(cuda_device_count() > 0);
    for (const auto& name : gdn_fixture_files()) {
        INFO(name);
        const Reference ref = gdn_reference(name);
        const size_t V = size_t(ref.n_vocab), n1 = ref.tokens.size(), n2 = ref.continuation.size();
        auto src = open_model(kGdnFixtures + "/" + name);
        CudaExecutor dev(0);
        Engine eng(*src, gdn_registry(), dev, opts(64, 1, true));
        std::vector<float> got(n1 * V), last(V);
        eng.forward(ref.tokens.data(), int64_t(n1), got.data(), true);
        for (size_t i = 0; i < n2; ++i) {  // decode steps: captured, then replayed
            eng.forward(&ref.continuation[i], 1, last.data(), false);
            got.insert(got.end(), last.begin(), last.end());
        }
        CHECK(eng.graphs_active());
        compare_rows(ref.logits, got, V, kChunkedTol);
    }
}

TEST_CASE("gpu: 300-token prompt in one chunk, chunks of 7 and token by token equals the CPU", "[gpu][arch_gdn]") {
    REQUIRE(cuda_device_count() > 0);
    for (const std::string name : {"qwen35moe_tiny", "qwen3next_tiny.gguf"}) {
        INFO(name);
        auto src = open_model(kGdnFixtures + "/" + name);
        std::vector<int32_t> prompt(300);
        for (size_t i = 0; i < prompt.size(); ++i) prompt[i] = int32_t((i * 131 + 7) % 320);
        CpuExecutor cpu(4);
        Engine ec(*src, gdn_registry(), cpu, opts(320, 1, false));
        const size_t V = size_t(ec.desc().n_vocab);
        std::vector<float> ref(prompt.size() * V);
        ec.forward(prompt.data(), int64_t(prompt.size()), ref.data(), true);
        for (const int64_t chunk : {512, 7, 1}) {
            INFO("prefill chunk " << chunk);
            CudaExecutor dev(0);
            Engine eg(*src, gdn_registry(), dev, opts(320, 1, true, chunk));
            std::vector<float> got(prompt.size() * V);
            if (chunk > 1) {
                eg.forward(prompt.data(), int64_t(prompt.size()), got.data(), true);
            } else {
                for (size_t i = 0; i < prompt.size(); ++i) eg.forward(&prompt[i], 1, got.data() + i * V, false);
            }
            compare_rows(ref, got, V, kChunkedTol);
        }
    }
}

TEST_CASE("gpu: hybrid graph replay equals no graphs, no cudaMalloc in decode", "[gpu][arch_gdn]") {
    REQUIRE(cuda_device_count() > 0);
    for (const std::string name : {"qwen35moe_tiny.gguf", "qwen3next_tiny"}) {
        INFO(name);
        auto src = open_model(kGdnFixtures + "/" + name);
        CudaExecutor dev_a(0), dev_b(0);  // one executor per engine (each plans its own workspace)
        Engine with(*src, gdn_registry(), dev_a, opts(128, 1, true));
        Engine without(*src, gdn_registry(), dev_b, opts(128, 1, false));
        for (const std::vector<int32_t>& prompt :
             {std::vector<int32_t>{1, 17, 200}, std::vector<int32_t>{5, 6, 7, 300, 2, 99, 11, 40, 41}}) {
            std::vector<int32_t> toks[2];
            std::vector<float> lg[2];
            Engine* engines[2] = {&with, &without};
            for (int g = 0; g < 2; ++g) {
                Engine& e = *engines[g];
                e.reset();
                std::vector<float> last(static_cast<size_t>(e.desc().n_vocab));
                e.forward(prompt.data(), int64_t(prompt.size()), last.data());
                const auto before = cuda_alloc_stats();
                for (int i = 0; i < 24; ++i) {
                    const int32_t t = e.sample(SamplingParams{}, uint64_t(i), nullptr, 0);
                    toks[g].push_back(t);
                    e.forward(&t, 1, last.data());
                    lg[g].insert(lg[g].end(), last.begin(), last.end());
                }
                const auto after = cuda_alloc_stats();
                CHECK(after.mallocs == before.mallocs);
                CHECK(after.frees == before.frees);
            }
            CHECK(with.graphs_active());
            CHECK_FALSE(without.graphs_active());
            CHECK(toks[0] == toks[1]);
            compare_rows(lg[1], lg[0], size_t(with.desc().n_vocab), 1e-4);
        }
    }
}

TEST_CASE("gpu: several hybrid sequences (decode rows beside prefill rows) equal the CPU", "[gpu][arch_gdn]") {
    REQUIRE(cuda_device_count() > 0);
    auto src = open_model(kGdnFixtures + "/qwen35moe_tiny.gguf");
    for (int n_decode : {1, 2, 5, 8}) {
        for (int prefill : {0, 1, 37, 300}) {
            INFO(n_decode << " decode rows, prefill of " << prefill);
            CpuExecutor cpu(2);
            CudaExecutor dev(0);
            Engine ec(*src, gdn_registry(), cpu, opts(512, 9, false)), eg(*src, gdn_registry(), dev, opts(512, 9, true));
            Engine* e[2] = {&ec, &eg};
            std::vector<float> out[2];
            for (int g = 0; g < 2; ++g) {
                std::vector<SeqId> ids;
                std::vector<std::vector<int32_t>> toks;
                for (int s = 0; s < n_decode; ++s) {  // each decode sequence gets a short history (its state) first
                    ids.push_back(e[g]->add_sequence());
                    toks.push_back({int32_t(3 + s), int32_t(40 + 13 * s), int32_t(7 * s + 1), int32_t(100 + s)});
                    SeqWork w{ids.back(), toks.back().data(), 4};
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
            compare_rows(out[0], out[1], size_t(ec.desc().n_vocab), kChunkedTol);
        }
    }
}

TEST_CASE("gpu: synthetic tiny-qwen35moe (Q4_K_M) and tiny-qwen3.6-nvfp4 (MIXED_PRECISION) equal the CPU",
          "[gpu][arch_gdn]") {
    REQUIRE(cuda_device_count() > 0);
    const std::string bin = std::string(IMP_BINARY_DIR) + "/bin/";
    const std::string gguf = std::string(IMP_BINARY_DIR) + "/gpu-gdn-test.tiny-qwen35moe.q4_k_m.gguf";
    const std::string folder = std::string(IMP_BINARY_DIR) + "/gpu-gdn-test.tiny-qwen3.6-nvfp4";
    REQUIRE(std::system((bin + "synth-gguf --shape tiny-qwen35moe --quant q4_k_m --out " + gguf + " > /dev/null").c_str()) == 0);
    REQUIRE(std::system(("rm -rf " + folder + " && " + bin + "synth-safetensors --shape tiny-qwen3.6-nvfp4 --out " +
                         folder + " > /dev/null").c_str()) == 0);
    for (const std::string& path : {gguf, folder}) {
        INFO(path);
        auto src = open_model(path);
        CpuExecutor cpu(4);
        CudaExecutor dev(0);
        Engine ec(*src, full_gdn_registry(), cpu, opts(256, 1, false));
        Engine eg(*src, full_gdn_registry(), dev, opts(256, 1, true));
        const size_t V = size_t(ec.desc().n_vocab);
        for (int n : {1, 5, 100}) {
            INFO("prompt of " << n);
            std::vector<int32_t> toks(static_cast<size_t>(n));
            for (int i = 0; i < n; ++i) toks[size_t(i)] = int32_t((i * 131 + n) % 500);
            std::vector<float> a(static_cast<size_t>(n) * V), b(a.size());
            ec.reset(), eg.reset();
            ec.forward(toks.data(), n, a.data(), true);
            eg.forward(toks.data(), n, b.data(), true);
            for (int i = 0; i < 4; ++i) {  // decode steps through the graph
                const int32_t t = int32_t((i * 17 + 3) % 500);
                std::vector<float> la(V), lb(V);
                ec.forward(&t, 1, la.data());
                eg.forward(&t, 1, lb.data());
                a.insert(a.end(), la.begin(), la.end());
                b.insert(b.end(), lb.begin(), lb.end());
            }
            compare_rows(a, b, V, 5e-2);
        }
        CHECK(eg.graphs_active());
    }
}
