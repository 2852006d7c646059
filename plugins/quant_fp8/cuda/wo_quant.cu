// Weight-only CUDA kernels: the FP8 GEMM's activation quantization and its fp32 epilogue (wo_kernels.h).
//   Per tensor (one unit per call): amax_parts_kernel, a CTA per group of rows, writes one partial amax per CTA
//     (at most kMaxParts; no atomics, nothing to clear); quantize_kernel, a CTA per row, reduces the partials
//     (from L2) and quantizes its row. x is read twice (the second time mostly from L2).
//   Per token (one unit per row): quantize_rows_kernel, a CTA per row: the row's amax, its unit, then the row
//     quantized (its second read hits L1 / L2): x read once from memory, one launch.
// 16-byte activation loads when x and its row stride allow, 4 E4M3 codes per 4-byte store; q = e4m3(x / unit)
// with an IEEE division, as the CPU reference (wo_test_util.h fp8_activations). Deterministic.
#include <cuda_fp8.h>

#include "imp/cuda/check.h"
#include "imp/cuda/launch.cuh"
#include "wo_kernels.h"

namespace imp::wo {
namespace {

constexpr int kThreads = 256;

// The max of v (>= 0) over the CTA, returned to every thread; red: kThreads / 32 floats of shared memory.
__device__ __forceinline__ float block_max(float v, float* red) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xFFFFFFFFu, v, o));
    __syncthreads();  // red may still be read by a previous call
    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = v;
    __syncthreads();
    v = red[0];
#pragma unroll
    for (int w = 1; w < kThreads / 32; ++w) v = fmaxf(v, red[w]);
    return v;
}

// Activations c..c+3 of row xr, zero past cols; vec: xr is 16-byte aligned.
__device__ __forceinline__ float4 load4(const float* __restrict__ xr, int64_t c, int64_t cols, bool vec) {
    if (vec && c + 4 <= cols) return __ldg(reinterpret_cast<const float4*>(xr + c));
    float4 v;
    v.x = c < cols ? xr[c] : 0.f;
    v.y = c + 1 < cols ? xr[c + 1] : 0.f;
    v.z = c + 2 < cols ? xr[c + 2] : 0.f;
    v.w = c + 3 < cols ? xr[c + 3] : 0.f;
    return v;
}

// This thread's share of max |x| over row xr.
__device__ __forceinline__ float row_amax(const float* __restrict__ xr, int64_t cols, bool vec) {
    float m = 0.f;
    for (int64_t c = int64_t(threadIdx.x) * 4; c < cols; c += kThreads * 4) {
        const float4 v = load4(xr, c, cols, vec);
        m = fmaxf(m, fmaxf(fmaxf(fabsf(v.x), fabsf(v.y)), fmaxf(fabsf(v.z), fabsf(v.w))));
    }
    return m;
}

__device__ __forceinline__ float unit_of(float amax) {
    return amax > 0.f ? amax / 448.f : 1.f;
}

// Row xr as E4M3 codes o[0, ldo) (ldo % 4 == 0, zero past cols).
__device__ __forceinline__ void quantize_row(const float* __restrict__ xr, int64_t cols, bool vec, float unit,
                                             uint8_t* __restrict__ o, int64_t ldo) {
    for (int64_t c = int64_t(threadIdx.x) * 4; c < ldo; c += kThreads * 4) {
        const float4 v = load4(xr, c, cols, vec);
        const uint32_t lo = __nv_cvt_float2_to_fp8x2(make_float2(v.x / unit, v.y / unit), __NV_SATFINITE, __NV_E4M3);
        const uint32_t hi = __nv_cvt_float2_to_fp8x2(make_float2(v.z / unit, v.w / unit), __NV_SATFINITE, __NV_E4M3);
        *reinterpret_cast<uint32_t*>(o + c) = (lo & 0xFFFFu) | (hi & 0xFFFFu) << 16;
    }
}

__device__ __forceinline__ bool vec_ok(const float* x, int64_t xs) {
    return (reinterpret_cast<uintptr_t>(x) & 15) == 0 && xs % 4 == 0;
}

__global__ void __launch_bounds__(kThreads)
    amax_parts_kernel(const float* __restrict__ x, int64_t xs, int64_t n, int64_t cols, float* __restrict__ stat) {
    __shared__ float red[kThreads / 32];
    const bool vec = vec_ok(x, xs);
    float m = 0.f;
    for (int64_t t = blockIdx.x; t < n; t += gridDim.x) m = fmaxf(m, row_amax(x + t * xs, cols, vec));
    m = block_max(m, red);
    if (threadIdx.x == 0) stat[kStatParts + blockIdx.x] = m;
}

