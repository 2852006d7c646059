// Limits of the one-kernel decode attention (attention_decode.cuh). attention() uses it for decode steps (one row
// per sequence) over a BF16 or F16 KV cache with head_dim 64 or 128 (and 256 with AttnOptions::decode_hd256),
// 1 <= n_head / n_kv_head <= 8 and 16-byte aligned K / V, when one_kernel_decode_grid_ok says its grid suits the
// step; other decodes take the split-KV fp32 kernel and its combine pass (attention_kernel.cuh). The one-kernel
// decode is the default; AttnOptions::decode_split = true (profile: [plugin.core] decode_attention = "split") turns
// it off. It sums in another order than the CPU reference, so whole-model tests compare logits within a tolerance,
// not greedy tokens. A CTA of the kernel has 4 warps (tiles of 32 keys; head_dim 256: 16 keys, two lanes per key in
// the score phase) or 8 (tiles of 16 keys, two lanes per key; head_dim 256: 8 keys, four lanes); kDecDefaultWarps
// by default (4 at head_dim 256: dec_default_warps), AttnOptions::decode_warps fixes it.
#pragma once
#include <cstdint>

namespace imp::cuda_kernels {

constexpr int kDecCluster = 8;  // CTAs per cluster (one cluster per KV head and row)
constexpr int kDecDefaultWarps = 8;
// Warps per CTA when AttnOptions::decode_warps is 0: 8, but 4 at head_dim 256 (H200, 16/2x256: equal up to ctx 1024,
// 1.16-1.31x faster from 4096, at 1 to 128 rows; at head_dim 128 the two are within a few percent).
constexpr int dec_default_warps(int head_dim) { return head_dim == 256 ? 4 : kDecDefaultWarps; }
constexpr int64_t kDecAutoMaxCapacity = 8192;
constexpr int kDecMaxWaves = 4;

// The grid is one cluster of kDecCluster CTAs (one per SM: ~145 KB of shared memory each) per KV head and row, whatever the
// positions. It is taken when that grid fills at most kDecMaxWaves waves of the SMs (many rows: each CTA's fixed
// cost, about 5 us a wave, dominates at short contexts; H200, 8B shape, ctx 64: 32 rows 81 us against the split-KV
// kernel's 13, 8 rows 23 against 10 but 1.3-1.9x faster from ctx 1024) and, as before, when it holds at least a
// third of the SMs or the block tables address at most kDecAutoMaxCapacity positions (max_blocks * block_size: few
// KV heads at long contexts keep the wider split-KV grid).
constexpr bool one_kernel_decode_grid_ok(int64_t n_kv_head, int64_t n_rows, int64_t max_ctx, int64_t sm_count) {
    const int64_t ctas = n_kv_head * n_rows * kDecCluster;
    return ctas <= int64_t(kDecMaxWaves) * sm_count && (max_ctx <= kDecAutoMaxCapacity || ctas * 3 >= sm_count);
}

}  // namespace imp::cuda_kernels
