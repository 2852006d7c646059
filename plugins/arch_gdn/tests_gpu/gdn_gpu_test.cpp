// arch_gdn on the CUDA executor against the CPU executor (label gpu; fails without a GPU). The CPU engine matches
// transformers on the tiny fixtures (tests/); the CUDA Gated-DeltaNet kernels take heads of 128 (the real size), so
// these tests run the synthetic models of that head size (random weights, real layouts):
//   tiny-qwen35moe BF16 GGUF (qwen35moe: tiled value heads, separate ssm_beta / ssm_alpha),
//   tiny-qwen3next BF16 GGUF (qwen3next: ssm_ba grouped per key head -> gdn.regroup),
//   tiny-qwen3.6-nvfp4 (ModelOpt MIXED_PRECISION folder: NVFP4 experts / LM head, FP8 projections, BF16 rest).
//  - gdn.regroup's CUDA kernel (Qwen3-Next's grouped projections) equals its CPU reference exactly (a gather);
//  - prompts of 1..300 tokens then decode steps through CUDA graphs equal the CPU, with every [plugin.arch_gdn]
//    prefill_rule variant and decode_fused_norm on and off;
//  - a 300-token prompt in one chunk, in chunks of 7 and token by token equals the CPU;
//  - decode_conv_fused (gdn.decode_step) equals the conv + decode-rule kernels, eager and in graphs;
//  - graph replay equals eager launches (same tokens, logits within 1e-4), no cudaMalloc in steady-state decode;
//  - several sequences in one step (decode rows beside prefill rows, each its own state slot) equal the CPU;
//  - the MIXED folder with the weight-only tensor-core kernels switched on (quant_nvfp4 / quant_fp8 experts_gemm,
//    experts_fused_down, gemv = mma) equals the CPU within the same bound.
// Every engine comparison with the CPU runs with the CPU engine's MoE routing forced onto the device (router_probe.h):
// the random routers of these models have near ties that bf16 rounding breaks (confirmed on an H200: unforced, a
// flip moved the logits by 10-20 %); each flip must lie within the gap the measured router-input difference closes.
// Tolerances (max|diff| <= tol * max|ref| over the logits, and the same top-1 unless the reference's top two are
// within tol * max|ref|, a gap the stated error can close): 3e-2 for the BF16 GGUFs (the same BF16 weights on both
// sides, but on the GPU the activations enter the tensor-core GEMMs and the chunked delta rule as bf16: unit roundoff
// 2^-8 ~ 4e-3 per rounding, several per layer, 4 layers each with its MoE); 5e-2 for the MIXED_PRECISION folder (the
// CUDA NVFP4 / FP8 kernels also round their dequantized tiles to bf16); 1e-4 between graph replay and eager launches of
// the same deterministic kernels (no atomics: the same bits are expected).
// The whole-model comparisons are declared one test case per model (and variant, chunking or batch), so that each of
// scripts/device-check --sanitize's runs, one test case each, ends within its time limit (a whole-model case runs
// 30-300x slower under the tools).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <unistd.h>

#include "blocks/moe_ops.h"
#include "exec/cpu/cpu_executor.h"
#include "exec/cuda/cuda_executor.h"
#include "gdn_fixture.h"
#include "graph_replay_check.h"  // plugins/arch_qwen_moe/tests: graphs against eager decode
#include "router_probe.h"  // plugins/arch_qwen_moe/tests: the CPU's MoE routing forced onto the device
#include "imp/model.h"
#include "runtime/engine.h"
#include "util/op_checks.h"

using namespace imp;
using namespace imp::test;

namespace {

constexpr double kChunkedTol = 3e-2;

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
            CHECK(double(a[ia] - a[ib]) <= tol * mr);
        }
    }
}

Registry& full_gdn_registry() { return registry_with({"arch_gdn", "quant_ggml", "quant_nvfp4", "quant_fp8"}); }

