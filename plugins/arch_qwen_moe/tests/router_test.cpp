// The fused router op (blocks.moe_router, CPU reference through the registry): softmax in fp32, top-k with ties to
// the lower expert id, renormalization, scale and the shared-expert gate, on hand-made logits (a one-hot x picks
// one column of the router weights, so the logits are exactly the values written) and edge cases: all-equal
// logits, ties, k = 1, k = n_expert; bad arguments are refused with one line naming the field.
#include <catch2/catch.hpp>

#include <cmath>
#include <string>
#include <vector>

#include "exec/cpu/cpu_executor.h"
#include "imp/blocks/moe.h"
#include "imp/error.h"
#include "moe_fixture.h"

using namespace imp;
using namespace imp::test;
using blocks::MoeRouter;

namespace {

struct Routed {
    std::vector<int32_t> ids;
    std::vector<float> w;
    float gate = 0.f;
};

// Routes one token whose router logits are `logits` (x = e_0, router column 0 = the logits).
Routed route(const std::vector<float>& logits, int k, bool norm, float scale = 1.f, float gate_logit = NAN) {
    const int ne = int(logits.size());
    const int64_t emb = 4;
    std::vector<float> x = {1.f, 0.f, 0.f, 0.f}, w(size_t(ne) * emb, 0.25f), sg = {gate_logit, 9.f, 9.f, 9.f};
    for (int e = 0; e < ne; ++e) w[size_t(e) * emb] = logits[size_t(e)];
    Routed r;
    r.ids.assign(size_t(k), -1);
    r.w.assign(size_t(k), -1.f);
    MoeRouter::Args a{x.data(), emb, w.data(), 1, emb, ne, k, norm, scale,
                      std::isnan(gate_logit) ? nullptr : sg.data(), r.ids.data(), r.w.data(), &r.gate};
    CpuExecutor ex(1);
    moe_registry().op<MoeRouter>()(ex, a);
    return r;
}

std::vector<double> softmax(const std::vector<float>& l) {
    double mx = l[0], s = 0;
    for (float v : l) mx = std::max(mx, double(v));
    std::vector<double> p;
    for (float v : l) s += std::exp(v - mx), p.push_back(std::exp(v - mx));
    for (auto& v : p) v /= s;
    return p;
}

}  // namespace

TEST_CASE("router: top-k by softmax probability, renormalized, scaled", "[arch_qwen_moe][router]") {
    const std::vector<float> l = {0.5f, 2.f, -1.f, 1.5f, 0.f, 3.f, -2.f, 1.f};
    const auto p = softmax(l);
    const Routed r = route(l, 3, false);
    CHECK(r.ids == std::vector<int32_t>{5, 1, 3});
    for (int j = 0; j < 3; ++j) CHECK(r.w[size_t(j)] == Approx(p[size_t(r.ids[size_t(j)])]).epsilon(1e-6));
    const Routed n = route(l, 3, true, 2.5f);
    const double s = p[5] + p[1] + p[3];
    CHECK(n.ids == r.ids);
    for (int j = 0; j < 3; ++j) CHECK(n.w[size_t(j)] == Approx(2.5 * p[size_t(n.ids[size_t(j)])] / s).epsilon(1e-6));
}

TEST_CASE("router: ties go to the lower expert id: all-equal logits pick 0..k-1", "[arch_qwen_moe][router]") {
    const Routed t = route({1.f, 3.f, 0.f, 3.f, 3.f, -1.f}, 2, true);
    CHECK(t.ids == std::vector<int32_t>{1, 3});
    CHECK(t.w[0] == 0.5f);
    CHECK(t.w[1] == 0.5f);
    const Routed eq = route(std::vector<float>(8, 0.7f), 3, false);
    CHECK(eq.ids == std::vector<int32_t>{0, 1, 2});
    for (float v : eq.w) CHECK(v == Approx(1.0 / 8).epsilon(1e-6));
    const Routed eqn = route(std::vector<float>(8, -4.f), 4, true);
    CHECK(eqn.ids == std::vector<int32_t>{0, 1, 2, 3});
    for (float v : eqn.w) CHECK(v == Approx(0.25).epsilon(1e-6));
}

TEST_CASE("router: k = 1 and k = n_expert", "[arch_qwen_moe][router]") {
    const std::vector<float> l = {0.1f, -0.3f, 0.9f, 0.2f, 0.8f};
    const Routed one = route(l, 1, true);
    CHECK(one.ids == std::vector<int32_t>{2});
    CHECK(one.w[0] == Approx(1.0).epsilon(1e-6));  // renormalized over one expert
    const Routed onen = route(l, 1, false);
    CHECK(onen.w[0] == Approx(softmax(l)[2]).epsilon(1e-6));
    const Routed all = route(l, 5, true);
    CHECK(all.ids == std::vector<int32_t>{2, 4, 3, 0, 1});  // every expert, by probability
    double s = 0;
    for (float v : all.w) s += v;
    CHECK(s == Approx(1.0).epsilon(1e-6));
}

TEST_CASE("router: shared-expert gate is sigmoid(w_sg . x)", "[arch_qwen_moe][router]") {
    const Routed r = route({0.f, 1.f}, 1, true, 1.f, -0.75f);
    CHECK(r.gate == Approx(1.0 / (1.0 + std::exp(0.75))).epsilon(1e-6));
}

TEST_CASE("router: bad arguments are refused naming the field", "[arch_qwen_moe][router]") {
    CpuExecutor ex(1);
    std::vector<float> x(4, 1.f), w(8, 1.f), wt(4);
    std::vector<int32_t> ids(4);
    MoeRouter::Args a{x.data(), 4, w.data(), 1, 4, 2, 3, true, 1.f, nullptr, ids.data(), wt.data(), nullptr};
    auto op = moe_registry().op<MoeRouter>();
    CHECK_THROWS_WITH(op(ex, a), Catch::Contains("top_k 3 must be in [1, n_expert = 2]"));
    a.top_k = 1;
    a.x_stride = 3;
    CHECK_THROWS_WITH(op(ex, a), Catch::Contains("row stride of 3"));
}

TEST_CASE("router ops are registered once, with CPU and CUDA kernels and checks", "[arch_qwen_moe][router]") {
    Registry& reg = moe_registry();
    for (const char* name : {MoeRouter::name, blocks::RowScale::name}) {
        INFO(name);
        CHECK(reg.find_op(name, DeviceKind::CPU) != nullptr);
        CHECK(reg.find_op(name, DeviceKind::CUDA) != nullptr);
        CHECK(reg.find_op_check(name) != nullptr);
    }
    blocks::register_moe_ops(reg);  // a second plugin calling it: no error, nothing added
    CHECK(reg.find_op(MoeRouter::name, DeviceKind::CPU)->plugin == "arch_qwen_moe");
}
