// arch_gdn: "gdn.regroup", the gather from Qwen3-Next's grouped projection layout to the canonical one gdn.conv
// reads (transformers Qwen3NextGatedDeltaNet.fix_query_key_value_ordering). R = Hv / Hk.
//   mode 0 (qkvz): x row, per key head g < Hk: [q dk | k dk | v R*dv | z R*dv]  ->
//                  y row: [q all key heads | k all | v all (v-head g*R + r) | z all]
//   mode 1 (ba):   x row, per key head g: [b R | a R]  ->  y row: [b all (v-head g*R + r) | a all]
// y never aliases x. CPU kernel here; the CUDA kernel is registered by the ops library when it has one.
#pragma once
#include <cstdint>

#include "gdn_ops.h"
#include "imp/registry.h"

namespace imp::gdn_arch {

struct Regroup {
    static constexpr const char* name = "gdn.regroup";
    struct Args {
        gdn::Dims dims;
        const float* x = nullptr;
        int64_t x_stride = 0;
        float* y = nullptr;
        int64_t y_stride = 0;
        int64_t n_tokens = 0;
        int mode = 0;  // 0: qkvz, 1: ba
    };
};

// Registers the CPU kernel unless the registry has one already.
void register_regroup_cpu(Registry& reg);

}  // namespace imp::gdn_arch
