// A decode-step capture that throws must end its capture before the error leaves the engine: a stream left
// capturing would record every later op (eager steps, uploads) into a graph nobody launches, and no later capture
// could begin. Checked with a CPU executor that claims graph support and fails an op while capturing.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "exec/cpu/cpu_executor.h"
#include "fixture_registry.h"
#include "imp/error.h"
#include "imp/model.h"
#include "runtime/engine.h"

using namespace imp;
using namespace imp::test;

namespace {

class FailingCapture : public CpuExecutor {
public:
    FailingCapture() : CpuExecutor(1) {}
    bool supports_graphs() const override { return true; }
    void capture_begin() override {
        if (capturing) throw Error("test: capture_begin while a capture is open");
        capturing = true;
        ++begun;
    }
    int capture_end() override {
        if (!capturing) throw Error("test: capture_end without a capture");
        capturing = false;
        return 0;
    }
    void rms_norm(const float* x, const float* w, float* y, int64_t rows, int64_t n, float eps) override {
        if (capturing && fail) throw Error("test: an op failed during the capture");
        CpuExecutor::rms_norm(x, w, y, rows, n, eps);
    }
    bool capturing = false, fail = true;
    int begun = 0;
};

}  // namespace

TEST_CASE("a decode capture that throws ends its capture, and the next capture can begin", "[arch_llama]") {
    auto src = open_model(kFixtures + "/llama_tiny.gguf");
    FailingCapture ex;
    EngineOptions opt;
    opt.max_seq_len = 32;
    Engine eng(*src, full_registry(), ex, opt);
    CHECK_THROWS_WITH(eng.capture_decode_graphs(), Catch::Contains("an op failed during the capture"));
    CHECK_FALSE(ex.capturing);
    ex.fail = false;
    CHECK(eng.capture_decode_graphs() > 0);  // begins again: no capture was left open
    CHECK_FALSE(ex.capturing);
}
