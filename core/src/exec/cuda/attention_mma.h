// Limits of the tensor-core prefill attention (attention_mma.cuh). attention() uses it for BF16 and F16 KV caches
// when max_query_len >= kAttnMmaMinTokens and head_dim <= 128 is a multiple of 8 (with
// AttnOptions::tensor_cores_hd256 also 136..256, 4 warps; otherwise the fp32 kernel of attention_kernel.cuh runs),
// and for decode steps of at least AttnOptions::decode_mma_rows sequences (else decode takes attention_decode.cuh or
// the split-KV kernel), unless the executor's AttnOptions::tensor_cores is off ([plugin.core]
// attention_mma = false). A CTA has 4 or 8 warps (16 query rows each); by default attention() takes 8 when the grid
// then still has at least two CTAs per SM, else 4; AttnOptions::mma_warps fixes it.
#pragma once
#include <cstdint>

namespace imp::cuda_kernels {

constexpr int64_t kAttnMmaMinTokens = 16;

}  // namespace imp::cuda_kernels
