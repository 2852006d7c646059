// hello_layer: an example third-party plugin for SDK 2. It registers
//   - the op "hello.scale_add" (hello_ops.h): a CPU reference kernel (here), a CUDA kernel (scale_add.cu) and a
//     conformance check that imp-plugin-check runs on a GPU;
//   - the layer kind "example.scale", which calls the op through an OpRef resolved when the layer is built.
// An arch plugin can put the layer into a layer stack by name: registry.make_layer("example.scale", params).
// Layer parameters it reads from params.hparams (imp::Metadata):
//   example.scale.width   integer, required: hidden size (floats per token)
//   example.scale.factor  number, default 1.0: hidden = factor * hidden + bias
//   example.scale.bias    number, default 0.0
// It has no weights and no per-sequence state.
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "hello_ops.h"
#include "imp/abi.h"
#include "imp/error.h"
#include "imp/layer.h"
#include "imp/ops.h"
#include "imp/registry.h"

namespace hello {

void scale_add_cpu(imp::Executor& ex, const ScaleAdd::Args& a) {
    ex.parallel_for(a.n, 4096, [&a](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) a.y[i] = a.scale * a.x[i] + a.add;
    });
}

std::string check_scale_add(imp::Executor& cpu, imp::Executor& dev, uint64_t seed) {
    std::mt19937_64 rng(seed);
    const int64_t n = std::uniform_int_distribution<int64_t>(1, 70000)(rng);
    std::uniform_real_distribution<float> u(-4.f, 4.f);
    std::vector<float> x(static_cast<size_t>(n)), y(static_cast<size_t>(n));
    for (auto& v : x) v = u(rng);
    for (auto& v : y) v = u(rng);
    const float scale = u(rng), add = u(rng);
    const size_t bytes = x.size() * sizeof(float);
    for (bool in_place : {false, true}) {
        std::vector<float> ref = y, got(y.size());
        // The reference on the CPU executor (host memory), the kernel under test on the device.
        scale_add_cpu(cpu, {in_place ? ref.data() : x.data(), ref.data(), n, scale, add});
        auto* dx = static_cast<float*>(dev.alloc(bytes, "hello.check.x"));
        auto* dy = static_cast<float*>(dev.alloc(bytes, "hello.check.y"));
        dev.upload(dx, x.data(), bytes);
        dev.upload(dy, y.data(), bytes);
        scale_add_cuda(dev, {in_place ? dy : dx, dy, n, scale, add});
        dev.download(got.data(), dy, bytes);
        const std::string what = std::string(in_place ? "in place" : "y") + ", n " + std::to_string(n) + ": y";
        std::string diff = imp::compare_close(what, ref.data(), got.data(), ref.size(), 4e-6f, 1e-6f);
        if (!diff.empty()) return diff;
    }
    return "";
}

namespace {

class ScaleLayer : public imp::Layer {
public:
    explicit ScaleLayer(const imp::LayerParams& p) {
        if (!p.hparams)
            throw imp::Error("example.scale: layer " + std::to_string(p.index) + " has no hyper-parameters");
        if (!p.registry)
            throw imp::Error("example.scale: layer " + std::to_string(p.index) +
                             " was built without a registry (build it with Registry::make_layer)");
        width_ = p.hparams->get_int("example.scale.width");
        factor_ = static_cast<float>(p.hparams->get_float("example.scale.factor", 1.0));
        bias_ = static_cast<float>(p.hparams->get_float("example.scale.bias", 0.0));
        if (width_ <= 0)
            throw imp::Error("example.scale: example.scale.width must be positive, got " + std::to_string(width_));
        scale_add_ = p.registry->op<ScaleAdd>();  // resolved once; throws when no plugin provides the op
    }

    std::string kind() const override { return "example.scale"; }
    std::vector<imp::WeightSpec> weight_specs() const override { return {}; }
    // The engine checks before loading that the executor's device has a kernel for each.
    std::vector<std::string> required_ops() const override { return {ScaleAdd::name}; }
    void bind(const imp::WeightSet&) override {}
    int64_t scratch_floats(int64_t) const override { return 0; }

    void forward(imp::LayerContext& ctx, float* hidden) override {
        scale_add_(ctx.ex, {hidden, hidden, ctx.batch.n_tokens * width_, factor_, bias_});
    }

private:
    int64_t width_ = 0;
    float factor_ = 1.f, bias_ = 0.f;
    imp::OpRef<ScaleAdd> scale_add_;
};

void register_hello(imp::Registry& reg) {
    reg.add_op<ScaleAdd>(imp::DeviceKind::CPU, scale_add_cpu);
    reg.add_op<ScaleAdd>(imp::DeviceKind::CUDA, scale_add_cuda, scale_add_cuda_supports);
    reg.add_op_check(ScaleAdd::name, check_scale_add);
    reg.add_layer_kind("example.scale", [](const imp::LayerParams& p) { return std::make_unique<ScaleLayer>(p); });
}

}  // namespace

}  // namespace hello

IMP_PLUGIN(imp::PluginKind::Other, "hello_layer", "2.0.0", "layer:example.scale;op:hello.scale_add",
           hello::register_hello)
