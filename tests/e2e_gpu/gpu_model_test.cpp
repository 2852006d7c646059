// Whole models on the CUDA executor against the CPU reference: the tiny HF fixtures' logits, SmolLM2's decode logits
// step by step (teacher-forced), graphs on/off, seeded sampling, and no cudaMalloc/cudaFree in steady-state decode.
// Needs a GPU: every test fails (does not skip) without one.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <utility>

#include <unistd.h>

#include "cli/session.h"
#include "common/logit_match.h"
#include "common/max_err.h"
#include "common/generate.h"
#include "exec/cuda/cuda_executor.h"

namespace {

std::string source_dir() {
    const char* e = std::getenv("IMP_SOURCE_DIR");  // the device runs a copy of the tree elsewhere
    return e ? e : IMP_SOURCE_DIR;
}

imp::Profile profile_for(const std::string& model, const std::string& executor, std::vector<std::string> extra = {}) {
    REQUIRE(imp::cuda_device_count() > 0);  // a gpu test must not pass without a GPU
    imp::Profile p = imp::default_profile();
    imp::apply_override(p, "model.path=\"" + model + "\"");
    imp::apply_override(p, "plugins.load=[\"arch_llama\", \"quant_ggml\"]");
    imp::apply_override(p, "runtime.executor=\"" + executor + "\"");
    imp::apply_override(p, "runtime.max_seq_len=256");
    for (auto& o : extra) imp::apply_override(p, o);
    return p;
}

std::vector<int32_t> greedy(imp::Engine& e, const std::vector<int32_t>& prompt, int n) {
    imp::SamplingParams sp;
    sp.temperature = 0;
    return imp::test::generate(e, prompt, sp, n);
}

// The real SmolLM2 file where scripts/fetch-model put it; else (a GPU machine without it) a synthetic model of its
// shape written once per test process by synth-gguf from this binary's folder (Q8_0, random weights, a byte-level
// vocabulary), removed at exit. The tests below compare the GPU with the CPU on the same file, which any weights do.
struct SmolLM2 {
    std::string path;
    bool synthetic = false;
};
const SmolLM2& smollm2_model();
std::string smollm2() { return smollm2_model().path; }

// match_logits' bound for SmolLM2: 1e-2 of the largest CPU logit on the real file; 2e-2 on the synthetic stand-in,
// whose random weights give small, flat logits (max |logit| ~2.5 against ~20 on the real file) and amplify rounding
// through its 30 layers: the bf16 activations of the 9-token prompt's GEMMs measured 1.03e-2 of max |logit| at step 0
// on an H100 (2026-12-05, 47a6fde), with every decode step and every top-1 within the real file's bound.
double smollm2_tol() { return smollm2_model().synthetic ? 2e-2 : 1e-2; }

const SmolLM2& smollm2_model() {
    struct Model {
        std::string path;
        bool synthetic = false;
        ~Model() {
            std::error_code ec;
            if (synthetic) std::filesystem::remove(path, ec);
        }
    };
    static const Model m = [] {
        namespace fs = std::filesystem;
        Model r{source_dir() + "/models/SmolLM2-135M-Instruct.Q4_1.gguf"};
        if (std::ifstream(r.path).good()) return r;
        std::error_code ec;
        const fs::path synth = fs::read_symlink("/proc/self/exe", ec).parent_path() / "synth-gguf";
        const fs::path out = fs::temp_directory_path() / ("imp-gpu-test-smollm2-" + std::to_string(getpid()) + ".gguf");
        const std::string cmd =
            "'" + synth.string() + "' --shape smollm2-135m --quant q8_0 --out '" + out.string() + "' > /dev/null 2>&1";
        if (ec || std::system(cmd.c_str()) != 0) return r;  // the tests' REQUIRE names the missing file
        WARN("models/SmolLM2-135M-Instruct.Q4_1.gguf not found: a synthetic SmolLM2-shape Q8_0 model stands in");
        return Model{out.string(), true};
    }();
    static const SmolLM2 r{m.path, m.synthetic};
    return r;
}

// Feeds `prompt` then the tokens of `forced` to both engines and checks every step's logits (the prompt's last
// token's, then each forced token's) with match_logits at tolerance tol.
void check_teacher_forced(imp::Engine& cpu, imp::Engine& gpu, const std::vector<int32_t>& prompt,
                          const std::vector<int32_t>& forced, double tol) {
    const size_t nv = size_t(cpu.desc().n_vocab);
    std::vector<float> lc(nv), lg(nv);
    cpu.reset();
    gpu.reset();
    cpu.forward(prompt.data(), int64_t(prompt.size()), lc.data());
    gpu.forward(prompt.data(), int64_t(prompt.size()), lg.data());
    for (size_t step = 0; step <= forced.size(); ++step) {
        const auto m = imp::test::match_logits(lg.data(), lc.data(), int64_t(nv), tol);
        INFO("step " << step << " (0 = the prompt's last token): " << m.describe());
        CHECK(m.ok);
        if (step == forced.size()) break;
        cpu.forward(&forced[step], 1, lc.data());
        gpu.forward(&forced[step], 1, lg.data());
    }
}

}  // namespace

