// Limits of the one-kernel decode attention (attention_decode.cuh). attention() uses it for decode steps (one row
// per sequence) over a BF16 or F16 KV cache with head_dim 64 or 128 (and 256 with AttnOptions::decode_hd256), 1 <= n_head / n_kv_head <= 8 and 16-byte
// aligned K / V, when its grid (one cluster of 8 CTAs per KV head and row, whatever the positions) holds at least a
// third of the SMs or the block tables address at most kDecAutoMaxCapacity positions (max_blocks * block_size; so
// that few KV heads at long contexts, where the split-KV grid is larger, keep that); other decodes take the
// split-KV fp32 kernel and its combine pass (attention_kernel.cuh). The one-kernel decode is the default;
// AttnOptions::decode_split = true (profile: [plugin.core] decode_attention = "split") turns it off. It sums in
// another order than the CPU reference, so whole-model tests compare logits within a tolerance, not greedy tokens.
// A CTA of the kernel has 4 warps (tiles of 32 keys; head_dim 256: 16 keys, two lanes per key in the score phase) or
// 8 (tiles of 16 keys, two lanes per key; head_dim 256: 8 keys, four lanes); kDecDefaultWarps by default,
// AttnOptions::decode_warps fixes it.
#pragma once
#include <cstdint>

namespace imp::cuda_kernels {

constexpr int kDecDefaultWarps = 8;
constexpr int64_t kDecAutoMaxCapacity = 8192;

}  // namespace imp::cuda_kernels
