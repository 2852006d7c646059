// CUDA kernel of gdn.gated_norm (gdn_ops.h): one block of 128 threads per (row, head); a block sum of squares, then
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

}  // namespace

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