TEST_CASE("gpu: tiny HF fixtures' logits match the CPU reference", "[gpu]") {
    for (const char* name : {"llama_tiny", "llama3_tiny", "qwen3_tiny", "llama_tiny.gguf", "qwen3_tiny.gguf"}) {
        const std::string path = source_dir() + "/tests/fixtures/models/" + name;
        INFO("fixture " << name);
        imp::Session cpu(profile_for(path, "cpu")), gpu(profile_for(path, "cuda"));
        std::vector<int32_t> toks = {1, 17, 200, 45, 3, 99, 150, 7, 250, 33, 64, 128};
        const int64_t nv = cpu.engine().desc().n_vocab;
        std::vector<float> a(toks.size() * size_t(nv)), b(a.size());
        cpu.engine().forward(toks.data(), int64_t(toks.size()), a.data(), true);
        gpu.engine().forward(toks.data(), int64_t(toks.size()), b.data(), true);
        // then one decode step through the graph
        int32_t next = 5;
        std::vector<float> a1(static_cast<size_t>(nv)), b1(static_cast<size_t>(nv));
        cpu.engine().forward(&next, 1, a1.data());
        gpu.engine().forward(&next, 1, b1.data());
        a.insert(a.end(), a1.begin(), a1.end());
        b.insert(b.end(), b1.begin(), b1.end());
        for (size_t i = 0; i < a.size(); ++i) REQUIRE(std::isfinite(b[i]));
        CHECK(imp::test::max_rel_err(b, a) <= 1e-2);  // the CPU (a) is the reference
        for (size_t r = 0; r < a.size() / size_t(nv); ++r) {
            auto ra = a.begin() + std::ptrdiff_t(r * size_t(nv)), rb = b.begin() + std::ptrdiff_t(r * size_t(nv));
            CHECK(std::max_element(ra, ra + nv) - ra == std::max_element(rb, rb + nv) - rb);
        }
    }
}

// SmolLM2's decode logits against the CPU on one prompt (a test case per prompt, so that each sanitizer run, one test
// case, ends within its limit). Both with a BF16 KV cache, so the comparison is of the kernels, not of the cache
// precision. The GPU sums in another order (split-K GEMVs, the one-kernel decode attention), so greedy tokens may part
// at a near-tie: instead both engines are fed the CPU's greedy tokens and every step's logits are compared
// (match_logits: max |err| <= 1e-2 x max |CPU logit|, the bound of the fixture test above, and the same top-1 unless
// the CPU's top-2 margin is below that bound; smollm2_tol: 2e-2 on the synthetic stand-in).
static void smollm2_decode(const char* p) {
    REQUIRE(std::ifstream(smollm2()).good());
    const std::string bf16 = "runtime.kv_dtype=\"bf16\"";
    const double tol = smollm2_tol();
    imp::Session cpu(profile_for(smollm2(), "cpu", {bf16})), gpu(profile_for(smollm2(), "cuda", {bf16}));
    imp::Session nograph(profile_for(smollm2(), "cuda", {bf16, "runtime.cuda_graphs=false"}));
    INFO("prompt: " << p);
    auto ids = cpu.tokenizer().encode(p, cpu.tokenizer().add_bos(), false);
    const auto want = greedy(cpu.engine(), ids, 32);
    const auto before = imp::cuda_alloc_stats();
    check_teacher_forced(cpu.engine(), gpu.engine(), ids, want, tol);
    auto got = greedy(gpu.engine(), ids, 32);
    const auto after = imp::cuda_alloc_stats();
    CHECK(gpu.engine().graphs_active());
    CHECK(after.mallocs == before.mallocs);
    CHECK(after.frees == before.frees);
    // Graph replay runs the same kernels with the same launch shapes as direct launches: the same tokens.
    auto off = greedy(nograph.engine(), ids, 32);
    CHECK(!nograph.engine().graphs_active());
    CHECK(off == got);
}

#define SMOLLM2_DECODE(K, PROMPT)                                                                                  \
    TEST_CASE("gpu: SmolLM2 decode logits match the CPU (teacher-forced), graphs on and off agree, no cudaMalloc " \
              "in decode (prompt " #K " of 3)",                                                                    \
              "[gpu]") {                                                                                           \
        smollm2_decode(PROMPT);                                                                                    \
    }
