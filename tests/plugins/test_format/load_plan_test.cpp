// The engine's load plan (core/src/runtime/load_plan.h) with the packed4 test format: a three-tensor packed weight
// whose file shape differs from its logical one plans, loads and multiplies correctly; fusion keeps each part's
// scales; format choice by priority, by the profile's list, ties and refusals; min_compute_capability; the
// model-level quantization config reaching the format.
#include <catch2/catch.hpp>

#include <cmath>

#include "common/max_err.h"
#include "exec/cpu/cpu_executor.h"
#include "ggml_format.h"
#include "imp/error.h"
#include "imp/registry.h"
#include "model_folder.h"
#include "packed_format.h"
#include "plugin/loader.h"
#include "runtime/load_plan.h"

using namespace imp;
using namespace imp::testfmt;

namespace {

constexpr int64_t kVocab = 16, kEmbd = 64;

std::vector<float> random_x(int64_t n, std::mt19937& rng) {
    std::normal_distribution<float> nd(0.f, 1.f);
    std::vector<float> x(static_cast<size_t>(n));
    for (auto& v : x) v = nd(rng) + 0.01f;
    return x;
}

// Largest |y - W x| / (sum |w x|) over the tokens (W [rows, cols] row-major).
double matmul_error(const Weight& w, Executor& ex, const std::vector<float>& values, const std::vector<float>& x,
                    int64_t n_tokens) {
    const int64_t rows = w.rows(), cols = w.cols();
    std::vector<float> y(static_cast<size_t>(n_tokens * rows));
    w.matmul(ex, x.data(), cols, y.data(), rows, n_tokens, false);
    double worst = 0;
    for (int64_t t = 0; t < n_tokens; ++t)
        for (int64_t r = 0; r < rows; ++r) {
            double ref = 0, mag = 0;
            for (int64_t c = 0; c < cols; ++c) {
                const double p = double(values[size_t(r * cols + c)]) * x[size_t(t * cols + c)];
                ref += p, mag += std::fabs(p);
            }
            worst = imp::test::worst_of(worst, std::fabs(y[size_t(t * rows + r)] - ref) / mag);
        }
    return worst;
}

std::string plan_error(const ModelSource& src, const Registry& reg, Executor& ex, const ModelDesc& d,
                       const PlanOptions& opt = {}) {
    try {
        plan_weights(src, reg, ex, d, opt);
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

bool has(const std::string& s, const std::string& sub) { return s.find(sub) != std::string::npos; }

const PlannedWeight& planned(const LoadPlan& lp, const std::string& name) {
    for (const auto& w : lp.weights)
        if (w.spec.name == name) return w;
    FAIL("no planned weight " << name);
    throw;
}

// A folder with the packed embedding, an F32 norm, and `extra` tensors.
std::unique_ptr<ModelSource> folder_model(ModelFolder& f, std::vector<FileTensor> extra, std::mt19937& rng,
                                          std::vector<float>* emb_values = nullptr) {
    Packed emb = make_packed("emb", kVocab, kEmbd, rng);
    if (emb_values) *emb_values = emb.values;
    extra.insert(extra.end(), emb.tensors.begin(), emb.tensors.end());
    extra.push_back(make_f32("norm.weight", {kEmbd}, 1.f));
    f.write(extra);
    return open_model(f.path());
}

}  // namespace

TEST_CASE("load plan: a three-tensor packed weight plans by its logical shape, loads and multiplies",
          "[load_plan][formats]") {
    std::mt19937 rng(1);
    ModelFolder folder("packed");
    Packed o = make_packed("blk.0.attn_output", 32, kEmbd, rng);
    std::vector<FileTensor> ts = o.tensors;
    ts.push_back(make_f32("blk.0.attn_output.input_scale", {}, 0.5f));  // under the prefix, consumed by nobody
    ts.push_back(make_f32("unrelated.tensor", {3}, 1.f));                // consumed by nobody
    std::vector<float> emb_values;
    auto src = folder_model(folder, ts, rng, &emb_values);
    Registry reg;
    reg.add_format(std::make_unique<PackedFormat>());
    CpuExecutor ex(2);
    const ModelDesc d = model_desc(kVocab, kEmbd, {matrix_spec("blk.0.attn_output.weight", 32, kEmbd)});
    LoadPlan lp = plan_weights(*src, reg, ex, d, {});
    CHECK(ex.bytes_allocated() == 0);  // planning allocates nothing
    const PlannedWeight& w = planned(lp, "blk.0.attn_output.weight");
    REQUIRE(w.format);
    CHECK(w.format->name() == "packed4");
    CHECK(w.request.role == WeightRole::Linear);
    CHECK(w.request.source.main->shape == std::vector<int64_t>{32, 32});  // U8 [out, in/2] ...
    CHECK(w.plan.shape == std::vector<int64_t>{32, 64});                  // ... reads as [out, in]
    CHECK(w.request.source.aux.size() == 3);  // weight_scale, weight_scale_2, input_scale under the prefix
    CHECK(w.plan.consumed.size() == 3);       // input_scale is not consumed
    CHECK(w.device_bytes == 32 * 32 + 32 * 4);
    CHECK(planned(lp, "emb.weight").request.role == WeightRole::Embedding);  // tied LM head: one weight
    CHECK(lp.weight_bytes == w.device_bytes + planned(lp, "emb.weight").device_bytes + 64 * 4);

    Weights weights;
    load_weights(*src, lp, ex, weights);
    const Weight* m = weights.matrix("blk.0.attn_output.weight");
    REQUIRE(m);
    CHECK(m->rows() == 32);
    CHECK(m->cols() == 64);
    const auto x = random_x(3 * kEmbd, rng);
    CHECK(matmul_error(*m, ex, o.values, x, 3) < 1e-6);
    // The reference dequantizer reads the same source.
    std::vector<float> dq(static_cast<size_t>(5 * kEmbd));
    w.format->dequantize(w.request.source, 7, 5, dq.data());
    CHECK(std::equal(dq.begin(), dq.end(), o.values.begin() + 7 * kEmbd));
    // Embedding rows.
    const Weight* e = weights.matrix("emb.weight");
    const int32_t ids[2] = {3, 15};
    std::vector<float> rows(2 * kEmbd);
    e->get_rows(ex, ids, 2, rows.data());
    CHECK(std::equal(rows.begin(), rows.begin() + kEmbd, emb_values.begin() + 3 * kEmbd));
    CHECK(std::equal(rows.begin() + kEmbd, rows.end(), emb_values.begin() + 15 * kEmbd));

    // The packed file shape is not the declared one: declared as its raw [32, 32], the plan's [32, 64] is refused.
    const ModelDesc raw = model_desc(kVocab, kEmbd, {matrix_spec("blk.0.attn_output.weight", 32, 32)});
    const std::string err = plan_error(*src, reg, ex, raw);
    CHECK(has(err, "weight 'blk.0.attn_output.weight' ('blk.0.attn_output.weight' U8 [32, 32] + input_scale F32 [] + "
                   "weight_scale F8_E4M3 [32, 4] + weight_scale_2 F32 [])"));
    CHECK(has(err, "reads as [32, 64] through quant format packed4, expected [32, 32] (test.specs (blk.0))"));
}

TEST_CASE("load plan: a weight no format takes names the tensor, its type and every format's reason",
          "[load_plan][formats]") {
    std::mt19937 rng(2);
    ModelFolder folder("refused");
    auto src = folder_model(folder, make_packed("blk.0.ffn_up", 32, kEmbd, rng).tensors, rng);
    Registry reg;
    reg.add_format(std::make_unique<ggml::GgmlFormat>());
    CpuExecutor ex(1);
    const ModelDesc d = model_desc(kVocab, kEmbd, {matrix_spec("blk.0.ffn_up.weight", 32, kEmbd)});
    const std::string err = plan_error(*src, reg, ex, d);
    CHECK(has(err, folder.path() + ": no loaded quant format takes weight 'emb.weight' ('emb.weight' U8 [16, 32] + "
                   "weight_scale F8_E4M3 [16, 4] + weight_scale_2 F32 []) as embedding [16, 64] for token embedding: "
                   "ggml: type U8 is not a ggml type"));
    Registry none;
    CHECK(has(plan_error(*src, none, ex, d), "(no quant formats loaded)"));
    // A missing weight is named as such; a weight whose prefix holds tensors but no main one goes to the formats.
    Registry packed;
    packed.add_format(std::make_unique<PackedFormat>());
    const ModelDesc missing = model_desc(kVocab, kEmbd, {matrix_spec("blk.0.ffn_down.weight", 32, kEmbd)});
    CHECK(plan_error(*src, packed, ex, missing) ==
          folder.path() + ": tensor 'blk.0.ffn_down.weight' needed by test.specs (blk.0) is missing");
    const ModelDesc packed_only = model_desc(kVocab, kEmbd, {matrix_spec("blk.0.ffn_up.weight_packed", 32, kEmbd)});
    CHECK(has(plan_error(*src, packed, ex, packed_only), "tensor 'blk.0.ffn_up.weight_packed' needed by"));
    const ModelDesc scales_only = model_desc(kVocab, kEmbd, {matrix_spec("blk.0.ffn_up", 32, kEmbd)});
    CHECK(has(plan_error(*src, packed, ex, scales_only),
              "no loaded quant format takes weight 'blk.0.ffn_up' (no tensor of that name + weight U8 [32, 32] + "
              "weight_scale F8_E4M3 [32, 4] + weight_scale_2 F32 []) as linear [32, 64] for test.specs (blk.0): "
              "packed4: no tensor of that name"));
}

TEST_CASE("load plan: fusion keeps each part's scales", "[load_plan][formats]") {
    std::mt19937 rng(3);
    ModelFolder folder("fused");
    // q, k, v with different global scales (and k with F32 block scales).
    const Packed q = make_packed("blk.0.attn_q", 32, kEmbd, rng, 0, false, 0.02f);
    const Packed k = make_packed("blk.0.attn_k", 16, kEmbd, rng, 0, true, 0.05f);
    const Packed v = make_packed("blk.0.attn_v", 16, kEmbd, rng, 0, false, 0.09f);
    std::vector<FileTensor> ts;
    for (const auto* p : {&q, &k, &v}) ts.insert(ts.end(), p->tensors.begin(), p->tensors.end());
    auto src = folder_model(folder, ts, rng);
    Registry reg;
    reg.add_format(std::make_unique<PackedFormat>());
    CpuExecutor ex(2);
    WeightSpec qkv = matrix_spec("blk.0.attn_qkv", 64, kEmbd);
    qkv.concat = {"blk.0.attn_q.weight", "blk.0.attn_k.weight", "blk.0.attn_v.weight"};
    const ModelDesc d = model_desc(kVocab, kEmbd,
                                   {matrix_spec("blk.0.attn_q.weight", 32, kEmbd), matrix_spec("blk.0.attn_k.weight", 16, kEmbd),
                                    matrix_spec("blk.0.attn_v.weight", 16, kEmbd), qkv});
    LoadPlan fused = plan_weights(*src, reg, ex, d, {});
    CHECK(fused.fused == 1);
    const PlannedWeight& f = planned(fused, "blk.0.attn_qkv");
    REQUIRE(f.request.source.parts.size() == 3);
    for (const auto& part : f.request.source.parts) CHECK(part.aux.size() == 2);  // each part's own two scales
    CHECK(f.plan.consumed.size() == 9);
    CHECK(planned(fused, "blk.0.attn_q.weight").absorbed);
    PlanOptions off;
    off.fuse = false;
    LoadPlan unfused = plan_weights(*src, reg, ex, d, off);
    CHECK(unfused.fused == 0);
    CHECK(fused.weight_bytes == unfused.weight_bytes);

    Weights wf, wu;
    load_weights(*src, fused, ex, wf);
    load_weights(*src, unfused, ex, wu);
    REQUIRE(wf.matrix("blk.0.attn_qkv"));
    CHECK_FALSE(wf.matrix("blk.0.attn_q.weight"));
    CHECK_FALSE(wu.matrix("blk.0.attn_qkv"));
    const auto x = random_x(2 * kEmbd, rng);
    std::vector<float> yf(2 * 64), yu(2 * 64);
    wf.matrix("blk.0.attn_qkv")->matmul(ex, x.data(), kEmbd, yf.data(), 64, 2, false);
    int64_t off_rows = 0;
    for (const auto* n : {"blk.0.attn_q.weight", "blk.0.attn_k.weight", "blk.0.attn_v.weight"}) {
        const Weight* w = wu.matrix(n);
        w->matmul(ex, x.data(), kEmbd, yu.data() + off_rows, 64, 2, false);
        off_rows += w->rows();
    }
    CHECK(yf == yu);  // same decode, same order: bit-equal
    std::vector<float> all(q.values);
    all.insert(all.end(), k.values.begin(), k.values.end());
    all.insert(all.end(), v.values.begin(), v.values.end());
    CHECK(matmul_error(*wf.matrix("blk.0.attn_qkv"), ex, all, x, 2) < 1e-6);
}

TEST_CASE("load plan: format choice by priority and by the profile's list: a tie is an error naming both",
          "[load_plan][formats]") {
    std::mt19937 rng(4);
    ModelFolder folder("choice");
    auto src = folder_model(folder, make_packed("blk.0.ffn_up", 32, kEmbd, rng).tensors, rng);
    CpuExecutor ex(1);
    const ModelDesc d = model_desc(kVocab, kEmbd, {matrix_spec("blk.0.ffn_up.weight", 32, kEmbd)});

    Registry tie;
    tie.add_format(std::make_unique<PackedFormat>("packed_a", 0));
    tie.add_format(std::make_unique<PackedFormat>("packed_b", 0));
    const std::string err = plan_error(*src, tie, ex, d);
    CHECK(has(err, "quant formats 'packed_a' and 'packed_b' (both priority 0) both take weight 'emb.weight'"));
    CHECK(has(err, "list the one to use in the profile's [model] formats"));
    CHECK_THROWS_WITH(tie.add_format(std::make_unique<PackedFormat>("packed_a", 5)),
                      "quant format 'packed_a' registered twice (by core and core)");

    PlanOptions bound;
    bound.formats = {"packed_b"};
    CHECK(planned(plan_weights(*src, tie, ex, d, bound), "blk.0.ffn_up.weight").format->name() == "packed_b");
    bound.formats = {"ggml", "packed_a"};
    CHECK(plan_error(*src, tie, ex, d, bound) ==
          "key 'model.formats': unknown quant format 'ggml' (registered: packed_a, packed_b)");
    bound.formats_where = "x.toml:3";  // where the profile set them
    CHECK(plan_error(*src, tie, ex, d, bound) ==
          "x.toml:3: key 'model.formats': unknown quant format 'ggml' (registered: packed_a, packed_b)");

    Registry ranked;
    ranked.add_format(std::make_unique<PackedFormat>("packed_lo", 1));
    ranked.add_format(std::make_unique<PackedFormat>("packed_hi", 2));
    ranked.add_format(std::make_unique<PackedFormat>("packed_lo2", 1));
    CHECK(planned(plan_weights(*src, ranked, ex, d, {}), "blk.0.ffn_up.weight").format->name() == "packed_hi");
    bound.formats = {"packed_lo", "packed_hi"};  // the list wins over priority
    CHECK(planned(plan_weights(*src, ranked, ex, d, bound), "blk.0.ffn_up.weight").format->name() == "packed_lo");
}

TEST_CASE("load plan: min_compute_capability is enforced before anything is uploaded", "[load_plan][formats]") {
    std::mt19937 rng(5);
    ModelFolder folder("capability");
    auto src = folder_model(folder, make_packed("blk.0.ffn_up", 32, kEmbd, rng).tensors, rng);
    CpuExecutor ex(1);
    const ModelDesc d = model_desc(kVocab, kEmbd, {matrix_spec("blk.0.ffn_up.weight", 32, kEmbd)});
    const PackedFormat sm100("packed_sm100", 5, 100);
    CHECK(capability_problem(sm100, 0) == "");  // not a CUDA device
    CHECK(capability_problem(sm100, 100) == "");
    CHECK(capability_problem(sm100, 120) == "");
    CHECK(capability_problem(sm100, 90) == "needs compute capability 10.0 or newer, the device has 9.0");
    CHECK(device_compute_capability(ex) == 0);

    Registry reg;
    reg.add_format(std::make_unique<PackedFormat>("packed_sm100", 5, 100));
    PlanOptions h100;
    h100.compute_capability = 90;
    const std::string err = plan_error(*src, reg, ex, d, h100);
    CHECK(has(err, "no loaded quant format takes weight 'emb.weight'"));
    CHECK(has(err, "packed_sm100: needs compute capability 10.0 or newer, the device has 9.0"));
    CHECK(ex.bytes_allocated() == 0);
    // A variant for older devices registered beside it takes the weights there; the native one wins on sm_100.
    reg.add_format(std::make_unique<PackedFormat>("packed_sm80", 1, 80));
    CHECK(planned(plan_weights(*src, reg, ex, d, h100), "blk.0.ffn_up.weight").format->name() == "packed_sm80");
    PlanOptions b200;
    b200.compute_capability = 100;
    CHECK(planned(plan_weights(*src, reg, ex, d, b200), "blk.0.ffn_up.weight").format->name() == "packed_sm100");
}

TEST_CASE("load plan: the model's quantization config reaches the format", "[load_plan][formats]") {
    std::mt19937 rng(6);
    ModelFolder folder("qconfig");
    folder.text("config.json", R"({"model_type": "test", "quantization_config": {"quant_method": "modelopt",
        "quant_algo": "NVFP4", "group_size": 16, "ignore": ["lm_head"]}})");
    folder.text("hf_quant_config.json", R"({"producer": {"name": "modelopt"}, "quantization": {"quant_algo": "NVFP4",
        "exclude_modules": ["blk.*.ffn_gate"]}})");
    std::vector<FileTensor> ts = make_packed("blk.0.ffn_up", 32, kEmbd, rng).tensors;
    const auto gate = make_packed("blk.0.ffn_gate", 32, kEmbd, rng).tensors;
    ts.insert(ts.end(), gate.begin(), gate.end());
    auto src = folder_model(folder, ts, rng);
    CHECK(src->metadata().get_string("hf_quant_config.quantization.quant_algo") == "NVFP4");
    Registry reg;
    reg.add_format(std::make_unique<PackedFormat>());
    CpuExecutor ex(1);
    const ModelDesc up = model_desc(kVocab, kEmbd, {matrix_spec("blk.0.ffn_up.weight", 32, kEmbd)});
    const LoadPlan lp = plan_weights(*src, reg, ex, up, {});
    const QuantConfig* qc = planned(lp, "blk.0.ffn_up.weight").request.config;
    REQUIRE(qc);
    CHECK(qc->algo == "NVFP4");
    CHECK(qc->exclude == std::vector<std::string>{"lm_head", "blk.*.ffn_gate"});
    const ModelDesc both = model_desc(kVocab, kEmbd, {matrix_spec("blk.0.ffn_gate.weight", 32, kEmbd)});
    CHECK(has(plan_error(*src, reg, ex, both), "packed4: module 'blk.0.ffn_gate' is excluded by the quantization config"));
}

TEST_CASE("load plan: the test format loads as a plugin", "[load_plan][plugin]") {
    Registry reg;
    PluginLoader loader(reg, {std::string(IMP_BINARY_DIR) + "/test-plugins-format"});
    CHECK(loader.load("test_format").kind == PluginKind::Quant);
    REQUIRE(reg.find_format("packed4"));
    CHECK(reg.find_format("packed4")->types() == std::vector<std::string>{"U8+F8_E4M3+F32", "U8+F32+F32"});
}