// The same plugins behind the MoE router probe (router_probe.h): an engine comparison records the CPU engine's
// routing (probe_record) and forces it onto the device engine, whose graphs are then off (probe_force); the device's
// bf16 activations break near ties of the random routers, which moves these tiny models' logits by 10-20 %.
// probe_ok checks the forced run: every flip within the gap the measured router-input difference can close, as
// many router calls as recorded. Graph replay is checked against eager launches on the device alone.
Registry& probe_reg() { return probe_registry({"arch_gdn", "quant_ggml", "quant_nvfp4", "quant_fp8"}); }
void probe_record() { router_probe().start(RouterProbe::Mode::Record); }
void probe_force() { router_probe().start(RouterProbe::Mode::Force); }
void probe_ok() {
    RouterProbe& p = router_probe();
    if (p.error.empty() && p.next != p.calls.size())
        p.error = std::to_string(p.next) + " router calls forced, " + std::to_string(p.calls.size()) + " recorded";
    p.mode = RouterProbe::Mode::Pass;
    INFO("router: " << p.flips << " of " << p.decisions << " tokens flipped (worst CPU gap " << p.worst_flip_gap
                    << "), max|d xn| " << p.xn_diff << " of " << p.xn_ref << "; " << p.error);
    CHECK(p.error.empty());
}

// This process's folder of synthetic models in the build tree, removed at exit: processes running test cases of
// this binary side by side (sanitizer shards) write and read their own files.
struct SynthDir {
    std::filesystem::path path =
        std::filesystem::path(IMP_BINARY_DIR) / ("gpu-gdn-test." + std::to_string(::getpid()));
    SynthDir() { std::filesystem::create_directories(path); }
    ~SynthDir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
};

// The synthetic model `shape` (written once per test case into this process's folder): a BF16 GGUF, or the folder.
std::string synth(const std::string& shape) {
    static SynthDir dir;
    const bool folder = shape == "tiny-qwen3.6-nvfp4";
    const std::string bin = std::string(IMP_BINARY_DIR) + "/bin/";
    const std::string out = (dir.path / (shape + (folder ? "" : ".bf16.gguf"))).string();
    const std::string cmd = folder ? "rm -rf " + out + " && " + bin + "synth-safetensors --shape " + shape + " --out " + out
                                   : bin + "synth-gguf --shape " + shape + " --quant bf16 --out " + out;
    REQUIRE(std::system((cmd + " > /dev/null").c_str()) == 0);
    return out;
}

struct Model {
    std::string shape;
    double tol;
};
const std::vector<Model>& models() {
    static const std::vector<Model> m = {
        {"tiny-qwen35moe", kChunkedTol}, {"tiny-qwen3next", kChunkedTol}, {"tiny-qwen3.6-nvfp4", 5e-2}};
    return m;
}
const Model& model(const std::string& shape) {
    for (const Model& m : models())
        if (m.shape == shape) return m;
    FAIL("no synthetic model " << shape);
    return models().front();
}

// Sets [plugin.<plugin>] key for one scope, then back to `after` (the default the other test cases expect), also
// when an assertion ends the test case early.
template <typename T>
struct ScopedSetting {
    Registry& reg;
    std::string plugin, key;
    T after;
    ScopedSetting(Registry& r, std::string p, std::string k, const T& now, T then)
        : reg(r), plugin(std::move(p)), key(std::move(k)), after(std::move(then)) {
        reg.configure(plugin, key, now);
    }
    ~ScopedSetting() { reg.configure(plugin, key, after); }
    ScopedSetting(const ScopedSetting&) = delete;
    ScopedSetting& operator=(const ScopedSetting&) = delete;
};

// An engine built while [plugin.<plugin>] key = value (an engine takes its settings when it is built); the setting is
// `after` again once it is built.
template <typename T>
std::unique_ptr<Engine> engine_with(Registry& reg, const std::string& plugin, const std::string& key, const T& value,
                                    const T& after, const ModelSource& src, Executor& ex, const EngineOptions& o) {
    ScopedSetting<T> set(reg, plugin, key, value, after);
    return std::make_unique<Engine>(src, reg, ex, o);
}

std::vector<int32_t> tokens(int n, int salt) {
    std::vector<int32_t> t(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) t[size_t(i)] = int32_t((i * 131 + salt * 17 + 3) % 500);
    return t;
}

// The CPU engine (recording its routing) and the device engine (routing forced) on a prompt of toks, then `steps`
// decode tokens (i * mul + add) % 500 with the state advancing; the logits of both compared within tol.
void compare_prompt_decode(Engine& ec, Engine& eg, const std::vector<int32_t>& toks, int steps, int mul, int add,
                           double tol) {
    const size_t V = size_t(ec.desc().n_vocab);
    const int n = int(toks.size());
    std::vector<float> a(static_cast<size_t>(n) * V), b(a.size());
    Engine* e[2] = {&ec, &eg};
    std::vector<float>* out[2] = {&a, &b};
    for (int g = 0; g < 2; ++g) {
        g == 0 ? probe_record() : probe_force();
        e[g]->reset();
        e[g]->forward(toks.data(), n, out[g]->data(), true);
        for (int i = 0; i < steps; ++i) {
            const int32_t t = int32_t((i * mul + add) % 500);
            std::vector<float> l(V);
            e[g]->forward(&t, 1, l.data());
            out[g]->insert(out[g]->end(), l.begin(), l.end());
        }
    }
    probe_ok();
    compare_rows(a, b, V, tol);
}

}  // namespace

