// KV cache element types on the device: conversion to and from fp32 (FP8 E4M3 with a scale: stored = x / scale,
// saturating, round to nearest even, as the CPU reference), and the slot count of a KV pool.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "imp/executor.h"

namespace imp::cuda_kernels {

struct KvF32 {
    using T = float;
    __device__ static float load(T v, float) { return v; }
    __device__ static T store(float x, float) { return x; }
};
struct KvF16 {
    using T = __half;
    __device__ static float load(T v, float) { return __half2float(v); }
    __device__ static T store(float x, float) { return __float2half_rn(x); }
};
struct KvBF16 {
    using T = __nv_bfloat16;
    __device__ static float load(T v, float) { return __bfloat162float(v); }
    __device__ static T store(float x, float) { return __float2bfloat16_rn(x); }
};
struct KvF8 {
    using T = __nv_fp8_storage_t;  // unsigned char
    __device__ static float load(T v, float scale) {
        return __half2float(__half(__nv_cvt_fp8_to_halfraw(v, __NV_E4M3))) * scale;
    }
    __device__ static T store(float x, float scale) { return __nv_cvt_float_to_fp8(x / scale, __NV_SATFINITE, __NV_E4M3); }
};

// KV slots of the pool (n_blocks blocks of block_size positions).
inline int64_t kv_slots(const imp::KVCacheView& kv) { return kv.n_blocks * int64_t(kv.block_size); }

}  // namespace imp::cuda_kernels
