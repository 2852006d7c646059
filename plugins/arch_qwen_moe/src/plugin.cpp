// arch_qwen_moe: the "qwen3moe" Arch (GGUF qwen3moe, HF model_type qwen3_moe), the layer kind "qwen3moe.moe", and
// the MoE block's ops (router, row scale: CPU reference + CUDA kernels, registered once per registry).
#include "imp/abi.h"
#include "imp/blocks/moe.h"
#include "imp/registry.h"
#include "qwen_moe_arch.h"

namespace {

void register_qwen_moe(imp::Registry& reg) {
    imp::blocks::register_moe_ops(reg);
    reg.add_layer_kind("qwen3moe.moe", imp::qwen_moe::make_moe_layer);
    reg.add_arch(imp::qwen_moe::make_arch());
}

}  // namespace

IMP_PLUGIN(imp::PluginKind::Arch, "arch_qwen_moe", "0.1.0",
           "arch:qwen3moe,qwen3_moe;layer:qwen3moe.moe;op:blocks.moe_router,blocks.row_scale", register_qwen_moe)