TEST_CASE("gpu: gdn.regroup equals the CPU reference", "[gpu][arch_gdn]") {
    REQUIRE(cuda_device_count() > 0);
    CpuExecutor cpu(2);
    CudaExecutor dev(0);
    const OpCheckResult r = run_op_check(full_gdn_registry(), "gdn.regroup", cpu, dev, std::random_device{}(), 24);
    INFO(r.message);
    CHECK(r.status == OpCheckResult::Status::Pass);
}

TEST_CASE("gpu: the MIXED NVFP4/FP8 hybrid through each expert kernel choice equals the CPU", "[gpu][arch_gdn]") {
    // quant_nvfp4 / quant_fp8 expert switches: the expert GEMM's token tiles or the grouped GEMV (prompts of 64+
    // tokens group their pairs), the fused MoE down projection (decode, off by default) and the GEMV loads.
    REQUIRE(cuda_device_count() > 0);
    Registry& reg = probe_reg();
    const Model m = models().back();
    REQUIRE(m.shape == "tiny-qwen3.6-nvfp4");
    auto src = open_model(synth(m.shape));
    for (const auto& [gemm, fused, gemv] : std::vector<std::tuple<std::string, bool, std::string>>{
             {"off", true, "regs2"}, {"2", false, "regs"}, {"8", true, "async"}}) {
        const bool norm = gemv != "regs";  // fuse_norm (the default) on the first and last, the separate norm between
        INFO("experts_gemm " << gemm << ", experts_fused_down " << fused << ", gemv " << gemv << ", fuse_norm "
                             << norm);
        for (const char* q : {"quant_nvfp4", "quant_fp8"}) {
            reg.configure(q, "experts_gemm", gemm);
            reg.configure(q, "experts_fused_down", fused);
            reg.configure(q, "gemv", gemv);
            reg.configure(q, "fuse_norm", norm);
        }
        CpuExecutor cpu(4);
        CudaExecutor dev(0);
        Engine ec(*src, reg, cpu, opts(512, 1, false));
        Engine eg(*src, reg, dev, opts(512, 1, false));
        for (int n : {5, 64, 300}) {
            INFO("prompt of " << n);
            compare_prompt_decode(ec, eg, tokens(n, n + 1), 4, 41, 7, m.tol);
        }
    }
    for (const char* q : {"quant_nvfp4", "quant_fp8"}) {  // the defaults again for the other cases
        reg.configure(q, "experts_gemm", std::string("auto"));
        reg.configure(q, "experts_fused_down", false);
        reg.configure(q, "gemv", std::string("regs"));
        reg.configure(q, "fuse_norm", true);
    }
}