__global__ void __launch_bounds__(kThreads)
    quantize_kernel(const float* __restrict__ x, int64_t xs, int64_t cols, uint8_t* __restrict__ out, int64_t ldo,
                    float* __restrict__ stat, int n_parts) {
    __shared__ float red[kThreads / 32];
    float m = 0.f;
    for (int i = threadIdx.x; i < n_parts; i += kThreads) m = fmaxf(m, stat[kStatParts + i]);
    const float unit = unit_of(block_max(m, red));
    if (blockIdx.x == 0 && threadIdx.x == 0) stat[kStatUnit] = unit;
    quantize_row(x + int64_t(blockIdx.x) * xs, cols, vec_ok(x, xs), unit, out + int64_t(blockIdx.x) * ldo, ldo);
}

__global__ void __launch_bounds__(kThreads)
    quantize_rows_kernel(const float* __restrict__ x, int64_t xs, int64_t cols, uint8_t* __restrict__ out,
                         int64_t ldo, float* __restrict__ units) {
    __shared__ float red[kThreads / 32];
    const bool vec = vec_ok(x, xs);
    const float* xr = x + int64_t(blockIdx.x) * xs;
    const float unit = unit_of(block_max(row_amax(xr, cols, vec), red));
    if (threadIdx.x == 0) units[blockIdx.x] = unit;
    quantize_row(xr, cols, vec, unit, out + int64_t(blockIdx.x) * ldo, ldo);
}

__global__ void scale_rows_kernel(const float* __restrict__ tmp, int64_t ldt, int64_t rows,
                                  const float* __restrict__ s_row, const float* __restrict__ s_tok,
                                  float* __restrict__ y, int64_t ys, int accumulate) {
    const int64_t r = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (r >= rows) return;
    const int64_t t = blockIdx.y;
    float v = tmp[t * ldt + r];
    if (s_row) v *= s_row[r];
    if (s_tok) v *= s_tok[t];
    float* yp = y + t * ys + r;
    *yp = accumulate ? *yp + v : v;
}

}  // namespace

void quantize_fp8(const float* x, int64_t xs, int64_t n, int64_t cols, uint8_t* out, int64_t ldo, float* stat,
                  cudaStream_t st) {
    if (n <= 0) return;
    // One unit over all n rows: the partials cover every row before any row is quantized.
    const int parts = int(n < kMaxParts ? n : kMaxParts);
    amax_parts_kernel<<<unsigned(parts), kThreads, 0, st>>>(x, xs, n, cols, stat);
    IMP_CUDA_CHECK_LAUNCH();
    for (int64_t t0 = 0; t0 < n; t0 += 65535) {
        const int64_t nt = n - t0 < 65535 ? n - t0 : 65535;
        quantize_kernel<<<unsigned(nt), kThreads, 0, st>>>(x + t0 * xs, xs, cols, out + t0 * ldo, ldo, stat, parts);
        IMP_CUDA_CHECK_LAUNCH();
    }
}

void quantize_fp8_rows(const float* x, int64_t xs, int64_t n, int64_t cols, uint8_t* out, int64_t ldo, float* units,
                       cudaStream_t st) {
    for (int64_t t0 = 0; t0 < n; t0 += 65535) {
        const int64_t nt = n - t0 < 65535 ? n - t0 : 65535;
        quantize_rows_kernel<<<unsigned(nt), kThreads, 0, st>>>(x + t0 * xs, xs, cols, out + t0 * ldo, ldo,
                                                                 units + t0);
        IMP_CUDA_CHECK_LAUNCH();
    }
}

void scale_rows(const float* tmp, int64_t ldt, int64_t rows, int64_t n, const float* s_row, const float* s_tok,
                float* y, int64_t ys, bool accumulate, cudaStream_t st) {
    if (rows <= 0) return;
    for (int64_t t0 = 0; t0 < n; t0 += 65535) {
        const int64_t nt = n - t0 < 65535 ? n - t0 : 65535;
        const dim3 grid(unsigned(::imp::cuda::div_up(rows, kThreads)), unsigned(nt));
        scale_rows_kernel<<<grid, kThreads, 0, st>>>(tmp + t0 * ldt, ldt, rows, s_row, s_tok ? s_tok + t0 : nullptr,
                                                      y + t0 * ys, ys, accumulate ? 1 : 0);
        IMP_CUDA_CHECK_LAUNCH();
    }
}

}  // namespace imp::wo
