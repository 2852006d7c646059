// The op registry (imp/ops.h, Registry::add_op/op/check_ops) and the conformance runner, with host executors that
// report the CPU or CUDA device kind (util/host_executor_test_util.h), so dispatch is tested without a GPU.
#include <catch2/catch.hpp>
#include <cmath>
#include <string>
#include <vector>

#include "imp/error.h"
#include "imp/ops.h"
#include "imp/registry.h"
#include "util/host_executor_test_util.h"
#include "util/op_checks.h"

using imp::DeviceKind;
using imp::Executor;
using imp::Registry;
using imp::test::HostExecutor;

namespace {

struct AddOp {
    static constexpr const char* name = "test.add";
    struct Args {
        float* x;
        int64_t n;
        float v;
    };
};
// Same name, other arguments: must not be mixed with AddOp.
struct AddOpOtherArgs {
    static constexpr const char* name = "test.add";
    struct Args {
        double* x;
        int64_t n;
        double v;
        int extra;
    };
};
struct OtherOp {
    static constexpr const char* name = "test.other";
    struct Args {
        int unused;
    };
};

void add_cpu(Executor&, const AddOp::Args& a) {
    for (int64_t i = 0; i < a.n; ++i) a.x[i] += a.v;
}
// The "device" kernel of the tests: the same result, plus 100 so a test can tell which kernel ran.
void add_dev_marked(Executor&, const AddOp::Args& a) {
    for (int64_t i = 0; i < a.n; ++i) a.x[i] += a.v + 100.f;
}
void add_dev_same(Executor& ex, const AddOp::Args& a) { add_cpu(ex, a); }
void other_cpu(Executor&, const OtherOp::Args&) {}
void other_dev(Executor&, const OtherOp::Args&) {}

std::string error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const imp::Error& e) {
        return e.what();
    }
    return "";
}

// The registry whose test.add kernels check_add runs (set by the test that registers it).
const Registry* g_check_registry = nullptr;

float* to_executor(Executor& ex, const std::vector<float>& buf) {
    auto* d = static_cast<float*>(ex.alloc(buf.size() * sizeof(float), "check"));
    ex.upload(d, buf.data(), buf.size() * sizeof(float));
    return d;
}

// A check of test.add: x and v from the seed (never all zero), the op on both executors, compared exactly.
std::string check_add(Executor& cpu, Executor& dev, uint64_t seed) {
    const int64_t n = 17 + int64_t(seed % 50);
    std::vector<float> x(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) x[i] = float((seed * 2654435761u + uint64_t(i) * 40503u) % 1000) / 250.f - 1.9f;
    const float v = 0.25f + float(seed % 7);
    float* dc = to_executor(cpu, x);
    float* dd = to_executor(dev, x);
    auto op = g_check_registry->op<AddOp>();
    op(cpu, {dc, n, v});
    op(dev, {dd, n, v});
    std::vector<float> ref(x.size()), got(x.size());
    cpu.download(ref.data(), dc, ref.size() * sizeof(float));
    dev.download(got.data(), dd, got.size() * sizeof(float));
    return imp::compare_close("x", ref.data(), got.data(), ref.size(), 0.f, 0.f);
}

}  // namespace

