// Tensor-core building blocks of the mma variants of gdn.rule_chunked (rule_chunked_prep_mma.cu,
// rule_chunked_state_mma.cu): ldmatrix loads, the bf16 m16n8k16 product with fp32 accumulation, bf16 packing and
// cp.async. Fragment layouts (PTX ISA, mma.m16n8k16, g = lane / 4, t = lane % 4):
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

namespace imp::gdn::mma {

__device__ __forceinline__ int a_off(int lane, int ld) { return (lane & 15) * ld + (lane >> 4) * 8; }
__device__ __forceinline__ int bt_off(int lane, int ld) {
    return ((lane & 7) + ((lane >> 4) << 3)) * ld + ((lane >> 3) & 1) * 8;
}

__device__ __forceinline__ unsigned smem_addr(const void* p) {
    return static_cast<unsigned>(__cvta_generic_to_shared(p));
}
__device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], const __nv_bfloat16* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(p))
                 : "memory");
}
__device__ __forceinline__ void ldsm_x4_trans(uint32_t (&r)[4], const __nv_bfloat16* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(p))
                 : "memory");
}

// d += A B for one m16n8k16 tile (A row-major, B column-major fragments, fp32 accumulators).
__device__ __forceinline__ void mma_bf16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// bf16 pair {lo, hi} (lo at the lower address), round to nearest even.
__device__ __forceinline__ uint32_t pack_bf16x2(float lo, float hi) {
    uint32_t d;
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(d) : "f"(hi), "f"(lo));
    return d;
}
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