SMOLLM2_DECODE(1, "The capital of France is")
SMOLLM2_DECODE(2, "Once upon a time, there was a")
SMOLLM2_DECODE(3, "def fibonacci(n):\n    ")
#undef SMOLLM2_DECODE

// [plugin.quant_ggml] fuse_norm / fuse_swiglu, each alone and both (a test case each): the q|k|v and gate|up GEMVs
// (Q4_1, or Q8_0 in the synthetic stand-in; all fused) take the RMSNorm and / or the SwiGLU in (each path of the
// blocks' fallbacks); prompts of up to 8 tokens run through them too. Same bound as the test above.
static void smollm2_fused_gemvs(const char* norm, const char* swiglu) {
    REQUIRE(std::ifstream(smollm2()).good());
    const std::string bf16 = "runtime.kv_dtype=\"bf16\"";
    imp::Session cpu(profile_for(smollm2(), "cpu", {bf16}));
    INFO("fuse_norm " << norm << ", fuse_swiglu " << swiglu);
    std::vector<std::string> extra = {bf16, std::string("plugin.quant_ggml.fuse_norm=") + norm,
                                      std::string("plugin.quant_ggml.fuse_swiglu=") + swiglu};
    imp::Session gpu(profile_for(smollm2(), "cuda", extra));
    extra.push_back("runtime.cuda_graphs=false");
    imp::Session nograph(profile_for(smollm2(), "cuda", extra));
    for (const char* p : {"The capital of France is", "def fibonacci(n):\n    "}) {
        INFO("prompt: " << p);
        auto ids = cpu.tokenizer().encode(p, cpu.tokenizer().add_bos(), false);
        const auto want = greedy(cpu.engine(), ids, 24);
        const auto before = imp::cuda_alloc_stats();
        check_teacher_forced(cpu.engine(), gpu.engine(), ids, want, smollm2_tol());
        auto got = greedy(gpu.engine(), ids, 24);
        CHECK(imp::cuda_alloc_stats().mallocs == before.mallocs);
        CHECK(gpu.engine().graphs_active());
        CHECK(greedy(nograph.engine(), ids, 24) == got);
    }
}

#define SMOLLM2_FUSED(NORM, SWIGLU)                                                                                 \
    TEST_CASE("gpu: SmolLM2 with the fused decode GEMVs (norm, SwiGLU) matches the CPU, graphs on and off agree "  \
              "(fuse_norm " NORM ", fuse_swiglu " SWIGLU ")",                                                       \
              "[gpu]") {                                                                                            \
        smollm2_fused_gemvs(NORM, SWIGLU);                                                                          \
    }
SMOLLM2_FUSED("true", "false")
SMOLLM2_FUSED("false", "true")
SMOLLM2_FUSED("true", "true")
#undef SMOLLM2_FUSED

TEST_CASE("gpu: SmolLM2 with the norm / SwiGLU fused into the GEMMs' input gives the same logits bit for bit",
          "[gpu]") {
    REQUIRE(std::ifstream(smollm2()).good());
    // [plugin.quant_ggml] fuse_gemm_input: prompts of more than 8 tokens take the GEMM path, where the q|k|v and
    // gate|up GEMMs take the RMSNorm and the down GEMM the SwiGLU into their bf16 conversion of x. The conversion
    // repeats the executor's ops bit for bit, so every logit of a long prompt (and of the decode steps after it,
    // which read its KV cache) equals the unfused engine's exactly.
    imp::Session plain(profile_for(smollm2(), "cuda", {"plugin.quant_ggml.fuse_gemm_input=false"})),
        fused(profile_for(smollm2(), "cuda", {"plugin.quant_ggml.fuse_gemm_input=true"}));  // the default
    const std::string text =
        "The history of the city begins in the first century, when a small settlement grew on the banks of the "
        "river. Over the next thousand years it became";
    auto ids = plain.tokenizer().encode(text, plain.tokenizer().add_bos(), false);
    REQUIRE(ids.size() > 16);
    const size_t nv = size_t(plain.engine().desc().n_vocab);
    std::vector<float> a(ids.size() * nv), b(a.size());
    plain.engine().forward(ids.data(), int64_t(ids.size()), a.data(), true);
    fused.engine().forward(ids.data(), int64_t(ids.size()), b.data(), true);
    int64_t differ = 0;
    for (size_t i = 0; i < a.size(); ++i) differ += std::memcmp(&a[i], &b[i], 4) != 0;
    CHECK(differ == 0);
    CHECK(greedy(plain.engine(), ids, 16) == greedy(fused.engine(), ids, 16));
}

