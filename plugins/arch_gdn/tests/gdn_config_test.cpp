// Bad hyper-parameters are refused with one imp::Error line naming the file and the key: a layer_types list of the
// wrong length or with an unknown entry, keys of the wrong type, value heads not a multiple of key heads, a missing
// linear-attention key, a rope type other than the default wherever it is written.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>

#include "exec/cpu/cpu_executor.h"
#include "gdn_fixture.h"
#include "imp/error.h"
#include "imp/model.h"
#include "runtime/engine.h"

using namespace imp;
using namespace imp::test;
namespace fs = std::filesystem;

namespace {

// The qwen3next_tiny folder with config.json's text replaced by `edit(text)`; returns the folder.
template <class F>
std::string edited_copy(const std::string& tag, F edit) {
    const fs::path d = fs::temp_directory_path() / ("imp-gdn-config-" + std::to_string(::getpid()) + "-" + tag);
    fs::remove_all(d);
    fs::create_directories(d);
    const fs::path src = fs::path(kGdnFixtures) / "qwen3next_tiny";
    fs::create_symlink(src / "model.safetensors", d / "model.safetensors");
    std::string cfg = read_text((src / "config.json").string());
    edit(cfg);
    std::ofstream(d / "config.json") << cfg;
    return d.string();
}

void replace(std::string& s, const std::string& from, const std::string& to) {
    const size_t p = s.find(from);
    REQUIRE(p != std::string::npos);
    s.replace(p, from.size(), to);
}

void expect_error(const std::string& dir, const std::string& what) {
    auto src = open_model(dir);
    CpuExecutor ex(1);
    EngineOptions opt;
    opt.max_seq_len = 16;
    CHECK_THROWS_WITH(Engine(*src, gdn_registry(), ex, opt), Catch::Contains(what) && Catch::Contains(dir));
    fs::remove_all(dir);
}

}  // namespace

TEST_CASE("bad Gated-DeltaNet hyper-parameters are refused naming the file and the key", "[arch_gdn]") {
    expect_error(edited_copy("types", [](std::string& c) {
                     replace(c, "\"full_attention_interval\": 2", "\"layer_types\": [\"linear_attention\"]");
                 }),
                 "layer_types has 1 entries for 4 layers");
    expect_error(edited_copy("kind", [](std::string& c) {
                     replace(c, "\"full_attention_interval\": 2",
                             "\"layer_types\": [\"linear_attention\", \"mamba\", \"full_attention\", \"full_attention\"]");
                 }),
                 "layer_types entry 'mamba'");
    expect_error(edited_copy("heads", [](std::string& c) {
                     replace(c, "\"linear_num_value_heads\": 4", "\"linear_num_value_heads\": 3");
                 }),
                 "3 linear-attention value heads are not a multiple of 2 key heads");
    expect_error(edited_copy("layer_types_str", [](std::string& c) {
                     replace(c, "\"full_attention_interval\": 2", "\"layer_types\": \"linear_attention\"");
                 }),
                 "config.json: hyper-parameter 'layer_types' is str, expected a list of layer types");
    expect_error(edited_copy("rope_str", [](std::string& c) {
                     replace(c, "\"rope_parameters\": {", "\"rope_parameters\": \"x\", \"unused\": {");
                 }),
                 "config.json: hyper-parameter 'rope_parameters' is str, expected an object");
    // The YaRN snippet of the Qwen model cards (rope_scaling with rope_type), and the older "type" key.
    expect_error(edited_copy("yarn", [](std::string& c) {
                     replace(c, "\"router_aux_loss_coef\"",
                             "\"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 4.0, "
                             "\"original_max_position_embeddings\": 262144}, \"router_aux_loss_coef\"");
                 }),
                 "config.json: rope type 'yarn' (rope_scaling.rope_type) is not supported by arch_gdn");
    expect_error(edited_copy("linear", [](std::string& c) {
                     replace(c, "\"router_aux_loss_coef\"",
                             "\"rope_scaling\": {\"type\": \"linear\", \"factor\": 2.0}, \"router_aux_loss_coef\"");
                 }),
                 "config.json: rope type 'linear' (rope_scaling.type) is not supported by arch_gdn");
    // No shared_expert_intermediate_size: transformers' 512, so the fixture's 24-wide shared expert is a shape
    // error, not a shared expert silently left out.
    expect_error(edited_copy("shared_default", [](std::string& c) {
                     replace(c, "\"shared_expert_intermediate_size\": 24,", "");
                 }),
                 "[512, 64]");
    expect_error(edited_copy("dense_str", [](std::string& c) {
                     replace(c, "\"mlp_only_layers\": []", "\"mlp_only_layers\": \"none\"");
                 }),
                 "config.json: hyper-parameter 'mlp_only_layers' is str, expected a list of integers");
    expect_error(edited_copy("conv9", [](std::string& c) {
                     replace(c, "\"linear_conv_kernel_dim\": 4", "\"linear_conv_kernel_dim\": 9");
                 }),
                 "config.json: linear-attention conv kernel 9 (linear_conv_kernel_dim) is outside 2..8");
    expect_error(edited_copy("missing", [](std::string& c) {
                     replace(c, "\"linear_key_head_dim\"", "\"unused_key_head_dim\"");
                 }),
                 "missing hyper-parameter 'linear_key_head_dim'");
}
