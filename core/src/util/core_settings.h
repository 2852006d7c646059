// The core's own settings, declared in the same scheme as a plugin's (imp/settings.h) under the name "core" and set
// in the profile's [plugin.core] table: the CUDA executor's kernel switches and the engine's weight fusion.
#pragma once
#include <string>

#include "imp/export.h"
#include "imp/settings.h"

namespace imp {

class Registry;

struct CoreSettings {
    bool pdl = true;            // programmatic dependent launch between kernels (Hopper and newer)
    bool attention_mma = true;  // tensor-core prefill attention for BF16/F16 KV caches
    bool attention_mma_fp8 = false;  // ... and for FP8 E4M3 KV caches
    std::string decode_attention = "one";  // "one": one-kernel decode (where it applies); "split": split-KV + combine
    bool decode_attention_hd256 = true;    // the one-kernel decode for head_dim 256 too
    int decode_attention_mma_rows = 0;     // decode steps of this many rows or more: the tensor-core attention
    bool attention_mma_hd256 = false;      // the tensor-core prefill attention for head_dim 256 too
    bool fuse_weights = true;   // row-concatenate q|k|v and gate|up into one matrix where the file allows it
    bool l2_prefetch = false;   // decode: the next layer's weights prefetched into L2 while a layer runs
    int router_cluster = 8;     // CUDA MoE router: CTAs per token tile (8 or 16)
    int router_warps = 8;       // CUDA MoE router: warps per CTA (8 or 16)
    bool router_wide = false;   // CUDA MoE router of decode-sized calls: one warp per row over many CTAs
    bool moe_shared_slot = true;   // MoE decode: the shared expert as one more slot of the routed launches
};

void declare_core_settings(Settings& s);
IMP_API CoreSettings core_settings(const Settings& s);
IMP_API CoreSettings core_settings(const Registry& reg);

}  // namespace imp
