// Keys of the hybrids that change what is computed. GGUF: a shared expert whose size key is absent is sized from its
// tensors (it was silently left out), and {arch}.attention.scale is the attention's softmax scale, as in llama.cpp (it
// was read and dropped); the fixture is edited with the hostile-input tests' gguf-edit tool. config.json: Qwen3.5 /
// 3.6 MoE ignore norm_topk_prob, mlp_only_layers and decoder_sparse_step, as transformers does.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>
#include <vector>

#include "exec/cpu/cpu_executor.h"
#include "gdn_fixture.h"
#include "imp/model.h"
#include "runtime/engine.h"

using namespace imp;
using namespace imp::test;
namespace fs = std::filesystem;

namespace {

// qwen35moe_tiny.gguf with KEY set to VALUE of TYPE (or removed: TYPE "delete"), in a temporary file.
std::string edited(const std::string& tag, const std::string& key, const std::string& type, const std::string& value) {
    return gguf_edited(GGUF_EDIT, kGdnFixtures + "/qwen35moe_tiny.gguf", "gdn-" + tag, key, type, value);
}

// The prompt's logits of the model at `path` against transformers' reference: max|diff| / max|ref|.
double prompt_diff(const std::string& path) {
    return prompt_rel_diff(path, gdn_registry(), gdn_reference("qwen35moe_tiny"));
}

}  // namespace

TEST_CASE("a hybrid GGUF without expert_shared_feed_forward_length sizes the shared expert from its tensors",
          "[arch_gdn]") {
    const std::string f = edited("shexp", "qwen35moe.expert_shared_feed_forward_length", "delete", "0");
    CHECK(prompt_diff(f) <= 1e-4);  // the same logits as with the key: the shared expert is there
    fs::remove(f);
}

TEST_CASE("a hybrid GGUF's attention.scale is the softmax scale of its attention layers", "[arch_gdn]") {
    // head_dim 16: 0.25 is the default, so the logits stay transformers'; twice that changes them
    const std::string same = edited("scale-default", "qwen35moe.attention.scale", "f32", "0.25");
    CHECK(prompt_diff(same) <= 1e-4);
    const std::string other = edited("scale-double", "qwen35moe.attention.scale", "f32", "0.5");
    CHECK(prompt_diff(other) > 1e-3);
    fs::remove(same);
    fs::remove(other);
}

TEST_CASE("Qwen3.5-MoE configs: norm_topk_prob, mlp_only_layers and decoder_sparse_step change nothing, as in "
          "transformers", "[arch_gdn]") {
    // transformers' Qwen3.5 / 3.6 MoE router always renormalizes and every decoder layer is MoE; only Qwen3-Next
    // reads these keys. A config carrying them must still give transformers' logits.
    const fs::path src = fs::path(kGdnFixtures) / "qwen35moe_tiny";
    const fs::path d = fs::temp_directory_path() / ("imp-gdn-keys-" + std::to_string(::getpid()));
    fs::remove_all(d);
    fs::create_directories(d);
    fs::create_symlink(src / "model.safetensors", d / "model.safetensors");
    std::string cfg = read_text((src / "config.json").string());
    const std::string at = "\"router_aux_loss_coef\"";
    const size_t p = cfg.find(at);
    REQUIRE(p != std::string::npos);
    cfg.insert(p, "\"norm_topk_prob\": false, \"mlp_only_layers\": [1], \"decoder_sparse_step\": 2, ");
    std::ofstream(d / "config.json") << cfg;
    CHECK(prompt_diff(d.string()) <= 1e-4);
    // A conv kernel outside 2..8 is refused at load, naming the key as written (under text_config here).
    const std::string conv = "\"linear_conv_kernel_dim\": 4";
    REQUIRE(cfg.find(conv) != std::string::npos);
    cfg.replace(cfg.find(conv), conv.size(), "\"linear_conv_kernel_dim\": 9");
    std::ofstream(d / "config.json") << cfg;
    auto src9 = open_model(d.string());
    CpuExecutor ex(1);
    EngineOptions opt;
    opt.max_seq_len = 16;
    CHECK_THROWS_WITH(Engine(*src9, gdn_registry(), ex, opt),
                      Catch::Contains("conv kernel 9 (text_config.linear_conv_kernel_dim) is outside 2..8"));
    fs::remove_all(d);
}
