// Switch for the tensor-core prefill attention (attention_mma.cuh). attention() uses it for BF16 and F16 KV caches
// when max_query_len >= kAttnMmaMinTokens and head_dim <= 128 is a multiple of 8 (otherwise, and for decode, the fp32
// kernel of attention_kernel.cuh runs). On by default; IMP_ATTN_MMA=0 in the environment turns it off for the
// process, attention_set_tensor_cores(false) until it is turned on again (tests and benchmarks compare the two).
// A CTA of the kernel has 4 or 8 warps (16 query rows each); by default attention() takes 8 when the grid then still
// has at least two CTAs per SM, else 4; attention_set_mma_warps(4 or 8) fixes it, (0) restores the default.
#pragma once
#include <cstdint>

namespace imp::cuda_kernels {

constexpr int64_t kAttnMmaMinTokens = 16;

void attention_set_tensor_cores(bool on);
bool attention_tensor_cores();
void attention_set_mma_warps(int warps);
int attention_mma_warps();  // 0: chosen per call

}  // namespace imp::cuda_kernels
