// arch_gdn: the "gdn" Arch (GGUF qwen3next, qwen35, qwen35moe; HF qwen3_next, qwen3_5[_moe][_text]), the Gated
// DeltaNet ops (ops/gdn_ops.h: CPU references, CUDA kernels, conformance checks) and the MoE block's ops.
#include "gdn_arch.h"
#include "gdn_ops.h"
#include "imp/abi.h"
#include "imp/blocks/moe.h"
#include "imp/registry.h"
#include "regroup_op.h"

namespace {

void register_gdn(imp::Registry& reg) {
    imp::blocks::register_moe_ops(reg);
    imp::gdn::register_gdn_ops(reg);
    imp::gdn_arch::register_regroup(reg);
    reg.add_setting({"decode_fused_norm", true,
                     "decode steps: the gated RMSNorm inside gdn.rule_decode (one launch less per GDN layer); false: "
                     "gdn.gated_norm after it",
                     {}});
    reg.add_setting({"decode_norm_warps", std::string("8"),
                     "CUDA decode steps with decode_fused_norm: warps per v-head of gdn.rule_decode's block (8, 16 or "
                     "32; at head_v_dim 128, 32 read the head's state in one round of loads)",
                     {"8", "16", "32"}});
    reg.add_setting({"decode_norm_ctas", std::string("4"),
                     "CUDA decode steps with decode_fused_norm: CTAs per v-head of gdn.rule_decode (1; or 2, 4 (the default), 8: a "
                     "thread-block cluster splitting the head's value columns, each CTA with decode_norm_warps warps)",
                     {"1", "2", "4", "8"}});
    reg.add_setting({"decode_conv_fused", false,
                     "CUDA decode steps with decode_fused_norm: gdn.decode_step, the conv, the delta rule and the gated "
                     "norm in one kernel (one launch less per GDN layer, q|k|v kept on chip; clusters of Hv/Hk x "
                     "decode_norm_ctas CTAs, at most 8); false: gdn.conv, then gdn.rule_decode",
                     {}});
    reg.add_setting({"warp_kernels", true,
                     "CUDA gdn.conv (prefill steps: the one-warp kernel with 16-byte accesses where the strides allow; "
                     "decode steps with 4 taps: the kernel reading weights and state before the PDL wait) and "
                     "gdn.gated_norm on the one-warp kernels; false: one block per row and head",
                     {}});
    reg.add_setting({"prefill_rule", std::string("mma32"),
                     "CUDA gdn.rule_chunked: auto (the kernel's choice), fused (one kernel, no workspace), split64 / "
                     "split32 (chunk-parallel prep + state kernel, 64 / 32 value columns per block), split32_mma_prep "
                     "(split32 with the prep kernel on mma.sync), mma32 / mma64 (both kernels on mma.sync, 32 / 64 columns)",
                     {"auto", "fused", "split64", "split32", "split32_mma_prep", "mma32", "mma64"}});
    reg.add_arch(imp::gdn_arch::make_arch());
}

}  // namespace

IMP_PLUGIN(imp::PluginKind::Arch, "arch_gdn", "0.1.0",
           "arch:qwen3next,qwen35,qwen35moe,qwen3_next,qwen3_5,qwen3_5_text,qwen3_5_moe,qwen3_5_moe_text;"
           "op:gdn.conv,gdn.rule_decode,gdn.rule_chunked,gdn.gated_norm,gdn.decode_step,gdn.regroup,blocks.moe_router,blocks.row_scale",
           register_gdn)
