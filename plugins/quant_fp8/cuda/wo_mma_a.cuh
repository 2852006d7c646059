// Weight-only CUDA kernels: the A operand of the tensor-core expert GEMM (wo_experts_gemm.cu: bf16 MMAs) for NVFP4
// and FP8 E4M3 matrices of the device layout (wo_layout.h).
//
// The k order inside a chunk is the codes' own: lane (g, c) (g = lane / 4, c = lane % 4) loads 16 contiguous code
// bytes of rows g and g + 8 of its 16-row group (NVFP4: the 32 columns 32c..32c+31 of a 128-column chunk; FP8: the 16
// columns 16c..16c+15 of a 64-column chunk) and in k-step s takes their columns 4s..4s+3: a0 / a1 the first two
// (rows g / g + 8), a2 / a3 the next two. B's matching registers hold those four columns of the lane's token.
//
// Dequantization, exact:
//   NVFP4: (q & 0x80008000) | ((q >> 3) & 0x0E000E00) makes a half2 of two codes worth e2m1 * 2^-14 (wo_decode.cuh);
//          times the block's E4M3 scale in fp16: e2m1 * e4m3 * 2^-14, a multiple of 2^-24 with at most 6
//          significant bits below 0.17, exact even where subnormal; in bf16 registers that value stays normal
//          (kBf16Unit = 2^14 puts the factor back).
//   FP8:   cvt e4m3x2 -> f16x2 (exact), to bf16 through fp32 (exact); kBf16Unit = 1.
// factor(): the per-tensor (NVFP4 global, FP8 scale) or per-row (FP8) multiplier of output row `row`.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <cstdint>

#include "imp/cuda/mma.cuh"
#include "wo_decode.cuh"
#include "wo_layout.h"

namespace imp::wo {

// One matrix of the device layout: its bytes and the layout fields the operands read.
struct MatrixRef {
    const uint8_t* m;
    int64_t ld, scale_ld, rows, cp;
    uint64_t scale_off, post_off;
    int64_t n_post;
};

__device__ __forceinline__ uint32_t half2_to_bf16x2(__half2 h) {
    const float2 f = __half22float2(h);
    return ::imp::cuda::pack_bf16x2(f.x, f.y);
}

template <Codec C>
struct MmaA;

template <>
struct MmaA<Codec::NVFP4> {
    static constexpr int kChunkCols = 128, kSteps = 8;
    struct Frag {
        uint4 q[2];  // rows g, g + 8: code bytes [64 ch + 16 c, +16) of the row
        uint32_t s;  // their two blocks' E4M3 scales: row g in bits 0-15, row g + 8 in bits 16-31
    };
    __device__ __forceinline__ static void load(const MatrixRef& r, int64_t row0, int ch, int lane, Frag& f) {
        const int64_t col = int64_t(ch) * kChunkCols + 32 * (lane & 3);
        f.s = 0u;
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            const int64_t row = row0 + (lane >> 2) + 8 * h;
            f.q[h] = make_uint4(0u, 0u, 0u, 0u);
            if (row < r.rows && col < r.cp) {
                f.q[h] = ld_stream(r.m + row * r.ld + col / 2);
                f.s |= uint32_t(__ldg(reinterpret_cast<const unsigned short*>(r.m + r.scale_off + row * r.scale_ld +
                                                                             col / 16)))
                       << (16 * h);
            }
        }
    }
    // The two code pairs of k-step s of row h as e2m1 * e4m3 * 2^-14 half2s.
    __device__ __forceinline__ static void pairs(const Frag& f, int s, int h, __half2& p0, __half2& p1) {
        const uint32_t q = word(f.q[h], s >> 1) << (8 * (s & 1));
        const __half sc = __half(__nv_cvt_fp8_to_halfraw(
            __nv_fp8_storage_t((f.s >> (16 * h + 8 * (s >> 2))) & 0xFFu), __NV_E4M3));
        const __half2 sc2 = __half2half2(sc);
        const uint32_t b0 = (q & 0x80008000u) | ((q >> 3) & 0x0E000E00u);
        const uint32_t b1 = ((q << 4) & 0x80008000u) | ((q << 1) & 0x0E000E00u);  // the codes 4 bits up
        p0 = __hmul2(*reinterpret_cast<const __half2*>(&b0), sc2);
        p1 = __hmul2(*reinterpret_cast<const __half2*>(&b1), sc2);
    }
    __device__ __forceinline__ static void regs_bf16(const Frag& f, int s, uint32_t (&a)[4]) {
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            __half2 p0, p1;
            pairs(f, s, h, p0, p1);
            a[h] = half2_to_bf16x2(p0);
            a[h + 2] = half2_to_bf16x2(p1);
        }
    }
    static constexpr float kBf16Unit = 16384.f;  // what the bf16 registers leave out
    __device__ __forceinline__ static float factor(const MatrixRef& r, int64_t) {
        return __ldg(reinterpret_cast<const float*>(r.m + r.post_off));
    }
};

template <>
struct MmaA<Codec::FP8> {
    static constexpr int kChunkCols = 64, kSteps = 4;
    struct Frag {
        uint4 q[2];  // rows g, g + 8: code bytes [64 ch + 16 c, +16) of the row
    };
    __device__ __forceinline__ static void load(const MatrixRef& r, int64_t row0, int ch, int lane, Frag& f) {
        const int64_t col = int64_t(ch) * kChunkCols + 16 * (lane & 3);
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            const int64_t row = row0 + (lane >> 2) + 8 * h;
            f.q[h] = make_uint4(0u, 0u, 0u, 0u);
            if (row < r.rows && col < r.cp) f.q[h] = ld_stream(r.m + row * r.ld + col);
        }
    }
    __device__ __forceinline__ static __half2 pair(uint32_t b) {
        return __half2(__nv_cvt_fp8x2_to_halfraw2(__nv_fp8x2_storage_t(b & 0xFFFFu), __NV_E4M3));
    }
    __device__ __forceinline__ static void regs_bf16(const Frag& f, int s, uint32_t (&a)[4]) {
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            const uint32_t w = word(f.q[h], s);
            a[h] = half2_to_bf16x2(pair(w));
            a[h + 2] = half2_to_bf16x2(pair(w >> 16));
        }
    }
    static constexpr float kBf16Unit = 1.f;
    __device__ __forceinline__ static float factor(const MatrixRef& r, int64_t row) {
        return __ldg(reinterpret_cast<const float*>(r.m + r.post_off) + (r.n_post == 1 ? 0 : row));
    }
};

}  // namespace imp::wo
