// arch_gdn: "gdn.regroup", the gather from Qwen3-Next's grouped projection layout to the canonical one gdn.conv
// reads (transformers Qwen3NextGatedDeltaNet.fix_query_key_value_ordering). R = Hv / Hk.
//   mode 0 (qkvz): x row, per key head g < Hk: [q dk | k dk | v R*dv | z R*dv]  ->
//                  y row: [q all key heads | k all | v all (v-head g*R + r) | z all]
//   mode 1 (ba):   x row, per key head g: [b R | a R]  ->  y row: [b all (v-head g*R + r) | a all]
// y never aliases x. CPU kernel (regroup_cpu.cpp, the reference), CUDA kernel (regroup.cu), conformance check.
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

// Throws imp::Error naming the op and the field for invalid arguments (dims, null pointers, strides).
void validate_regroup(const Regroup::Args& a);
// Columns of an output row: 2 * key_dim + 2 * value_dim (mode 0) or 2 * Hv (mode 1).
int64_t regroup_cols(const Regroup::Args& a);

void regroup_cpu(Executor& ex, const Regroup::Args& a);
void regroup_cuda(Executor& ex, const Regroup::Args& a);
// CUDA vs CPU on fresh random rows and shapes (both modes, GVA ratios 1..4, strides wider than the rows).
std::string check_regroup(Executor& cpu, Executor& dev, uint64_t seed);

// Registers the kernels and the check unless the registry has the op already.
void register_regroup(Registry& reg);

}  // namespace imp::gdn_arch
