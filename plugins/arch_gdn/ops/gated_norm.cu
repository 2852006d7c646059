// CUDA kernels of gdn.gated_norm and gdn.regroup (gdn_ops.h). Gated norm: one block of 128 threads per (row, head); a block sum of squares, then
// y = x * rsqrt(mean + eps) * w * silu(z). x may equal y (each element is read before it is written by its thread).
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

// gdn.regroup: a grid-stride gather over [n_tokens, width].
__global__ void regroup_kernel(Regroup::Args a, int64_t width) {
    imp::cuda::pdl_launch_dependents();
    imp::cuda::pdl_wait();
    const int64_t total = a.n_tokens * width;
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
        const int64_t t = i / width, c = i - t * width;
        a.y[t * a.y_stride + c] = a.x[t * a.x_stride + regroup_src(a.dims, a.mode, c)];
    }
}

}  // namespace

void regroup_cuda(Executor& ex, const Regroup::Args& a) {
    validate(a);
    const CudaHandles* h = ex.cuda();
    if (!h) throw Error(std::string(Regroup::name) + ": executor '" + ex.name() + "' is not a CUDA executor");
    if (a.n_tokens == 0) return;
    const int64_t width = regroup_width(a);
    imp::cuda::LaunchConfig c = imp::cuda::launch_config(*h);
    const int64_t blocks = imp::cuda::div_up(a.n_tokens * width, 256);
    c.grid = dim3(unsigned(blocks < 4096 ? blocks : 4096));
    c.block = dim3(256);
    IMP_CUDA_CHECK(imp::cuda::launch(c, regroup_kernel, a, width));
}

void gated_norm_cuda(Executor& ex, const GatedNorm::Args& a) {
    validate(a);
    const CudaHandles* h = ex.cuda();
    if (!h) throw Error(std::string(GatedNorm::name) + ": executor '" + ex.name() + "' is not a CUDA executor");
    if (a.head_dim > kThreads * kMaxPerThread)
        throw Error(std::string(GatedNorm::name) + ": head_dim " + std::to_string(a.head_dim) + " above " +
                    std::to_string(kThreads * kMaxPerThread) + " is not supported by the CUDA kernel");
    if (a.n_tokens == 0) return;
    imp::cuda::LaunchConfig c = imp::cuda::launch_config(*h);
    c.grid = dim3(unsigned(a.n_tokens), unsigned(a.n_heads));
    c.block = dim3(kThreads);
    IMP_CUDA_CHECK(imp::cuda::launch(c, gated_norm_kernel, a));
}

}  // namespace imp::gdn