TEST_CASE("ops: an OpRef calls the kernel of the executor's device kind", "[ops]") {
    Registry reg;
    reg.set_current_plugin("p_cpu");
    reg.add_op<AddOp>(DeviceKind::CPU, add_cpu);
    reg.set_current_plugin("p_dev");
    reg.add_op<AddOp>(DeviceKind::CUDA, add_dev_marked);
    reg.set_current_plugin("core");

    auto op = reg.op<AddOp>();
    CHECK(op.has(DeviceKind::CPU));
    CHECK(op.has(DeviceKind::CUDA));
    REQUIRE(op.entry(DeviceKind::CPU) == reg.find_op("test.add", DeviceKind::CPU));
    CHECK(op.entry(DeviceKind::CPU)->plugin == "p_cpu");
    CHECK(op.entry(DeviceKind::CUDA)->plugin == "p_dev");
    CHECK(op.entry(DeviceKind::CUDA)->args_size == sizeof(AddOp::Args));

    HostExecutor cpu(DeviceKind::CPU), dev(DeviceKind::CUDA, "fake-cuda");
    std::vector<float> x{1.f, 2.f, 3.f};
    op(cpu, {x.data(), 3, 0.5f});
    CHECK(x == std::vector<float>{1.5f, 2.5f, 3.5f});
    op(dev, {x.data(), 2, 1.f});
    CHECK(x == std::vector<float>{102.5f, 103.5f, 3.5f});

    // What was registered is listed, with the device kind.
    REQUIRE(reg.entries().size() == 2);
    CHECK(reg.entries()[0].what == "op");
    CHECK(reg.entries()[0].name == "test.add");
    CHECK(reg.entries()[0].detail == "cpu");
    CHECK(reg.entries()[1].plugin == "p_dev");
    CHECK(reg.entries()[1].detail == "cuda");
    REQUIRE(reg.ops().size() == 2);
    CHECK(reg.find_op("test.add", DeviceKind::CUDA)->kernel != nullptr);
    CHECK(reg.find_op("test.nope", DeviceKind::CPU) == nullptr);
}

TEST_CASE("ops: a missing kernel or op is an error naming the op and the devices that have it", "[ops]") {
    Registry reg;
    CHECK(error_of([&] { reg.op<AddOp>(); }) == "no loaded plugin provides op 'test.add' (for any device)");
    reg.set_current_plugin("p1");
    reg.add_op<AddOp>(DeviceKind::CPU, add_cpu);
    auto op = reg.op<AddOp>();
    CHECK_FALSE(op.has(DeviceKind::CUDA));
    HostExecutor dev(DeviceKind::CUDA);
    float x = 1.f;
    CHECK(error_of([&] {
              op(dev, {&x, 1, 1.f});
          }) == "op 'test.add' has no kernel for cuda (provided for: cpu by plugin 'p1')");
    CHECK(x == 1.f);
    imp::OpRef<AddOp> empty;
    HostExecutor cpu;
    CHECK(error_of([&] { empty(cpu, {&x, 1, 1.f}); }) == "op 'test.add' has no kernel for cpu (provided for: none)");
}

TEST_CASE("ops: a second kernel for one op and device is an error naming both plugins", "[ops]") {
    Registry reg;
    reg.set_current_plugin("first");
    reg.add_op<AddOp>(DeviceKind::CPU, add_cpu);
    reg.set_current_plugin("second");
    CHECK(error_of([&] { reg.add_op<AddOp>(DeviceKind::CPU, add_dev_same); }) ==
          "op 'test.add' has two cpu kernels: from plugin 'first' and from plugin 'second'");
    CHECK_NOTHROW(reg.add_op<AddOp>(DeviceKind::CUDA, add_dev_same));  // another device is fine
    CHECK(reg.find_op("test.add", DeviceKind::CPU)->plugin == "first");
    CHECK(error_of([&] { reg.add_op<AddOp>(DeviceKind::CPU, nullptr); }).find("null cpu kernel") != std::string::npos);

    reg.add_op_check("test.add", check_add);
    CHECK(error_of([&] { reg.add_op_check("test.add", check_add); }) ==
          "op 'test.add' has two checks: from plugin 'second' and from plugin 'second'");
    CHECK(error_of([&] { reg.add_op_check("test.other", imp::OpCheck{}); }).find("empty check") != std::string::npos);
}

TEST_CASE("ops: kernels of one op must take the same Args type", "[ops]") {
    Registry reg;
    reg.set_current_plugin("a");
    reg.add_op<AddOp>(DeviceKind::CPU, add_cpu);
    reg.set_current_plugin("b");
    auto err =
        error_of([&] { reg.add_op<AddOpOtherArgs>(DeviceKind::CUDA, [](Executor&, const AddOpOtherArgs::Args&) {}); });
    INFO(err);
    CHECK(err.rfind("op 'test.add': plugin 'b' registers a cuda kernel taking ", 0) == 0);
    CHECK(err.find("AddOpOtherArgs::Args (32 bytes)") != std::string::npos);
    CHECK(err.find("plugin 'a' a cpu kernel taking ") != std::string::npos);
    CHECK(err.find("AddOp::Args (24 bytes)") != std::string::npos);
    CHECK(reg.find_op("test.add", DeviceKind::CUDA) == nullptr);
    err = error_of([&] { reg.op<AddOpOtherArgs>(); });
    CHECK(err.rfind("op 'test.add' is called with ", 0) == 0);
    CHECK(err.find("but its cpu kernel (plugin 'a') takes ") != std::string::npos);
}

