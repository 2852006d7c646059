// arch_gdn: the "gdn" Arch (GGUF qwen3next, qwen35, qwen35moe; HF qwen3_next, qwen3_5[_moe][_text]), the Gated
// DeltaNet ops (ops/gdn_ops.h: CPU references, CUDA kernels, conformance checks) and the MoE block's ops.
#include "gdn_arch.h"
#include "gdn_ops.h"
#include "imp/abi.h"
#include "imp/blocks/moe.h"
#include "imp/registry.h"

namespace {

void register_gdn(imp::Registry& reg) {
    imp::blocks::register_moe_ops(reg);
    imp::gdn::register_gdn_ops(reg);
    reg.add_arch(imp::gdn_arch::make_arch());
}

}  // namespace

IMP_PLUGIN(imp::PluginKind::Arch, "arch_gdn", "0.1.0",
           "arch:qwen3next,qwen35,qwen35moe,qwen3_next,qwen3_5,qwen3_5_text,qwen3_5_moe,qwen3_5_moe_text;"
           "op:gdn.conv,gdn.rule_decode,gdn.rule_chunked,gdn.gated_norm,gdn.regroup,blocks.moe_router,blocks.row_scale",
           register_gdn)
