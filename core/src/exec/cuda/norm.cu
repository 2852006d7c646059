// RMSNorm: one block per row, fp32 accumulation, 16-byte loads when the row allows them.
#include "exec/cuda/common.cuh"
#include "exec/cuda/cuda_check.h"
#include "exec/cuda/kernels.h"
#include "exec/cuda/launch.cuh"
#include "imp/cuda/row_ops.cuh"

namespace imp::cuda_kernels {

namespace {

// float4 of the weight each thread loads before the PDL wait (16-byte path): rows of up to 4 x 4 x 512 = 8192
// floats are read whole then, longer ones in the loop as before.
constexpr int kNormPre = 4;

template <bool kVec>
__global__ void rms_norm_kernel(const float* x, const float* __restrict__ w, float* y, int64_t n,
                                float eps) {
    pdl_launch_dependents();
    // The weight (constant: never written by a kernel) is loaded before the wait, so that load overlaps the kernel
    // before; the products are the same as reading it in the loop.
    float4 wp[kNormPre];
    const float4* w4 = reinterpret_cast<const float4*>(w);
    if constexpr (kVec) {
#pragma unroll
        for (int k = 0; k < kNormPre; ++k) {
            const int64_t i = threadIdx.x + int64_t(k) * blockDim.x;
            wp[k] = w && i < n / 4 ? __ldg(w4 + i) : make_float4(1.f, 1.f, 1.f, 1.f);
        }
    }
    pdl_wait();
    __shared__ float red[32];
    const int64_t row = blockIdx.x;
    const float* xr = x + row * n;
    float* yr = y + row * n;
    const float scale = ::imp::cuda::rms_norm_scale<kVec>(xr, n, eps, red);
    if constexpr (kVec) {
        const int64_t n4 = n / 4;
        const float4* x4 = reinterpret_cast<const float4*>(xr);
        float4* y4 = reinterpret_cast<float4*>(yr);
        auto put = [&](int64_t i, const float4& g) {
            float4 v = x4[i];
            v.x *= scale, v.y *= scale, v.z *= scale, v.w *= scale;
            if (w) v.x *= g.x, v.y *= g.y, v.z *= g.z, v.w *= g.w;
            y4[i] = v;
        };
        int64_t i = threadIdx.x;
#pragma unroll
        for (int k = 0; k < kNormPre; ++k, i += blockDim.x)
            if (i < n4) put(i, wp[k]);
        for (; i < n4; i += blockDim.x) put(i, w ? w4[i] : make_float4(1.f, 1.f, 1.f, 1.f));
    } else {
        for (int64_t i = threadIdx.x; i < n; i += blockDim.x) yr[i] = w ? xr[i] * scale * w[i] : xr[i] * scale;
    }
}

}  // namespace

void rms_norm(const float* x, const float* w, float* y, int64_t rows, int64_t n, float eps, Queue s) {
    if (rows <= 0 || n <= 0) return;
    const bool vec = n % 4 == 0 && aligned16(x) && aligned16(y) && (!w || aligned16(w));
    const int threads = ::imp::cuda::rms_norm_threads(n, vec);
    IMP_CUDA_CHECK(launch(vec ? rms_norm_kernel<true> : rms_norm_kernel<false>, dim3(unsigned(rows)), dim3(threads), 0,
                          s.stream, s.pdl, x, w, y, n, eps));
}

}  // namespace imp::cuda_kernels