TEST_CASE("ops: check_ops says before load which ops an executor cannot run", "[ops]") {
    Registry reg;
    reg.set_current_plugin("p");
    reg.add_op<AddOp>(DeviceKind::CPU, add_cpu);
    reg.add_op<AddOp>(DeviceKind::CUDA, add_dev_same,
                      [](const Executor& ex) { return ex.cuda() && ex.cuda()->cc >= 90; });
    reg.add_op<OtherOp>(DeviceKind::CPU, other_cpu);

    HostExecutor cpu, h100(DeviceKind::CUDA, "fake-h100"), a100(DeviceKind::CUDA, "fake-a100"),
        none(DeviceKind::CUDA, "fake-bare");
    h100.handles.cc = 90;
    a100.handles.cc = 80;
    CHECK(reg.check_ops({"test.add", "test.other"}, cpu) == "");
    CHECK(reg.check_ops({}, h100) == "");
    CHECK(reg.check_ops({"test.add"}, h100) == "");
    CHECK(reg.check_ops({"test.add"}, a100) ==
          "op 'test.add' is not supported on fake-a100 (its cuda kernel from plugin 'p' refuses this device)");
    CHECK(reg.check_ops({"test.add"}, none).find("not supported on fake-bare") != std::string::npos);
    CHECK(reg.check_ops({"test.other", "test.add", "test.other"}, h100) ==
          "op 'test.other' is not available on cuda (provided for: cpu by plugin 'p')");
    CHECK(reg.check_ops({"test.gone", "test.other"}, cpu) ==
          "op 'test.gone' is not available on cpu (no loaded plugin provides it)");
    CHECK(reg.check_ops({"test.gone", "test.other"}, a100) ==
          "op 'test.gone' is not available on cuda (no loaded plugin provides it); op 'test.other' is not available "
          "on cuda (provided for: cpu by plugin 'p')");
    CHECK(reg.find_op("test.add", DeviceKind::CUDA)->supported(h100));
    CHECK_FALSE(reg.find_op("test.add", DeviceKind::CUDA)->supported(cpu));
}

TEST_CASE("ops: make_layer gives the layer the registry to resolve its ops", "[ops]") {
    struct NoLayer : imp::Layer {
        std::string kind() const override { return "test.layer"; }
        std::vector<imp::WeightSpec> weight_specs() const override { return {}; }
        void bind(const imp::WeightSet&) override {}
        int64_t scratch_floats(int64_t) const override { return 0; }
        void forward(imp::LayerContext&, float*) override {}
    };
    Registry reg;
    const Registry* seen = nullptr;
    reg.add_layer_kind("test.layer", [&](const imp::LayerParams& p) {
        seen = p.registry;
        return std::make_unique<NoLayer>();
    });
    imp::LayerParams p;
    reg.make_layer("test.layer", p);
    CHECK(seen == &reg);
}

TEST_CASE("ops: run_op_checks runs each op's check against its cpu kernel", "[ops]") {
    Registry reg;
    g_check_registry = &reg;
    HostExecutor cpu, dev(DeviceKind::CUDA, "fake-cuda");
    reg.set_current_plugin("good");
    reg.add_op<AddOp>(DeviceKind::CPU, add_cpu);
    reg.add_op<AddOp>(DeviceKind::CUDA, add_dev_same);
    std::vector<uint64_t> seeds;
    reg.add_op_check("test.add", [&](Executor& c, Executor& d, uint64_t seed) {
        seeds.push_back(seed);
        return check_add(c, d, seed);
    });
    auto res = imp::run_op_checks(reg, cpu, dev, 40, 3);
    REQUIRE(res.size() == 1);
    CHECK(res[0].op == "test.add");
    CHECK(res[0].plugin == "good");
    CHECK(res[0].status == imp::OpCheckResult::Status::Pass);
    CHECK(seeds == std::vector<uint64_t>{40, 41, 42});
    CHECK_THROWS_AS(imp::run_op_checks(reg, cpu, cpu, 1), imp::Error);
    CHECK_THROWS_AS(imp::run_op_checks(reg, dev, dev, 1), imp::Error);
    g_check_registry = nullptr;
}