TEST_CASE("gpu: the MIXED NVFP4/FP8 hybrid with the shared expert as a routed slot equals the CPU", "[gpu][arch_gdn]") {
    // [plugin.core] moe_shared_slot: decode steps run the NVFP4 shared expert inside the routed experts' GEMV
    // launches (ExpertMatmul::extra); prompts keep the separate path. The CPU runs the shared expert on its own.
    REQUIRE(cuda_device_count() > 0);
    Registry& reg = probe_reg();
    const Model m = models().back();
    REQUIRE(m.shape == "tiny-qwen3.6-nvfp4");
    auto src = open_model(synth(m.shape));
    reg.configure("core", "moe_shared_slot", true);
    {
        CpuExecutor cpu(4);
        CudaExecutor dev(0);
        Engine ec(*src, reg, cpu, opts(512, 1, false));
        Engine eg(*src, reg, dev, opts(512, 1, false));  // graphs off: the routing probe downloads
        const uint64_t before = blocks::moe_detail::shared_slot_calls();
        for (int n : {5, 64}) {
            INFO("prompt of " << n);
            compare_prompt_decode(ec, eg, tokens(n, n + 3), 6, 29, 5, m.tol);
        }
        CHECK(blocks::moe_detail::shared_slot_calls() > before);  // the slot path ran (decode steps)
        // With the fused down projection (quant_nvfp4 experts_fused_down): a decode step's MoE is the router, one
        // gate|up launch and one down kernel, the shared expert a slot of both.
        reg.configure("quant_nvfp4", "experts_fused_down", true);
        Engine ef(*src, reg, dev, opts(512, 1, false));
        reg.configure("quant_nvfp4", "experts_fused_down", false);
        const uint64_t before_f = blocks::moe_detail::shared_slot_calls();
        compare_prompt_decode(ec, ef, tokens(9, 12), 6, 37, 5, m.tol);
        CHECK(blocks::moe_detail::shared_slot_calls() > before_f);
    }
    // Slot on against slot off, both on the GPU with the same routing (recorded from the first): prompts take the
    // same kernels, decode steps differ only in the order the shared expert's output is summed, so the logits
    // agree far inside the CPU comparison's tolerance. With the exact GEMV sums: under gemv_int8_x (the profiles'
    // default "all") the slot-off dense GEMV rounds the shared expert's down input to int8 and the slot's
    // SwiGLU-staged call does not (1.3e-2 of max |logit| apart on the H200, within the CPU comparison's m.tol).
    reg.configure("quant_nvfp4", "gemv_int8_x", std::string("off"));
    reg.configure("core", "moe_shared_slot", false);
    CudaExecutor dev_a(0), dev_b(0);
    Engine off(*src, reg, dev_a, opts(512, 1, false));
    reg.configure("core", "moe_shared_slot", true);
    Engine on(*src, reg, dev_b, opts(512, 1, false));
    const uint64_t before = blocks::moe_detail::shared_slot_calls();
    compare_prompt_decode(off, on, tokens(7, 11), 6, 31, 3, 1e-3);
    CHECK(blocks::moe_detail::shared_slot_calls() > before);
    reg.configure("quant_nvfp4", "gemv_int8_x", std::string("all"));  // the default again for the tests after

    // Graphs: the slot's decode step captured once replays like the eager steps (greedy tokens equal, logits within
    // 1e-4), without cudaMalloc in steady-state decode.
    Registry& full = full_gdn_registry();
    full.configure("core", "moe_shared_slot", true);  // the default
    CudaExecutor dev_g(0), dev_e(0);
    Engine with(*src, full, dev_g, opts(128, 1, true));
    Engine without(*src, full, dev_e, opts(128, 1, false));
    compare_graphs_eager(with, without, tokens(9, 4), 16);
}

// [plugin.arch_gdn] decode_conv_fused: decode steps run gdn.decode_step instead of gdn.conv + gdn.rule_decode;
// prompts keep the prefill ops. Against the same model without it on the GPU, same routing (recorded from the
// first engine): the conv and the rule round alike, the norm sums in another order, so the logits agree within
// 1e-3 of max|ref| (the shared-slot test's bound). Graph replay of the fused step equals its eager launches.
// One test case per model.
static void decode_conv_fused(const std::string& shape) {
    REQUIRE(cuda_device_count() > 0);
    Registry& reg = probe_reg();
    auto src = open_model(synth(shape));
    for (const char* ctas : {"1", "2"}) {
        INFO(shape << ", decode_norm_ctas " << ctas);
        ScopedSetting<std::string> ctas_set(reg, "arch_gdn", "decode_norm_ctas", ctas, "1");
        CudaExecutor dev_a(0), dev_b(0);
        const EngineOptions o = opts(512, 1, false);
        const auto off = engine_with(reg, "arch_gdn", "decode_conv_fused", false, false, *src, dev_a, o);
        const auto on = engine_with(reg, "arch_gdn", "decode_conv_fused", true, false, *src, dev_b, o);
        for (int n : {3, 70}) compare_prompt_decode(*off, *on, tokens(n, n + 2), 6, 43, 9, 1e-3);
    }
    Registry& full = full_gdn_registry();
    CudaExecutor dev_g(0), dev_e(0);
    const auto with = engine_with(full, "arch_gdn", "decode_conv_fused", true, false, *src, dev_g, opts(128, 1, true));
    const auto without =
        engine_with(full, "arch_gdn", "decode_conv_fused", true, false, *src, dev_e, opts(128, 1, false));
    compare_graphs_eager(*with, *without, tokens(6, 5), 12);
}

