// Expert weights through the load plan: a stack [n_expert, rows, cols] from one 3-D tensor (packed4 stack, HF fused
// BF16 "mlp.experts.gate_up_proj"), and gathered from per-expert 2-D tensors (packed4 with each expert's own
// scales, BF16 through quant_ggml's CPU experts) into one weight; WeightSet::experts gives it to the layer, and its
// grouped matmul equals a dense per-expert reference.
#include <catch2/catch.hpp>

#include <cmath>

#include "common/max_err.h"
#include "exec/cpu/cpu_executor.h"
#include "ggml_format.h"
#include "imp/error.h"
#include "imp/registry.h"
#include "model_folder.h"
#include "packed_format.h"
#include "runtime/load_plan.h"

using namespace imp;
using namespace imp::testfmt;

namespace {

constexpr int64_t kVocab = 16, kEmbd = 64, kExperts = 4;

// values: [n_expert][rows][cols]. Runs a grouped matmul of 3 tokens, top-2, with and without routing weights, and
// returns the largest error relative to sum |w x|.
double grouped_error(const ExpertWeights& e, Executor& ex, const std::vector<float>& values, std::mt19937& rng) {
    const int64_t rows = e.rows(), cols = e.cols(), n_tokens = 3, top_k = 2;
    std::normal_distribution<float> nd(0.f, 1.f);
    std::vector<float> x(static_cast<size_t>(n_tokens * cols));
    for (auto& v : x) v = nd(rng) + 0.01f;
    const std::vector<int32_t> ids = {3, 0, 1, 1, 2, 3};
    const std::vector<float> weights = {0.75f, 0.25f, 0.5f, 0.5f, 0.125f, 0.875f};
    double worst = 0;
    for (bool weighted : {false, true}) {
        ExpertMatmul m;
        m.x = x.data();
        m.x_stride = cols;
        m.ids = ids.data();
        m.weights = weighted ? weights.data() : nullptr;
        m.n_tokens = n_tokens;
        m.top_k = top_k;
        std::vector<float> y(static_cast<size_t>(n_tokens * top_k * rows));
        m.y = y.data();
        m.y_stride = rows;
        e.grouped_matmul(ex, m);
        for (int64_t t = 0; t < n_tokens; ++t)
            for (int64_t r = 0; r < rows; ++r) {
                double ref_sum = 0, mag_sum = 0;
                for (int64_t j = 0; j < top_k; ++j) {
                    const int64_t id = ids[size_t(t * top_k + j)];
                    double ref = 0, mag = 0;
                    for (int64_t c = 0; c < cols; ++c) {
                        const double p = double(values[size_t((id * rows + r) * cols + c)]) * x[size_t(t * cols + c)];
                        ref += p, mag += std::fabs(p);
                    }
                    if (!weighted) {
                        const double got = y[size_t((t * top_k + j) * rows + r)];
                        worst = imp::test::worst_of(worst, std::fabs(got - ref) / mag);
                        continue;
                    }
                    ref_sum += weights[size_t(t * top_k + j)] * ref;
                    mag_sum += weights[size_t(t * top_k + j)] * mag;
                }
                if (weighted)
                    worst = imp::test::worst_of(worst, std::fabs(double(y[size_t(t * rows + r)]) - ref_sum) / mag_sum);
            }
    }
    return worst;
}

struct Loaded {
    std::unique_ptr<ModelSource> src;
    LoadPlan plan;
    Weights weights;
};

// Writes the tensors (plus a BF16 embedding and an F32 norm), plans the model with one Experts spec and loads it.
void load(Loaded& out, ModelFolder& folder, std::vector<FileTensor> ts, const WeightSpec& spec, Executor& ex,
          std::mt19937& rng) {
    std::vector<float> emb;
    ts.push_back(make_bf16("emb.weight", {kVocab, kEmbd}, rng, emb));
    ts.push_back(make_f32("norm.weight", {kEmbd}, 1.f));
    folder.write(ts);
    out.src = open_model(folder.path());
    static const std::unique_ptr<Registry> reg = [] {
        auto r = std::make_unique<Registry>();
        r->add_format(std::make_unique<ggml::GgmlFormat>());
        r->add_format(std::make_unique<PackedFormat>());
        return r;
    }();
    const ModelDesc d = model_desc(kVocab, kEmbd, {spec});
    out.plan = plan_weights(*out.src, *reg, ex, d, {});
    load_weights(*out.src, out.plan, ex, out.weights);
}

const PlannedWeight& planned(const LoadPlan& lp, const std::string& name) {
    for (const auto& w : lp.weights)
        if (w.spec.name == name) return w;
    FAIL("no planned weight " << name);
    throw;
}

}  // namespace