TEST_CASE("ops: run_op_check runs one op's check, and only that op's", "[ops]") {
    Registry reg;
    g_check_registry = &reg;
    HostExecutor cpu, dev(DeviceKind::CUDA, "fake-cuda");
    reg.set_current_plugin("good");
    reg.add_op<AddOp>(DeviceKind::CPU, add_cpu);
    reg.add_op<AddOp>(DeviceKind::CUDA, add_dev_same);
    std::vector<uint64_t> seeds;
    reg.add_op_check("test.add", [&](Executor& c, Executor& d, uint64_t seed) {
        seeds.push_back(seed);
        return check_add(c, d, seed);
    });
    int other_runs = 0;
    reg.add_op<OtherOp>(DeviceKind::CPU, other_cpu);
    reg.add_op<OtherOp>(DeviceKind::CUDA, other_dev);
    reg.add_op_check("test.other", [&](Executor&, Executor&, uint64_t) {
        ++other_runs;
        return std::string("not run here");
    });
    const imp::OpCheckResult r = imp::run_op_check(reg, "test.add", cpu, dev, 9, 4);
    CHECK(r.op == "test.add");
    CHECK(r.plugin == "good");
    CHECK(r.status == imp::OpCheckResult::Status::Pass);
    CHECK(seeds == std::vector<uint64_t>{9, 10, 11, 12});
    CHECK(other_runs == 0);
    const imp::OpCheckResult other = imp::run_op_check(reg, "test.other", cpu, dev, 1, 2);
    CHECK(other.status == imp::OpCheckResult::Status::Fail);
    CHECK(other.message == "seed 1: not run here");
    CHECK(other_runs == 1);  // the first failing seed ends the op's rounds
    const imp::OpCheckResult none = imp::run_op_check(reg, "test.none", cpu, dev, 1);
    CHECK(none.status == imp::OpCheckResult::Status::Fail);
    CHECK(none.message == "no op 'test.none' is registered");
    CHECK_THROWS_AS(imp::run_op_check(reg, "test.add", cpu, cpu, 1), imp::Error);
    g_check_registry = nullptr;
}