#define DECODE_CONV_FUSED(SHAPE)                                                                                  \
    TEST_CASE("gpu: decode_conv_fused (gdn.decode_step: conv + rule + norm in one kernel) equals the two kernels: " \
              SHAPE,                                                                                              \
              "[gpu][arch_gdn]") {                                                                                \
        decode_conv_fused(SHAPE);                                                                                 \
    }
DECODE_CONV_FUSED("tiny-qwen35moe")
DECODE_CONV_FUSED("tiny-qwen3next")
DECODE_CONV_FUSED("tiny-qwen3.6-nvfp4")
#undef DECODE_CONV_FUSED

// Prompts of 1..300 tokens then decode, the CPU's routing forced, for one model and one [plugin.arch_gdn]
// prefill_rule / decode_fused_norm variant (a test case each, so that the sanitizers' runs, one case each, stay short).
static void prompts_then_decode(const std::string& shape, const std::string& rule, bool fused_norm) {
    REQUIRE(cuda_device_count() > 0);
    const Model m = model(shape);
    Registry& reg = probe_reg();
    INFO(m.shape << ", prefill_rule " << rule << ", decode_fused_norm " << fused_norm);
    ScopedSetting<std::string> rule_set(reg, "arch_gdn", "prefill_rule", rule, "auto");
    ScopedSetting<bool> norm_set(reg, "arch_gdn", "decode_fused_norm", fused_norm, true);
    auto src = open_model(synth(m.shape));
    CpuExecutor cpu(4);
    CudaExecutor dev(0);
    Engine ec(*src, reg, cpu, opts(512, 1, false));
    Engine eg(*src, reg, dev, opts(512, 1, false));
    for (int n : {1, 5, 64, 65, 300}) {  // chunk-64 boundaries of the CUDA rule: below, at, past, several
        INFO("prompt of " << n);
        compare_prompt_decode(ec, eg, tokens(n, n), 6, 37, 11, m.tol);
    }
}

#define PROMPTS_THEN_DECODE(SHAPE, RULE, FUSED)                                                                    \
    TEST_CASE("gpu: synthetic hybrids, prompts of 1..300 tokens then decode, equal the CPU (its routing forced): " \
              SHAPE ", prefill_rule " RULE,                                                                        \
              "[gpu][arch_gdn]") {                                                                                 \
        prompts_then_decode(SHAPE, RULE, FUSED);                                                                   \
    }
#define PROMPTS_THEN_DECODE_ALL(SHAPE)              \
    PROMPTS_THEN_DECODE(SHAPE, "auto", true)       \
    PROMPTS_THEN_DECODE(SHAPE, "fused", true)      \
    PROMPTS_THEN_DECODE(SHAPE, "split64", false)   \
    PROMPTS_THEN_DECODE(SHAPE, "split32", true)
PROMPTS_THEN_DECODE_ALL("tiny-qwen35moe")
PROMPTS_THEN_DECODE_ALL("tiny-qwen3next")
PROMPTS_THEN_DECODE_ALL("tiny-qwen3.6-nvfp4")
#undef PROMPTS_THEN_DECODE_ALL
#undef PROMPTS_THEN_DECODE

// A 300-token prompt of one BF16 hybrid against the CPU engine making the same passes (its routing recorded per
// router call; the CPU's own chunk invariance is exact and checked in the CPU tests); the logits of tokens [0, to)
// compared. from == 0: both engines built with prefill_chunk = chunk split tokens [0, to) into passes themselves (1:
// the test feeds them token by token); from > 0: tokens [0, from) in one pass, then [from, to) in passes of `chunk`
// tokens made by the test. A test case per model and part: a whole prompt token by token is more than one sanitizer
// run can hold (racecheck stopped it at 519 s).
static void prompt_in_chunks(const std::string& shape, int64_t chunk, int64_t from, int64_t to) {
    REQUIRE(cuda_device_count() > 0);
    INFO(shape << ", tokens [0, " << from << ") in one pass, then [" << from << ", " << to << ") in passes of "
               << chunk);
    auto src = open_model(synth(shape));
    const std::vector<int32_t> prompt = tokens(300, 1);
    REQUIRE(0 <= from);
    REQUIRE(from < to);
    REQUIRE(to <= int64_t(prompt.size()));
    CpuExecutor cpu(4);
    CudaExecutor dev(0);
    const int64_t engine_chunk = from == 0 ? chunk : 512;
    Engine ec(*src, probe_reg(), cpu, opts(320, 1, false, engine_chunk));
    Engine eg(*src, probe_reg(), dev, opts(320, 1, false, engine_chunk));
    const size_t V = size_t(ec.desc().n_vocab);
    std::vector<float> ref(size_t(to) * V), got(size_t(to) * V);
    Engine* e[2] = {&ec, &eg};
    std::vector<float>* out[2] = {&ref, &got};
    for (int g = 0; g < 2; ++g) {
        g == 0 ? probe_record() : probe_force();
        if (from == 0 && chunk > 1) {
            e[g]->forward(prompt.data(), to, out[g]->data(), true);  // the engine's own passes of `chunk`
            continue;
        }
        if (from > 0) e[g]->forward(prompt.data(), from, out[g]->data(), true);
        for (int64_t k = from; k < to; k += chunk) {
            const int64_t n = std::min(chunk, to - k);
            e[g]->forward(&prompt[size_t(k)], n, out[g]->data() + size_t(k) * V, n > 1);  // one token: a decode step
        }
    }
    probe_ok();
    compare_rows(ref, got, V, kChunkedTol);
}

