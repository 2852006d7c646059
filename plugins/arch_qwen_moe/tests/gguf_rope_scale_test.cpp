// A GGUF's linear rope scale as llama.cpp reads it: <arch>.rope.scaling.factor without a scaling type is linear
// (llama.cpp's default type), and so is the older <arch>.rope.scale_linear; imp ignored both without the type. The
// fixture is edited with the hostile-input tests' gguf-edit tool.
#include <catch2/catch.hpp>

#include <filesystem>
#include <string>
#include <vector>

#include "exec/cpu/cpu_executor.h"
#include "imp/model.h"
#include "moe_fixture.h"
#include "runtime/engine.h"

using namespace imp;
using namespace imp::test;
namespace fs = std::filesystem;

namespace {

// `in` (default: the qwen3moe_tiny fixture) with KEY set to VALUE of TYPE, in a temporary file.
std::string edited(const std::string& tag, const std::string& key, const std::string& value,
                   const std::string& type = "f32", const std::string& in = kFixtures + "/qwen3moe_tiny.gguf") {
    return gguf_edited(GGUF_EDIT, in, "moe-" + tag, key, type, value);
}

// max|diff| / max|ref| of the prompt's logits against transformers' (which has no rope scaling).
double prompt_diff(const std::string& path) {
    return prompt_rel_diff(path, moe_registry(), load_reference("qwen3moe_tiny"));
}

}  // namespace

TEST_CASE("qwen3moe GGUF: rope.scaling.factor without a type, or rope.scale_linear, scales the rope linearly",
          "[arch_qwen_moe]") {
    for (const std::string key : {"qwen3moe.rope.scaling.factor", "qwen3moe.rope.scale_linear"}) {
        INFO(key);
        const std::string one = edited("one", key, "1");  // a factor of 1 changes nothing
        CHECK(prompt_diff(one) <= 1e-4);
        const std::string four = edited("four", key, "4");  // positions / 4: other logits
        CHECK(prompt_diff(four) > 1e-3);
        fs::remove(one);
        fs::remove(four);
    }
    // rope.scaling.type "none" never scales, whatever factor is given (llama.cpp sets freq_scale to 1 for it)
    const std::string four = edited("none4", "qwen3moe.rope.scaling.factor", "4");
    const std::string none = edited("none", "qwen3moe.rope.scaling.type", "none", "str", four);
    CHECK(prompt_diff(none) <= 1e-4);
    fs::remove(four);
    fs::remove(none);
}
