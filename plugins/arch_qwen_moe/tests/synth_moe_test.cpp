// The synthetic MoE shapes of synth-gguf (tools/synth_gguf: tiny-qwen3moe, the CI form of qwen3-30b-a3b): the file
// loads through arch_qwen_moe in Q4_K_M (Q4_K / Q6_K experts, F32 routers) and Q8_0 and runs on the CPU, and its
// random routers spread tokens over the experts: over 512 different tokens every expert is picked and none takes
// more than 3x its even share (the histogram of layer 0's router on the normalized token embeddings).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <unistd.h>
#include <string>
#include <vector>

#include "exec/cpu/cpu_executor.h"
#include "imp/blocks/moe.h"
#include "imp/model.h"
#include "imp/quant_format.h"
#include "moe_fixture.h"
#include "runtime/engine.h"

using namespace imp;
using namespace imp::test;

namespace {

std::string synth(const std::string& quant) {
    const std::string out = (std::filesystem::temp_directory_path() /
                             ("imp-moe-test-" + std::to_string(::getpid()) + ".tiny-qwen3moe." + quant + ".gguf"))
                                .string();
    const std::string cmd = std::string(IMP_BINARY_DIR) + "/bin/synth-gguf --shape tiny-qwen3moe --quant " + quant +
                            " --out " + out + " > /dev/null";
    REQUIRE(std::system(cmd.c_str()) == 0);
    return out;
}

}  // namespace

TEST_CASE("synthetic tiny-qwen3moe loads and runs (Q4_K_M, Q8_0)", "[arch_qwen_moe][synth]") {
    for (const std::string quant : {"q4_k_m", "q8_0"}) {
        INFO(quant);
        const std::string path = synth(quant);
        auto src = open_model(path);
        CpuExecutor ex(2);
        EngineOptions opt;
        opt.max_seq_len = 64;
        Engine eng(*src, moe_registry(), ex, opt);
        CHECK(eng.desc().layers.size() == 4);
        CHECK(eng.desc().layers[1]->kind() == "qwen3moe.moe");
        std::vector<int32_t> toks(40);
        for (size_t i = 0; i < toks.size(); ++i) toks[i] = int32_t((i * 37 + 3) % 500);
        std::vector<float> lg(size_t(eng.desc().n_vocab));
        eng.forward(toks.data(), int64_t(toks.size()), lg.data());
        int32_t next = 9;
        eng.forward(&next, 1, lg.data());
        for (float v : lg) REQUIRE(std::isfinite(v));
        std::filesystem::remove(path);
    }
}

TEST_CASE("synthetic routers spread tokens over the experts", "[arch_qwen_moe][synth]") {
    const std::string path = synth("q4_k_m");
    auto src = open_model(path);
    const TensorInfo& emb = src->get("token_embd.weight");
    const TensorInfo& router = src->get("blk.0.ffn_gate_inp.weight");
    REQUIRE(router.type == "F32");
    const int64_t n = 512, E = emb.shape[1], ne = router.shape[0], k = 4;
    WeightSource ws;
    ws.main = &emb;
    std::vector<float> x(static_cast<size_t>(n * E));
    const QuantFormat* ggml = moe_registry().find_format("ggml");
    REQUIRE(ggml);
    ggml->dequantize(ws, 0, n, x.data());
    for (int64_t t = 0; t < n; ++t) {  // RMSNorm (the synthetic norm weights are ~1)
        double ms = 0;
        for (int64_t c = 0; c < E; ++c) ms += double(x[size_t(t * E + c)]) * x[size_t(t * E + c)];
        const float inv = float(1.0 / std::sqrt(ms / double(E) + 1e-6));
        for (int64_t c = 0; c < E; ++c) x[size_t(t * E + c)] *= inv;
    }
    std::vector<float> w(static_cast<size_t>(ne * E));
    std::memcpy(w.data(), router.data, w.size() * 4);
    std::vector<int32_t> ids(static_cast<size_t>(n * k));
    std::vector<float> wts(ids.size());
    CpuExecutor ex(2);
    moe_registry().op<blocks::MoeRouter>()(
        ex, {x.data(), E, w.data(), n, E, int(ne), int(k), true, 1.f, nullptr, ids.data(), wts.data(), nullptr});
    std::vector<int> hist(static_cast<size_t>(ne), 0);
    for (int32_t id : ids) ++hist[size_t(id)];
    std::string h;
    for (int c : hist) h += std::to_string(c) + " ";
    INFO("tokens per expert: " << h);
    const double even = double(n * k) / double(ne);
    for (int c : hist) {
        CHECK(c > 0);
        CHECK(c <= 3 * even);
    }
    std::filesystem::remove(path);
}

TEST_CASE("ggml plans, dequantizes and loads a gate|up stack of two expert tensors per expert", "[arch_qwen_moe][synth]") {
    const std::string path = synth("q4_k_m");
    auto src = open_model(path);
    const TensorInfo& g = src->get("blk.1.ffn_gate_exps.weight");
    const TensorInfo& u = src->get("blk.1.ffn_up_exps.weight");
    const int64_t ne = g.shape[0], f = g.shape[1], cols = g.shape[2];
    WeightRequest req;
    req.name = "blk.1.ffn_gate_up_exps.fused";
    req.role = WeightRole::Experts;
    req.shape = {ne, 2 * f, cols};
    req.source.parts.resize(2);
    req.source.parts[0].main = &g;
    req.source.parts[1].main = &u;
    QuantConfig qc;
    req.config = &qc;
    const QuantFormat* ggml = moe_registry().find_format("ggml");
    CpuExecutor ex(1);
    const WeightPlan p = ggml->plan(req, ex);
    REQUIRE(p.accepted);
    CHECK(p.shape == req.shape);
    CHECK(p.consumed.size() == 2);
    // logical row e * 2f + r: gate row r of expert e for r < f, else up row r - f
    std::vector<float> got(static_cast<size_t>(4 * cols)), want(static_cast<size_t>(cols));
    const int64_t e = ne - 2, row0 = e * 2 * f + f - 2;  // gate rows f-2, f-1 of e, up rows 0, 1 of e
    ggml->dequantize(req.source, row0, 4, got.data());
    WeightSource one;
    for (int i = 0; i < 4; ++i) {
        one.main = i < 2 ? &g : &u;
        ggml->dequantize(one, i < 2 ? e * f + f - 2 + i : e * f + i - 2, 1, want.data());
        for (int64_t c = 0; c < cols; ++c) CHECK(got[size_t(i * cols + c)] == want[size_t(c)]);
    }
    // loaded: expert e's [2f, cols] matrix times x equals the dequantized rows
    auto w = ggml->load_experts(req, ex);
    REQUIRE(w->rows() == 2 * f);
    std::vector<float> x(static_cast<size_t>(cols), 0.f), y(static_cast<size_t>(2 * f));
    x[5] = 1.f;  // picks column 5
    const int32_t id = int32_t(e);
    ExpertMatmul m;
    m.x = x.data();
    m.x_stride = cols;
    m.ids = &id;
    m.n_tokens = 1;
    m.y = y.data();
    m.y_stride = 2 * f;
    w->grouped_matmul(ex, m);
    std::vector<float> all(static_cast<size_t>(2 * f * cols));
    ggml->dequantize(req.source, e * 2 * f, 2 * f, all.data());
    for (int64_t r = 0; r < 2 * f; ++r) CHECK(y[size_t(r)] == Approx(all[size_t(r * cols + 5)]).margin(1e-6));
    std::filesystem::remove(path);
}
