// quant_ggml CUDA: device helpers shared by the kernels (tensor-core MMA, bf16 packing, exact dequantization).
// Launch, PDL, error-check and MMA helpers come from the SDK (imp/cuda/launch.cuh, check.h, mma.cuh).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "imp/cuda/mma.cuh"
#include "tile_layout.h"

namespace imp::ggml::cuda {

using ::imp::cuda::mma_bf16;     // imp/cuda/mma.cuh
using ::imp::cuda::pack_bf16x2;

// a * b + c on bf16 pairs.
__device__ __forceinline__ uint32_t bf16x2_fma(uint32_t a, uint32_t b, uint32_t c) {
    uint32_t d;
    asm("fma.rn.bf16x2 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
    return d;
}

constexpr uint32_t kBf16One2 = 0x3F803F80u;
// -(128 + off) as a bf16 pair (off < 128): sign, exponent 2^7, mantissa off.
__host__ __device__ constexpr uint32_t neg_bias2(int off) {
    return (0xC300u | uint32_t(off)) * 0x00010001u;
}

// The A-fragment register k of k-step s: signed codes (code - kOffset) as an exact bf16 pair.
template <class L>
__device__ __forceinline__ uint32_t a_reg(const typename L::Frag& f, int s, int k) {
    if constexpr (L::kNibbles) {
        return bf16x2_fma(L::bits(f, s, k), kBf16One2, neg_bias2(L::kOffset));
    } else {
        const uint32_t w = L::word(f, s, k);
        const int i = L::byte_index(k);
        const float v0 = __uint_as_float(__byte_perm(w, 0x4B, 0x4550 | i)) - float(8388608 + L::kOffset);
        const float v1 = __uint_as_float(__byte_perm(w, 0x4B, 0x4550 | (i + 1))) - float(8388608 + L::kOffset);
        return pack_bf16x2(v0, v1);
    }
}

// One part of x as a bf16 pair: lanes with negpart = 0 take hi = x truncated to bf16, lanes with negpart = -1 take
// lo = (x - hi) truncated; hi + lo keeps ~16 significant bits of x (relative error below 2^-15).
__device__ __forceinline__ uint32_t split_pair(float x0, float x1, float negpart) {
    const float t0 = __uint_as_float(__float_as_uint(x0) & 0xFFFF0000u);
    const float t1 = __uint_as_float(__float_as_uint(x1) & 0xFFFF0000u);
    const float v0 = fmaf(t0, negpart, x0), v1 = fmaf(t1, negpart, x1);
    return __byte_perm(__float_as_uint(v0), __float_as_uint(v1), 0x7632);
}

// The reference value of a code: mul * q (+ add), never fused, so bit for bit the CPU dequantization.
template <class L>
__device__ __forceinline__ float dq_value(const RowScale& s, int q) {
    const float p = __fmul_rn(s.mul, float(q));
    if constexpr (L::kHasMin)
        return __fadd_rn(p, s.add);
    else
        return p;
}

}  // namespace imp::ggml::cuda