TEST_CASE("load plan: experts from a 3-D packed stack", "[load_plan][experts]") {
    std::mt19937 rng(11);
    ModelFolder folder("experts_stack");
    const Packed p = make_packed("blk.0.ffn_gate_exps", 8, kEmbd, rng, kExperts);
    CpuExecutor ex(2);
    Loaded l;
    load(l, folder, p.tensors, experts_spec("blk.0.ffn_gate_exps.weight", kExperts, 8, kEmbd), ex, rng);
    const PlannedWeight& w = planned(l.plan, "blk.0.ffn_gate_exps.weight");
    CHECK(w.request.role == WeightRole::Experts);
    CHECK(w.format->name() == "packed4");
    CHECK(w.request.source.main->shape == std::vector<int64_t>{kExperts, 8, 32});
    CHECK(w.plan.shape == std::vector<int64_t>{kExperts, 8, kEmbd});
    CHECK_FALSE(l.weights.matrix("blk.0.ffn_gate_exps.weight"));
    const ExpertWeights* e = l.weights.experts("blk.0.ffn_gate_exps.weight");
    REQUIRE(e);
    CHECK(e->n_expert() == kExperts);
    CHECK(e->rows() == 8);
    CHECK(e->cols() == kEmbd);
    CHECK(e->bytes() == w.device_bytes);
    CHECK(grouped_error(*e, ex, p.values, rng) < 1e-6);
    std::vector<float> dq(static_cast<size_t>(3 * kEmbd));
    w.format->dequantize(w.request.source, 15, 3, dq.data());  // expert 1's last row, expert 2's first two
    CHECK(std::equal(dq.begin(), dq.end(), p.values.begin() + 15 * kEmbd));
}

TEST_CASE("load plan: experts gathered from per-expert tensors, each with its own scales", "[load_plan][experts]") {
    std::mt19937 rng(12);
    ModelFolder folder("experts_each");
    std::vector<FileTensor> ts;
    std::vector<float> values;
    for (int e = 0; e < kExperts; ++e) {
        const Packed p = make_packed("model.layers.0.mlp.experts." + std::to_string(e) + ".down_proj", 8, kEmbd, rng);
        ts.insert(ts.end(), p.tensors.begin(), p.tensors.end());
        values.insert(values.end(), p.values.begin(), p.values.end());
    }
    CpuExecutor ex(2);
    Loaded l;
    const std::string pattern = "model.layers.0.mlp.experts.{e}.down_proj.weight";
    load(l, folder, ts, experts_spec("model.layers.0.mlp.experts.down_proj", kExperts, 8, kEmbd, pattern), ex, rng);
    const PlannedWeight& w = planned(l.plan, "model.layers.0.mlp.experts.down_proj");
    REQUIRE(w.request.source.experts.size() == kExperts);
    CHECK(w.request.source.experts[2].main->name == "model.layers.0.mlp.experts.2.down_proj.weight");
    CHECK(w.request.source.experts[2].aux.size() == 2);
    CHECK(w.plan.consumed.size() == 3 * kExperts);
    const ExpertWeights* e = l.weights.experts("model.layers.0.mlp.experts.down_proj");
    REQUIRE(e);
    CHECK(e->n_expert() == kExperts);
    CHECK(grouped_error(*e, ex, values, rng) < 1e-6);
    CHECK(ex.bytes_allocated() >= e->bytes());

    // A weight name that is a prefix of the per-expert tensors still gathers them (they are not its aux tensors).
    ModelFolder prefix("experts_prefix");
    Loaded l2;
    load(l2, prefix, ts, experts_spec("model.layers.0.mlp.experts", kExperts, 8, kEmbd, pattern), ex, rng);
    REQUIRE(l2.weights.experts("model.layers.0.mlp.experts"));
    CHECK(planned(l2.plan, "model.layers.0.mlp.experts").request.source.experts.size() == kExperts);

    // A missing expert names itself.
    ModelFolder gap("experts_gap");
    ts.erase(ts.begin() + 6, ts.begin() + 9);  // expert 2's three tensors
    Loaded bad;
    CHECK_THROWS_WITH(load(bad, gap, ts, experts_spec("x", kExperts, 8, kEmbd, pattern), ex, rng),
                      Catch::Contains("expert tensor 'model.layers.0.mlp.experts.2.down_proj.weight' (expert 2 of 4) "
                                      "needed by test.specs (model.layers.0) is missing"));
}

