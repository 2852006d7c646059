// CUDA kernels of gdn.gated_norm (gdn_ops.h): y = x * rsqrt(mean x^2 + eps) * w * silu(z) per (row, head).
// x may equal y (each element is read before it is written by its thread).
//   warp kernel (GatedNorm::Args::variant 0, when 16-byte accesses are possible): one warp per (row, head), 4
//     consecutive elements per lane and step of 128, a warp sum of squares;
//   block kernel (variant 1, or when the warp kernel does not apply): one block of 128 threads per (row, head).
#include "gdn_kernels.h"
#include "imp/cuda/check.h"
#include "imp/cuda/launch.cuh"
#include "imp/cuda/reduce.cuh"

namespace imp::gdn {

namespace {

constexpr int kThreads = 128;
constexpr int kMaxPerThread = 4;

__global__ void __launch_bounds__(kThreads) gated_norm_kernel(GatedNorm::Args a) {
    imp::cuda::pdl_launch_dependents();
    imp::cuda::pdl_wait();
    const int64_t t = blockIdx.x;
    const int64_t off = int64_t(blockIdx.y) * a.head_dim;
    const float* x = a.x + t * a.x_stride + off;
    const float* z = a.z + t * a.z_stride + off;
    float v[kMaxPerThread], ss = 0.f;
#pragma unroll
    for (int e = 0; e < kMaxPerThread; ++e) {
        const int i = threadIdx.x + e * kThreads;
        v[e] = i < a.head_dim ? x[i] : 0.f;
        ss += v[e] * v[e];
    }
    __shared__ float red[32];
    ss = imp::cuda::block_sum(ss, red);
    const float inv = rsqrtf(ss / float(a.head_dim) + a.eps);
    float* y = a.y + t * a.y_stride + off;
#pragma unroll
    for (int e = 0; e < kMaxPerThread; ++e) {
        const int i = threadIdx.x + e * kThreads;
        if (i < a.head_dim) {
            const float zz = z[i];
            y[i] = v[e] * inv * a.w[i] * (zz / (1.f + expf(-zz)));
        }
    }
}

constexpr int kWarpsPerBlock = 8, kMaxVec = 4;  // head_dim <= 4 * 128

__device__ __forceinline__ float silu(float z) { return z / (1.f + expf(-z)); }

__global__ void __launch_bounds__(32 * kWarpsPerBlock) gated_norm_warp_kernel(GatedNorm::Args a) {
    imp::cuda::pdl_launch_dependents();
    imp::cuda::pdl_wait();
    const int lane = threadIdx.x & 31;
    const int64_t unit = int64_t(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5);
    if (unit >= a.n_tokens * a.n_heads) return;
    const int64_t t = unit / a.n_heads, off = (unit % a.n_heads) * a.head_dim;
    const float* x = a.x + t * a.x_stride + off;
    float4 v[kMaxVec];
    float ss = 0.f;
#pragma unroll
    for (int e = 0; e < kMaxVec; ++e) {
        const int i = 4 * lane + 128 * e;
        v[e] = i < a.head_dim ? *reinterpret_cast<const float4*>(x + i) : make_float4(0.f, 0.f, 0.f, 0.f);
        ss += v[e].x * v[e].x + v[e].y * v[e].y + v[e].z * v[e].z + v[e].w * v[e].w;
    }
    const float inv = rsqrtf(imp::cuda::warp_sum(ss) / float(a.head_dim) + a.eps);
    const float* z = a.z + t * a.z_stride + off;
    float* y = a.y + t * a.y_stride + off;
#pragma unroll
    for (int e = 0; e < kMaxVec; ++e) {
        const int i = 4 * lane + 128 * e;
        if (i >= a.head_dim) continue;
        const float4 zz = *reinterpret_cast<const float4*>(z + i), w = *reinterpret_cast<const float4*>(a.w + i);
        *reinterpret_cast<float4*>(y + i) = make_float4(v[e].x * inv * w.x * silu(zz.x), v[e].y * inv * w.y * silu(zz.y),
                                                        v[e].z * inv * w.z * silu(zz.z), v[e].w * inv * w.w * silu(zz.w));
    }
}

bool warp_kernel_applies(const GatedNorm::Args& a) {
    const uintptr_t ptrs = reinterpret_cast<uintptr_t>(a.x) | reinterpret_cast<uintptr_t>(a.z) |
                           reinterpret_cast<uintptr_t>(a.w) | reinterpret_cast<uintptr_t>(a.y);
    return (ptrs & 15u) == 0 && a.x_stride % 4 == 0 && a.z_stride % 4 == 0 && a.y_stride % 4 == 0 &&
           a.head_dim % 4 == 0 && a.head_dim <= 4 * 32 * kMaxVec;
}

}  // namespace

void gated_norm_cuda(Executor& ex, const GatedNorm::Args& a) {
    validate(a);
    const CudaHandles* h = ex.cuda();
    if (!h) throw Error(std::string(GatedNorm::name) + ": executor '" + ex.name() + "' is not a CUDA executor");
    if (a.head_dim > kThreads * kMaxPerThread)
        throw Error(std::string(GatedNorm::name) + ": head_dim " + std::to_string(a.head_dim) + " above " +
                    std::to_string(kThreads * kMaxPerThread) + " is not supported by the CUDA kernel");
    if (a.variant < 0 || a.variant > 1)
        throw Error(std::string(GatedNorm::name) + ": variant " + std::to_string(a.variant) + " is not 0..1");
    if (a.n_tokens == 0) return;
    imp::cuda::LaunchConfig c = imp::cuda::launch_config(*h);
    if (a.variant == 0 && warp_kernel_applies(a)) {
        c.grid = dim3(unsigned(imp::cuda::div_up(a.n_tokens * a.n_heads, kWarpsPerBlock)));
        c.block = dim3(32 * kWarpsPerBlock);
        IMP_CUDA_CHECK(imp::cuda::launch(c, gated_norm_warp_kernel, a));
        return;
    }
    c.grid = dim3(unsigned(a.n_tokens), unsigned(a.n_heads));
    c.block = dim3(kThreads);
    IMP_CUDA_CHECK(imp::cuda::launch(c, gated_norm_kernel, a));
}

}  // namespace imp::gdn
