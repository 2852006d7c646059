// Weight-only CUDA kernels: device helpers for reading and decoding the weight layouts (wo_layout.h): streaming
// 16-byte loads, NVFP4 words to fp32 (the half2 bit extraction, exact), E4M3 to fp32 (cvt e4m3x2 -> f16x2, exact).
#pragma once
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <cstdint>

namespace imp::wo {

__device__ __forceinline__ uint4 ld_stream(const uint8_t* p) {
    uint4 v;
    asm("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
        : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
        : "l"(p));
    return v;
}

__device__ __forceinline__ uint32_t word(const uint4& q, int i) {
    return i == 0 ? q.x : i == 1 ? q.y : i == 2 ? q.z : q.w;
}

// 8 NVFP4 codes (one word of the device layout) as e2m1 * 2^-14.
__device__ __forceinline__ void dec_nvfp4(uint32_t q, float (&w)[8]) {
#pragma unroll
    for (int k = 0; k < 4; ++k) {
        const uint32_t h = (q & 0x80008000u) | ((q >> 3) & 0x0E000E00u);
        const float2 f = __half22float2(*reinterpret_cast<const __half2*>(&h));
        w[2 * k] = f.x;
        w[2 * k + 1] = f.y;
        q <<= 4;
    }
}

// 4 E4M3 codes (bytes of q, low first) as fp32.
__device__ __forceinline__ void dec_fp8(uint32_t q, float* w) {
#pragma unroll
    for (int k = 0; k < 2; ++k) {
        const __half2_raw r = __nv_cvt_fp8x2_to_halfraw2(__nv_fp8x2_storage_t((q >> (16 * k)) & 0xFFFFu), __NV_E4M3);
        const float2 f = __half22float2(__half2(r));
        w[2 * k] = f.x;
        w[2 * k + 1] = f.y;
    }
}

__device__ __forceinline__ float e4m3(uint32_t b) {
    return __half2float(__half(__nv_cvt_fp8_to_halfraw(__nv_fp8_storage_t(b & 0xFFu), __NV_E4M3)));
}

}  // namespace imp::wo
