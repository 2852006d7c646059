// Recurrent state through the engine on the CPU executor, with a test layer whose state is a per-sequence running
// sum of its input rows (two typed components: the sum and a row count). Sequences stepped together do not see each
// other's state, a new (or reused) sequence starts from a zeroed slot, copy_state forks a sequence, and the memory
// plan counts max_seqs + 1 slots (the last one takes padding rows).
#include <catch2/catch.hpp>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "block_harness.h"
#include "exec/cpu/cpu_executor.h"
#include "fixture_registry.h"
#include "imp/arch.h"
#include "imp/error.h"
#include "runtime/engine.h"

using namespace imp;

namespace {

constexpr int64_t kEmbd = 8, kVocab = 16;

// hidden[t] += sum of this sequence's rows so far (this one included); count = rows seen.
class AccumLayer final : public Layer {
public:
    std::string kind() const override { return "test.accum"; }
    std::vector<WeightSpec> weight_specs() const override { return {}; }
    void bind(const WeightSet&) override {}
    StateSpec state() const override {
        StateSpec s;
        s.kind = StateSpec::Kind::Recurrent;
        s.components = {{"sum", {kEmbd}, DType::F32}, {"count", {1}, DType::F32}};
        return s;
    }
    int64_t scratch_floats(int64_t) const override { return 0; }
    void forward(LayerContext& ctx, float* hidden) override {  // CPU executor: device pointers are host pointers
        const StepBatch& b = ctx.batch;
        const StateSpec st = state();
        for (int32_t s = 0; s < b.n_seqs; ++s) {
            auto* slot = static_cast<uint8_t*>(ctx.state.base) + uint64_t(b.state_slots[s]) * ctx.state.slot_bytes;
            auto* sum = reinterpret_cast<float*>(slot + st.component_offset(0));
            auto* count = reinterpret_cast<float*>(slot + st.component_offset(1));
            for (int32_t t = b.query_start_loc[s]; t < b.query_start_loc[s + 1]; ++t) {
                for (int64_t i = 0; i < kEmbd; ++i) {
                    sum[i] += hidden[t * kEmbd + i];
                    hidden[t * kEmbd + i] += sum[i];
                }
                *count += 1.f;
            }
        }
    }
};

class AccumArch final : public Arch {
public:
    std::string name() const override { return "test_accum"; }
    std::vector<std::string> architectures() const override { return {"blocks-test"}; }
    bool matches(const ModelSource& src) const override { return src.architecture() == "blocks-test"; }
    ModelDesc build(const ModelSource&, const Registry&) const override {
        ModelDesc d;
        d.arch = name();
        d.n_vocab = kVocab;
        d.n_embd = kEmbd;
        d.tok_embd = "tok";
        d.output_norm = "norm";
        d.output = "out";
        d.hparams = std::make_unique<Metadata>();
        d.layers.push_back(std::make_unique<AccumLayer>());
        d.layers.push_back(std::make_unique<AccumLayer>());
        return d;
    }
};

std::vector<float> rnd(size_t n, uint32_t seed) {
    std::mt19937 g(seed);
    std::uniform_real_distribution<float> d(-1.f, 1.f);
    std::vector<float> v(n);
    for (auto& x : v) x = d(g);
    return v;
}

Registry& accum_registry() {
    static Registry* reg = [] {
        Registry& r = test::registry_with({"quant_ggml"});
        r.add_arch(std::make_unique<AccumArch>());
        return &r;
    }();
    return *reg;
}

}  // namespace

TEST_CASE("recurrent state: sequences keep their own slots, new ones start at zero, copy_state forks", "[state]") {
    blocks_test::HostModel model;
    model.add("tok", {kVocab, kEmbd}, rnd(size_t(kVocab * kEmbd), 1));
    model.add("norm", {kEmbd}, rnd(size_t(kEmbd), 2));
    model.add("out", {kVocab, kEmbd}, rnd(size_t(kVocab * kEmbd), 3));
    CpuExecutor ex(1);
    EngineOptions opt;
    opt.max_seq_len = 64;
    opt.max_seqs = 3;
    Engine e(model, accum_registry(), ex, opt);
    // Two layers x (max_seqs + 1) slots of (8 floats | 1 float), each component on a 256-byte boundary.
    CHECK(e.plan().state == 2 * 512 * 4);
    const size_t V = size_t(kVocab);
    const std::vector<int32_t> a{1, 2, 3, 4, 5}, b{9, 8, 7};

    // Each alone.
    std::vector<float> la(V), lb(V);
    SeqId s = e.add_sequence();
    e.step(std::vector<SeqWork>{{s, a.data(), 5}}, la.data());
    e.release_sequence(s);
    s = e.add_sequence();  // reuses the id: its slot must be zero again
    e.step(std::vector<SeqWork>{{s, b.data(), 3}}, lb.data());
    e.release_sequence(s);

    // Together, in pieces: a's state must not leak into b's or back.
    const SeqId x = e.add_sequence(), y = e.add_sequence();
    e.step(std::vector<SeqWork>{{x, a.data(), 2}, {y, b.data(), 1}});
    std::vector<float> both(2 * V);
    e.step(std::vector<SeqWork>{{y, b.data() + 1, 2}, {x, a.data() + 2, 3}}, both.data());
    CHECK(std::vector<float>(both.begin(), both.begin() + long(V)) == lb);
    CHECK(std::vector<float>(both.begin() + long(V), both.end()) == la);

    // copy_state forks x into a new sequence z: the same next token gives the same logits; a fresh one differs.
    e.release_sequence(y);
    const SeqId z = e.add_sequence(), w = e.add_sequence();
    CHECK_THROWS_WITH(e.add_sequence(), Catch::Contains("all 3 are in use"));
    e.copy_state(x, z);
    const int32_t next = 6;
    std::vector<float> three(3 * V);
    e.step(std::vector<SeqWork>{{x, &next, 1}, {z, &next, 1}, {w, &next, 1}}, three.data());
    CHECK(std::vector<float>(three.begin(), three.begin() + long(V)) ==
          std::vector<float>(three.begin() + long(V), three.begin() + long(2 * V)));
    CHECK(std::vector<float>(three.begin(), three.begin() + long(V)) !=
          std::vector<float>(three.begin() + long(2 * V), three.end()));
    CHECK_THROWS_WITH(e.copy_state(x, 2 + 5), Catch::Contains("unknown sequence id 7"));
}