#define PROMPT_IN_CHUNKS(SHAPE, CHUNK, FROM, TO, WHAT)                                                       \
    TEST_CASE("gpu: a 300-token prompt " WHAT " equals the CPU: " SHAPE, "[gpu][arch_gdn]") {                \
        prompt_in_chunks(SHAPE, CHUNK, FROM, TO);                                                            \
    }
#define PROMPT_IN_CHUNKS_ALL(SHAPE)                                                                          \
    PROMPT_IN_CHUNKS(SHAPE, 512, 0, 300, "in one chunk")                                                     \
    PROMPT_IN_CHUNKS(SHAPE, 7, 0, 150, "in chunks of 7, tokens 1-150")                                       \
    PROMPT_IN_CHUNKS(SHAPE, 7, 150, 300, "in chunks of 7, tokens 151-300 after one chunk of 150")            \
    PROMPT_IN_CHUNKS(SHAPE, 1, 0, 150, "token by token, tokens 1-150")                                       \
    PROMPT_IN_CHUNKS(SHAPE, 1, 150, 300, "token by token, tokens 151-300 after one chunk of 150")
PROMPT_IN_CHUNKS_ALL("tiny-qwen35moe")
PROMPT_IN_CHUNKS_ALL("tiny-qwen3next")
#undef PROMPT_IN_CHUNKS_ALL
#undef PROMPT_IN_CHUNKS

// Graph replay against eager launches of one model (a test case per model).
static void graph_replay(const std::string& shape) {
    REQUIRE(cuda_device_count() > 0);
    INFO(shape);
    auto src = open_model(synth(shape));
    CudaExecutor dev_a(0), dev_b(0);  // one executor per engine (each plans its own workspace)
    Engine with(*src, full_gdn_registry(), dev_a, opts(128, 1, true));
    Engine without(*src, full_gdn_registry(), dev_b, opts(128, 1, false));
    for (const std::vector<int32_t>& prompt : {tokens(3, 2), tokens(70, 3)})
        compare_graphs_eager(with, without, prompt, 24);
}

#define GRAPH_REPLAY(SHAPE)                                                                                  \
    TEST_CASE("gpu: hybrid graph replay equals no graphs, no cudaMalloc in decode: " SHAPE, "[gpu][arch_gdn]") { \
        graph_replay(SHAPE);                                                                                 \
    }
GRAPH_REPLAY("tiny-qwen35moe")
GRAPH_REPLAY("tiny-qwen3next")
GRAPH_REPLAY("tiny-qwen3.6-nvfp4")
#undef GRAPH_REPLAY

TEST_CASE("gpu: l2_prefetch (the next layer's weights into L2 during decode) changes no bit", "[gpu][arch_gdn]") {
    // [plugin.core] l2_prefetch: decode steps queue each next layer's Layer::prefetch_weights (GDN projections, the
    // attention's q|k|v and o, the MoE router and shared expert) before the layer runs. A prefetch only moves cache
    // lines: with graphs and without, the logits equal those of the same engine without it, bit for bit.
    REQUIRE(cuda_device_count() > 0);
    const Model m = models().back();
    REQUIRE(m.shape == "tiny-qwen3.6-nvfp4");
    auto src = open_model(synth(m.shape));
    for (const bool graphs : {false, true}) {
        INFO("graphs " << graphs);
        EngineOptions on = opts(128, 1, graphs), off = on;
        on.l2_prefetch = true;
        CudaExecutor dev_a(0), dev_b(0);
        Engine a(*src, full_gdn_registry(), dev_a, on), b(*src, full_gdn_registry(), dev_b, off);
        const std::vector<int32_t> prompt = tokens(11, 6);
        std::vector<float> la, lb;
        Engine* engines[2] = {&a, &b};
        std::vector<float>* outs[2] = {&la, &lb};
        for (int g = 0; g < 2; ++g) {
            Engine& e = *engines[g];
            std::vector<float> last(static_cast<size_t>(e.desc().n_vocab));
            e.forward(prompt.data(), int64_t(prompt.size()), last.data());
            for (int i = 0; i < 8; ++i) {
                const int32_t t = int32_t((i * 37 + 5) % 500);
                e.forward(&t, 1, last.data());
                outs[g]->insert(outs[g]->end(), last.begin(), last.end());
            }
        }
        CHECK(la == lb);
    }
}

