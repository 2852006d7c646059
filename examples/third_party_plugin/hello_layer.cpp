// hello_layer: an example third-party plugin. It registers one layer kind, "example.scale", that multiplies the
// hidden state by a constant factor. An arch plugin can put it into a layer stack by name:
//   registry.make_layer("example.scale", params)
// Layer parameters it reads from params.hparams (imp::Metadata):
//   example.scale.width   integer, required: hidden size (floats per token)
//   example.scale.factor  number, default 1.0: the factor
// It has no weights and no per-sequence state. It works on any executor: on the CPU it scales in place through
// the executor's thread pool; on a GPU it copies the rows to the host, scales, and copies them back (a real plugin
// would ship a CUDA kernel for that path).
#include <memory>
#include <string>
#include <vector>

#include "imp/abi.h"
#include "imp/error.h"
#include "imp/layer.h"
#include "imp/registry.h"

namespace {

class ScaleLayer : public imp::Layer {
public:
    explicit ScaleLayer(const imp::LayerParams& p) {
        if (!p.hparams)
            throw imp::Error("example.scale: layer " + std::to_string(p.index) + " has no hyper-parameters");
        width_ = p.hparams->get_int("example.scale.width");
        factor_ = static_cast<float>(p.hparams->get_float("example.scale.factor", 1.0));
        if (width_ <= 0)
            throw imp::Error("example.scale: example.scale.width must be positive, got " + std::to_string(width_));
    }

    std::string kind() const override { return "example.scale"; }
    std::vector<imp::WeightSpec> weight_specs() const override { return {}; }
    void bind(const imp::WeightSet&) override {}
    int64_t scratch_floats(int64_t) const override { return 0; }

    void forward(imp::LayerContext& ctx, float* hidden) override {
        const int64_t n = ctx.batch.n_tokens * width_;
        const float f = factor_;
        if (ctx.ex.kind() == imp::DeviceKind::CPU) {
            ctx.ex.parallel_for(n, 4096, [hidden, f](int64_t b, int64_t e) {
                for (int64_t i = b; i < e; ++i) hidden[i] *= f;
            });
            return;
        }
        std::vector<float> host(static_cast<size_t>(n));
        ctx.ex.download(host.data(), hidden, host.size() * sizeof(float));
        for (auto& x : host) x *= f;
        ctx.ex.upload(hidden, host.data(), host.size() * sizeof(float));
    }

private:
    int64_t width_ = 0;
    float factor_ = 1.f;
};

void register_hello(imp::Registry& reg) {
    reg.add_layer_kind("example.scale", [](const imp::LayerParams& p) { return std::make_unique<ScaleLayer>(p); });
}

}  // namespace

IMP_PLUGIN(imp::PluginKind::Other, "hello_layer", "1.0.0", "layer:example.scale", register_hello)