TEST_CASE("load plan: HF fused 3-D experts and BF16 per-expert tensors through quant_ggml", "[load_plan][experts]") {
    std::mt19937 rng(13);
    CpuExecutor ex(2);
    // transformers 5 Qwen3-MoE: gate_up_proj [n_expert, 2 * ff, n_embd] (rows = gate | up), no ".weight".
    ModelFolder folder("experts_hf");
    std::vector<float> gate_up;
    const FileTensor t = make_bf16("model.layers.0.mlp.experts.gate_up_proj", {kExperts, 16, kEmbd}, rng, gate_up);
    Loaded l;
    load(l, folder, {t}, experts_spec("model.layers.0.mlp.experts.gate_up_proj", kExperts, 16, kEmbd), ex, rng);
    const PlannedWeight& w = planned(l.plan, "model.layers.0.mlp.experts.gate_up_proj");
    CHECK(w.format->name() == "ggml");
    CHECK(w.plan.type == "BF16");
    CHECK(w.device_bytes == kExperts * 16 * kEmbd * 2);
    const ExpertWeights* e = l.weights.experts("model.layers.0.mlp.experts.gate_up_proj");
    REQUIRE(e);
    CHECK(e->rows() == 16);
    CHECK(e->type() == "BF16");
    CHECK(grouped_error(*e, ex, gate_up, rng) < 1e-5);

    // Per-expert BF16 2-D tensors gathered into one allocation.
    ModelFolder each("experts_bf16");
    std::vector<FileTensor> ts;
    std::vector<float> values;
    for (int i = 0; i < kExperts; ++i) {
        std::vector<float> v;
        ts.push_back(make_bf16("model.layers.0.mlp.experts." + std::to_string(i) + ".gate_proj.weight", {8, kEmbd}, rng, v));
        values.insert(values.end(), v.begin(), v.end());
    }
    Loaded g;
    load(g, each, ts,
         experts_spec("model.layers.0.mlp.experts.gate_proj", kExperts, 8, kEmbd,
                      "model.layers.0.mlp.experts.{e}.gate_proj.weight"),
         ex, rng);
    const ExpertWeights* ge = g.weights.experts("model.layers.0.mlp.experts.gate_proj");
    REQUIRE(ge);
    CHECK(ge->bytes() == kExperts * 8 * kEmbd * 2);
    CHECK(planned(g.plan, "model.layers.0.mlp.experts.gate_proj").plan.consumed.size() == kExperts);
    CHECK(grouped_error(*ge, ex, values, rng) < 1e-5);

    // Declared with the wrong expert count: the logical shape check names both.
    ModelFolder wrong("experts_wrong");
    Loaded bad;
    CHECK_THROWS_WITH(load(bad, wrong, {t}, experts_spec("model.layers.0.mlp.experts.gate_up_proj", 8, 16, kEmbd), ex, rng),
                      Catch::Contains("reads as [4, 16, 64] through quant format ggml, expected [8, 16, 64]"));
}
