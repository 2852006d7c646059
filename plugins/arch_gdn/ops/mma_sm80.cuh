// Tensor-core building blocks of the mma variants of gdn.rule_chunked (rule_chunked_prep_mma.cu,
// rule_chunked_state_mma.cu): ldmatrix loads, the bf16 m16n8k16 product with fp32 accumulation and bf16 packing
// (from the SDK's imp/cuda/mma.cuh), lane offsets and bf16 stores. Fragment layouts (PTX ISA, mma.m16n8k16,
// g = lane / 4, t = lane % 4):
//   A 16x16: a0 (row g, cols 2t, 2t+1), a1 (row g+8, same cols), a2 (row g, cols 2t+8, 2t+9), a3 (row g+8, cols 2t+8..)
//   B 16x8:  b0 (k 2t, 2t+1; col g), b1 (k 2t+8, 2t+9; col g)
//   C 16x8:  c0, c1 (row g, cols 2t, 2t+1), c2, c3 (row g+8, cols 2t, 2t+1)
// Lane offsets of the ldmatrix x4 row addresses (ld: the row stride in elements, a multiple of 8):
//   a_off:   A from row-major [m][k] storage (no transpose); also B of two n8 tiles from [k][n] storage (transpose)
//   bt_off:  B of two n8 tiles from [n][k] storage (no transpose); also A from [k][m] storage (transpose)
// With a_off and ldsm_x4_trans on [k][n], r0, r1 are b0, b1 of columns 0..7 and r2, r3 of columns 8..15; with bt_off
// and ldsm_x4 on [n][k] the same; with bt_off and ldsm_x4_trans on [k][m], r0..r3 are a0..a3.
#pragma once
#include <cuda_bf16.h>

#include <cstdint>

#include "imp/cuda/mma.cuh"

namespace imp::gdn::mma {

__device__ __forceinline__ int a_off(int lane, int ld) { return (lane & 15) * ld + (lane >> 4) * 8; }
__device__ __forceinline__ int bt_off(int lane, int ld) {
    return ((lane & 7) + ((lane >> 4) << 3)) * ld + ((lane >> 3) & 1) * 8;
}

using ::imp::cuda::ldsm_x4;  // imp/cuda/mma.cuh
using ::imp::cuda::ldsm_x4_trans;
using ::imp::cuda::mma_bf16;
using ::imp::cuda::pack_bf16x2;
using ::imp::cuda::smem_addr;

__device__ __forceinline__ void store_bf16x2(__nv_bfloat16* p, float lo, float hi) {
    *reinterpret_cast<uint32_t*>(p) = pack_bf16x2(lo, hi);
}
__device__ __forceinline__ void store_bf16x4(__nv_bfloat16* p, float x, float y, float z, float w) {
    *reinterpret_cast<uint2*>(p) = make_uint2(pack_bf16x2(x, y), pack_bf16x2(z, w));
}
__device__ __forceinline__ float2 load_bf16x2(const __nv_bfloat16* p) {
    return __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(p));
}

__device__ __forceinline__ void zero(float (&d)[4]) { d[0] = d[1] = d[2] = d[3] = 0.f; }

}  // namespace imp::gdn::mma
