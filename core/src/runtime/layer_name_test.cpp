// Layers named as the file names them in messages (runtime/layer_name.h), not by their index in the built stack.
#include <catch2/catch.hpp>

#include "imp/layer.h"
#include "runtime/layer_name.h"

namespace {

class NamedLayer final : public imp::Layer {
public:
    explicit NamedLayer(std::vector<imp::WeightSpec> specs) : specs_(std::move(specs)) {}
    std::string kind() const override { return "test.ffn"; }
    std::vector<imp::WeightSpec> weight_specs() const override { return specs_; }
    void bind(const imp::WeightSet&) override {}
    int64_t scratch_floats(int64_t) const override { return 0; }
    void forward(imp::LayerContext&, float*) override {}

private:
    std::vector<imp::WeightSpec> specs_;
};

imp::WeightSpec spec(const std::string& name, std::vector<float> values = {}) {
    imp::WeightSpec s;
    s.name = name;
    s.values = std::move(values);
    return s;
}

}  // namespace

TEST_CASE("layer names: the file's block, not the stack index", "[runtime][layer_name]") {
    // blk.30's FFN is the 62nd layer an attention + FFN arch builds.
    CHECK(imp::layer_label(NamedLayer({spec("blk.30.ffn_up.weight"), spec("blk.30.ffn_down.weight")}), 61) ==
          "test.ffn (blk.30)");
    CHECK(imp::file_block_name(NamedLayer({spec("model.layers.7.mlp.experts.{e}.up_proj.weight")})) ==
          "model.layers.7");
    CHECK(imp::file_block_name(NamedLayer({spec("model.language_model.layers.12.linear_attn.in_proj_qkvz.weight")})) ==
          "model.language_model.layers.12");
    imp::WeightSpec experts = spec("x");
    experts.expert_pattern = "model.layers.4.mlp.experts.{e}.down_proj.weight";
    CHECK(imp::file_block_name(NamedLayer({experts})) == "model.layers.4");
    // A weight the arch computes, or one outside any block (the output norm a first layer folds in), is passed over.
    CHECK(imp::file_block_name(NamedLayer({spec("rope_freqs.9", {1.f}), spec("output_norm.weight"),
                                           spec("blk.3.attn_norm.weight")})) == "blk.3");
    // "h2" or "v1b" are not block numbers.
    CHECK(imp::file_block_name(NamedLayer({spec("h2.v1b.weight"), spec("x.04.y")})) == "x.04");
    CHECK(imp::layer_label(NamedLayer({spec("output_norm.weight")}), 5) == "test.ffn (stack layer 5)");
    CHECK(imp::layer_label(NamedLayer({}), 0) == "test.ffn (stack layer 0)");
}