// [plugin.quant_ggml] fuse_gemm_input on the BF16 GGUF hybrids: prompts of more than 8 tokens take the GEMM path,
// where the GDN projections, the attention's q|k|v and the LM head take the RMSNorm into their bf16 conversion of
// x (the executor's op, bit for bit); the logits of every prompt row and of the decode steps after it equal the
// engine's without the setting exactly. A test case per model.
static void fuse_gemm_input(const std::string& shape) {
    REQUIRE(cuda_device_count() > 0);
    Registry& reg = full_gdn_registry();
    INFO(shape);
    auto src = open_model(synth(shape));
    CudaExecutor dev_a(0), dev_b(0);
    const auto off_e = engine_with(reg, "quant_ggml", "fuse_gemm_input", false, true, *src, dev_a, opts(512, 1, true));
    const auto on_e = engine_with(reg, "quant_ggml", "fuse_gemm_input", true, true, *src, dev_b, opts(512, 1, true));
    Engine& off = *off_e;
    Engine& on = *on_e;
    for (const int n : {40, 300}) {
        INFO(n << "-token prompt");
        const auto prompt = tokens(n, n);
        const size_t V = size_t(off.desc().n_vocab);
        std::vector<float> a(size_t(n) * V), b(a.size());
        off.reset();
        on.reset();
        off.forward(prompt.data(), n, a.data(), true);
        on.forward(prompt.data(), n, b.data(), true);
        for (int i = 0; i < 4; ++i) {
            const int32_t t = int32_t((i * 29 + 7) % 500);
            std::vector<float> la(V), lb(V);
            off.forward(&t, 1, la.data());
            on.forward(&t, 1, lb.data());
            a.insert(a.end(), la.begin(), la.end());
            b.insert(b.end(), lb.begin(), lb.end());
        }
        CHECK(std::memcmp(a.data(), b.data(), a.size() * 4) == 0);
    }
}

#define FUSE_GEMM_INPUT(SHAPE)                                                                                     \
    TEST_CASE("gpu: fuse_gemm_input (norm / SwiGLU in the GEMMs' bf16 input) gives the hybrids' logits bit for bit: " \
              SHAPE,                                                                                               \
              "[gpu][arch_gdn]") {                                                                                 \
        fuse_gemm_input(SHAPE);                                                                                    \
    }
FUSE_GEMM_INPUT("tiny-qwen35moe")
FUSE_GEMM_INPUT("tiny-qwen3next")
#undef FUSE_GEMM_INPUT

// Several sequences of one BF16 hybrid in one step: n_decode decode rows (each with its own history, so its own
// state slot) beside a prompt of 0, 1, 37 and 300 tokens, against the CPU. A test case per model and decode rows.
static void several_sequences(const std::string& shape, int n_decode) {
    REQUIRE(cuda_device_count() > 0);
    auto src = open_model(synth(shape));
    for (int prefill : {0, 1, 37, 300}) {
        INFO(shape << ": " << n_decode << " decode rows, prefill of " << prefill);
        CpuExecutor cpu(4);
        CudaExecutor dev(0);
        Engine ec(*src, probe_reg(), cpu, opts(512, 9, false));
        Engine eg(*src, probe_reg(), dev, opts(512, 9, false));
        Engine* e[2] = {&ec, &eg};
        std::vector<float> out[2];
        for (int g = 0; g < 2; ++g) {
            g == 0 ? probe_record() : probe_force();
            std::vector<SeqId> ids;
            std::vector<std::vector<int32_t>> hist;
            for (int s = 0; s < n_decode; ++s) {  // each decode sequence gets a history (its state) first
                ids.push_back(e[g]->add_sequence());
                hist.push_back(tokens(4 + 3 * s, s));
                SeqWork w{ids.back(), hist.back().data(), int64_t(hist.back().size())};
                e[g]->step(std::span<const SeqWork>(&w, 1), nullptr);
            }
            std::vector<SeqWork> work;
            std::vector<int32_t> next(static_cast<size_t>(n_decode));
            for (int s = 0; s < n_decode; ++s) {
                next[size_t(s)] = int32_t((s * 53 + 11) % 500);
                work.push_back({ids[size_t(s)], &next[size_t(s)], 1});
            }
            const std::vector<int32_t> pre = tokens(prefill, 99);
            if (prefill > 0) work.push_back({e[g]->add_sequence(), pre.data(), int64_t(prefill)});
            out[g].resize(work.size() * size_t(e[g]->desc().n_vocab));
            e[g]->step(work, out[g].data());
        }
        probe_ok();
        compare_rows(out[0], out[1], size_t(ec.desc().n_vocab), kChunkedTol);
    }
}

