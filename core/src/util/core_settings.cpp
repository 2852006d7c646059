// The core's settings ([plugin.core]): declarations and the typed view the executor and engine use.
#include "util/core_settings.h"

#include "imp/registry.h"

namespace imp {

void declare_core_settings(Settings& s) {
    s.declare({"pdl", true, "CUDA: programmatic dependent launch between kernels (compute capability 9.0+)", {}});
    s.declare({"attention_mma", true, "CUDA: tensor-core prefill attention for BF16/F16 KV caches", {}});
    s.declare({"attention_mma_fp8", false,
               "CUDA: the tensor-core prefill attention for FP8 E4M3 KV caches too (codes converted to bf16 in "
               "shared memory, scales outside the MMAs); false: the fp32 kernel",
               {}});
    s.declare({"decode_attention", std::string("one"),
               "CUDA: decode attention kernel: one (one kernel per row and KV head, where it applies) or split "
               "(split-KV + combine)",
               {"split", "one"}});
    s.declare({"attention_mma_hd256", true,
               "CUDA: the tensor-core prefill attention for head_dim 256 too (BF16/F16 KV; Qwen3.5/3.6 full "
               "attention); false: the fp32 kernel for those heads",
               {}});
    s.declare({"decode_attention_hd256", true,
               "CUDA: the one-kernel decode attention for head_dim 256 too (Qwen3.5/3.6 full attention); false: "
               "split-KV + combine for those heads",
               {}});
    s.declare({"decode_attention_mma_rows", int64_t(0),
               "CUDA: decode steps of at least this many sequences run the tensor-core prefill attention (each "
               "sequence's GQA query rows as one tile; BF16/F16 KV, FP8 with attention_mma_fp8) instead of the split-KV or one-kernel decode; "
               "0: never",
               {}, 0, 1 << 20});
    s.declare({"l2_prefetch", false,
               "decode steps: while each layer runs, the weights the next layer reads whole are prefetched into the "
               "GPU's L2 cache (Layer::prefetch_weights)",
               {}});
    s.declare({"fuse_weights", true, "fuse q|k|v and gate|up into one matrix each where the file allows it", {}});
    s.declare({"router_cluster", std::string("8"),
               "CUDA: MoE router CTAs per token tile (one thread-block cluster; 16 is non-portable: where the device "
               "cannot schedule it, 8)",
               {"8", "16"}});
    s.declare({"router_warps", std::string("8"), "CUDA: MoE router warps per CTA", {"8", "16"}});
    s.declare({"router_grid", std::string("wide"),
               "CUDA: MoE router of decode-sized calls (up to 8 tokens): cluster (one thread-block cluster per token "
               "tile) or wide (one warp per router row over as many CTAs as the rows need)",
               {"cluster", "wide"}});
    s.declare({"moe_shared_slot", true,
               "MoE decode steps: the shared expert as one more slot of the routed experts' launches (gate|up, SwiGLU, "
               "down and the slot sum: 4 launches fewer per layer) where the expert format takes it (same format "
               "and shape as one expert)",
               {}});
}

CoreSettings core_settings(const Settings& s) {
    CoreSettings c;
    c.pdl = s.get_bool("pdl");
    c.attention_mma = s.get_bool("attention_mma");
    c.attention_mma_fp8 = s.get_bool("attention_mma_fp8");
    c.decode_attention = s.get_string("decode_attention");
    c.decode_attention_hd256 = s.get_bool("decode_attention_hd256");
    c.decode_attention_mma_rows = int(s.get_int("decode_attention_mma_rows"));
    c.attention_mma_hd256 = s.get_bool("attention_mma_hd256");
    c.fuse_weights = s.get_bool("fuse_weights");
    c.l2_prefetch = s.get_bool("l2_prefetch");
    c.router_cluster = std::stoi(s.get_string("router_cluster"));
    c.router_warps = std::stoi(s.get_string("router_warps"));
    c.router_wide = s.get_string("router_grid") == "wide";
    c.moe_shared_slot = s.get_bool("moe_shared_slot");
    return c;
}

CoreSettings core_settings(const Registry& reg) { return core_settings(reg.settings("core")); }

}  // namespace imp