TEST_CASE("ops: run_op_checks fails a wrong kernel, a missing reference or check, and skips what cannot run", "[ops]") {
    Registry reg;
    g_check_registry = &reg;
    HostExecutor cpu, dev(DeviceKind::CUDA, "fake-cuda");
    reg.set_current_plugin("bad");
    reg.add_op<AddOp>(DeviceKind::CPU, add_cpu);
    reg.add_op<AddOp>(DeviceKind::CUDA, add_dev_marked);  // off by 100
    reg.add_op_check("test.add", check_add);
    reg.add_op<OtherOp>(DeviceKind::CUDA, other_dev);  // no cpu reference
    reg.add_op_check("test.orphan", [](Executor&, Executor&, uint64_t) { return std::string(); });
    auto res = imp::run_op_checks(reg, cpu, dev, 7, 2);
    REQUIRE(res.size() == 3);
    CHECK(res[0].op == "test.add");
    CHECK(res[0].status == imp::OpCheckResult::Status::Fail);
    CHECK(res[0].message.rfind("seed 7: x[", 0) == 0);
    CHECK(res[0].message.find("outside") != std::string::npos);
    CHECK(res[1].op == "test.orphan");
    CHECK(res[1].status == imp::OpCheckResult::Status::Fail);
    CHECK(res[1].message == "a check is registered (plugin 'bad') but no kernel");
    CHECK(res[2].op == "test.other");
    CHECK(res[2].status == imp::OpCheckResult::Status::Fail);
    CHECK(res[2].message == "a cuda kernel but no cpu reference kernel");

    Registry reg2;
    g_check_registry = &reg2;
    reg2.set_current_plugin("p");
    reg2.add_op<AddOp>(DeviceKind::CPU, add_cpu);
    reg2.add_op<AddOp>(DeviceKind::CUDA, add_dev_same, [](const Executor&) { return false; });
    reg2.add_op_check("test.add", check_add);
    reg2.add_op<OtherOp>(DeviceKind::CPU, other_cpu);
    reg2.add_op<OtherOp>(DeviceKind::CUDA, other_dev);  // no check
    res = imp::run_op_checks(reg2, cpu, dev, 1);
    REQUIRE(res.size() == 2);
    CHECK(res[0].status == imp::OpCheckResult::Status::Skipped);
    CHECK(res[0].message == "the cuda kernel does not support fake-cuda");
    CHECK(res[1].status == imp::OpCheckResult::Status::Fail);
    CHECK(res[1].message == "cpu and cuda kernels but no check (Registry::add_op_check)");

    Registry reg3;
    reg3.add_op<OtherOp>(DeviceKind::CPU, other_cpu);  // cpu only: nothing to compare
    reg3.add_op<AddOp>(DeviceKind::CPU, add_cpu);
    reg3.add_op<AddOp>(DeviceKind::CUDA, add_dev_same);
    reg3.add_op_check("test.add", [](Executor&, Executor&, uint64_t) -> std::string { throw imp::Error("no memory"); });
    res = imp::run_op_checks(reg3, cpu, dev, 5);
    REQUIRE(res.size() == 2);
    CHECK(res[0].status == imp::OpCheckResult::Status::Fail);
    CHECK(res[0].message == "seed 5: threw: no memory");
    CHECK(res[1].status == imp::OpCheckResult::Status::Skipped);
    CHECK(res[1].message == "no cuda kernel");
    g_check_registry = nullptr;
}

TEST_CASE("ops: compare_close names the worst element and the tolerance", "[ops]") {
    const float ref[] = {1.f, -2.f, 100.f, 3.f};
    const float same[] = {1.f, -2.f, 100.f, 3.f};
    const float near[] = {1.00001f, -2.f, 100.001f, 3.f};
    const float off[] = {1.f, -2.5f, 100.f, 3.f};
    CHECK(imp::compare_close("y", ref, same, 4, 0.f, 0.f) == "");
    CHECK(imp::compare_close("y", ref, near, 4, 1e-4f, 1e-5f) == "");
    CHECK(imp::compare_close("y", ref, near, 4, 0.f, 0.f) != "");
    CHECK(imp::compare_close("y", ref, off, 4, 1e-3f, 1e-3f) ==
          "y[1]: got -2.5, reference -2 (tolerance 0.00100000005 + 0.00100000005 * |reference|); 1 of 4 outside");
    CHECK(imp::compare_close("y", ref, off, 0, 0.f, 0.f) == "");
    // NaN or Inf on either side fails, also where both sides agree (an all-NaN output and reference compare nothing).
    const float nan_ref[] = {1.f, -2.f, 100.f, NAN}, inf_ref[] = {1.f, -2.f, 100.f, INFINITY};
    const float got_0[] = {1.f, -2.f, 100.f, 0.f};
    CHECK(imp::compare_close("y", nan_ref, got_0, 4, 1.f, 1.f).rfind("y[3]: got 0, reference nan", 0) == 0);
    CHECK(imp::compare_close("y", ref, nan_ref, 4, 1.f, 1.f).rfind("y[3]: got nan, reference 3", 0) == 0);
    CHECK(imp::compare_close("y", nan_ref, nan_ref, 4, 1.f, 1.f).rfind("y[3]: got nan, reference nan", 0) == 0);
    CHECK(imp::compare_close("y", inf_ref, inf_ref, 4, 1.f, 1.f).rfind("y[3]: got inf, reference inf", 0) == 0);
    const float all_nan[] = {NAN, NAN, NAN, NAN};
    CHECK(imp::compare_close("y", all_nan, all_nan, 4, 1.f, 1.f) ==
          "y[0]: got nan, reference nan (tolerance 1 + 1 * |reference|); 4 of 4 outside");
}