TEST_CASE("gpu: the same seed gives the same sampled text", "[gpu]") {
    REQUIRE(std::ifstream(smollm2()).good());
    imp::Session gpu(profile_for(smollm2(), "cuda"));
    auto ids = gpu.tokenizer().encode("Once upon a time", false, false);
    auto run = [&](uint64_t seed) {
        imp::SamplingParams sp;
        sp.temperature = 1.1f;
        sp.top_k = 50;
        sp.top_p = 0.95f;
        sp.min_p = 0.02f;
        sp.seed = seed;
        return imp::test::generate(gpu.engine(), ids, sp, 24);
    };
    auto a = run(11), b = run(11), c = run(12);
    CHECK(a == b);
    CHECK(a != c);
}

TEST_CASE("gpu: decode graphs captured ahead (Engine::capture_decode_graphs) replay batched steps like lazy ones",
          "[gpu]") {
    REQUIRE(std::ifstream(smollm2()).good());
    // Three engines of 8 sequences: all buckets captured at once before any step (a server at start), captured at
    // the first step of each size (lazy), and no graphs. 5 sequences decode together (bucket 8, 3 padding rows).
    // Ahead and lazy replay the same captured kernels over the same metadata: the same tokens, and logits equal but
    // for summation-order noise (bound 1e-3 x max |logit|, ten times tighter than the CPU comparisons). The
    // graph-less engine runs 5 rows, not 8 (other GEMM shapes): its logits within match_logits' 1e-2 bound.
    const std::string seqs = "runtime.max_seqs=8";
    imp::Session ahead(profile_for(smollm2(), "cuda", {seqs})), lazy(profile_for(smollm2(), "cuda", {seqs}));
    imp::Session off(profile_for(smollm2(), "cuda", {seqs, "runtime.cuda_graphs=false"}));
    CHECK(ahead.engine().capture_decode_graphs() == 4);  // buckets 1, 2, 4, 8
    CHECK(ahead.engine().graphs_active());
    CHECK(ahead.engine().capture_decode_graphs() == 0);  // nothing left to capture
    CHECK(off.engine().capture_decode_graphs() == 0);
    CHECK(!off.engine().graphs_active());
    const char* prompts[] = {"The capital of France is", "Once upon a time, there was a", "def fibonacci(n):\n",
                             "1, 2, 3,", "The best way to learn is"};
    const size_t n = std::size(prompts), nv = size_t(ahead.engine().desc().n_vocab);
    // Each engine picks its greedy tokens; `forced` (when given) replaces them, so the graph-less engine is fed the
    // tokens of the captured one and a near-tie cannot send it down another continuation.
    std::vector<int32_t> picked;
    auto run = [&](imp::Engine& e, const std::vector<int32_t>& forced) {
        picked.clear();
        std::vector<std::vector<int32_t>> ids;
        std::vector<imp::SeqId> seq;
        std::vector<imp::SeqWork> work;
        for (const char* p : prompts) {
            ids.push_back(ahead.tokenizer().encode(p, ahead.tokenizer().add_bos(), false));
            seq.push_back(e.add_sequence());
        }
        for (size_t i = 0; i < n; ++i) work.push_back({seq[i], ids[i].data(), int64_t(ids[i].size())});
        std::vector<float> all, lg(n * nv);
        std::vector<int32_t> next(n);
        for (int step = 0; step < 12; ++step) {  // the prompts, then 11 all-decode steps of 5 rows
            e.step(work, lg.data());
            all.insert(all.end(), lg.begin(), lg.end());
            std::vector<imp::SeqSample> rows(n);
            for (auto& r : rows) r.params.temperature = 0;
            e.sample(rows, next.data());
            if (!forced.empty()) std::copy_n(forced.begin() + std::ptrdiff_t(step * n), n, next.begin());
            picked.insert(picked.end(), next.begin(), next.end());
            for (size_t i = 0; i < n; ++i) work[i] = {seq[i], &next[i], 1};
        }
        for (auto s : seq) e.release_sequence(s);
        return all;
    };
    const auto before = imp::cuda_alloc_stats();
    const auto a = run(ahead.engine(), {});
    CHECK(imp::cuda_alloc_stats().mallocs == before.mallocs);
    const auto tokens = picked;
    const auto l = run(lazy.engine(), {});
    CHECK(picked == tokens);
    const auto o = run(off.engine(), tokens);
    for (size_t r = 0; r < a.size() / nv; ++r) {
        const auto ml = imp::test::match_logits(l.data() + r * nv, a.data() + r * nv, int64_t(nv), 1e-3);
        const auto mo = imp::test::match_logits(o.data() + r * nv, a.data() + r * nv, int64_t(nv), 1e-2);
        INFO("row " << r << ": lazy " << ml.describe() << "; graphs off " << mo.describe());
        CHECK(ml.ok);
        CHECK(mo.ok);
    }
}