#define SEVERAL_SEQUENCES(SHAPE, N)                                                                           \
    TEST_CASE("gpu: several hybrid sequences (decode rows beside prefill rows) equal the CPU: " SHAPE ", " #N \
              " decode rows",                                                                                 \
              "[gpu][arch_gdn]") {                                                                            \
        several_sequences(SHAPE, N);                                                                          \
    }
SEVERAL_SEQUENCES("tiny-qwen35moe", 1)
SEVERAL_SEQUENCES("tiny-qwen35moe", 2)
SEVERAL_SEQUENCES("tiny-qwen35moe", 5)
SEVERAL_SEQUENCES("tiny-qwen35moe", 8)
SEVERAL_SEQUENCES("tiny-qwen3next", 1)
SEVERAL_SEQUENCES("tiny-qwen3next", 2)
SEVERAL_SEQUENCES("tiny-qwen3next", 5)
SEVERAL_SEQUENCES("tiny-qwen3next", 8)
#undef SEVERAL_SEQUENCES

// The BF16 hybrids' logits with the CPU's MoE routing forced onto the device (router_probe.h, graphs off): the
// device's dense matmuls round activations to bf16, which breaks near ties of random routers (a flip of one expert
// moves these tiny models' logits by 10-20 %). Each flip must lie within the gap the measured router-input
// difference can close; with the routing the same, the logits must agree within the chunked rule's tolerance.
// (A test case per model.)
static void bf16_hybrid_forced(const std::string& shape) {
    REQUIRE(cuda_device_count() > 0);
    Registry& reg = probe_registry({"arch_gdn", "quant_ggml"});
    INFO(shape);
    auto src = open_model(synth(shape));
    CpuExecutor cpu(4);
    CudaExecutor dev(0);
    Engine ec(*src, reg, cpu, opts(400, 1, false));
    Engine eg(*src, reg, dev, opts(400, 1, false));
    const size_t V = size_t(ec.desc().n_vocab);
    for (const int n : {64, 300}) {
        INFO("prompt of " << n);
        std::vector<float> a, b;
        run_forced(ec, eg, tokens(n, 5), tokens(6, 9), a, b);
        const RouterProbe& p = router_probe();
        INFO("router: " << p.flips << " of " << p.decisions << " tokens flipped (worst CPU gap " << p.worst_flip_gap
                        << "), max|d xn| " << p.xn_diff << " of " << p.xn_ref << "; " << p.error);
        CHECK(p.error.empty());
        CHECK(p.decisions > 0);
        const LogitsDiff d = diff_logits(a, b, V, kChunkedTol);
        INFO("logits: max|diff| " << d.max_diff << ", max|ref| " << d.max_ref << "; " << d.first);
        CHECK(d.finite);
        CHECK(d.max_diff <= kChunkedTol * d.max_ref);
        CHECK(d.top1_differ == 0);
    }
}

#define BF16_HYBRID_FORCED(SHAPE)                                                                                    \
    TEST_CASE("gpu: BF16 hybrids with the CPU's routing forced equal the CPU (prompts of 64 and 300, decode): " SHAPE, \
              "[gpu][arch_gdn]") {                                                                                   \
        bf16_hybrid_forced(SHAPE);                                                                                   \
    }
BF16_HYBRID_FORCED("tiny-qwen35moe")
BF16_HYBRID_FORCED("tiny-qwen3next")
#undef BF16_HYBRID_FORCED
