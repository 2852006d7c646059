// CUDA kernels of the attention block's output-gate ops (gate_ops.h): grid-stride loops over [n_tokens, n_head * hd],
// 16-byte accesses when head_dim, the row stride and the pointers allow. Launched with PDL when asked, following the
// rule of exec/cuda/launch.cuh (pdl_wait before touching global memory).
#include "blocks/gate_ops.h"
#include "exec/cuda/cuda_check.h"
#include "exec/cuda/launch.cuh"

namespace imp::blocks::cuda_ops {

namespace {

using imp::cuda_kernels::launch;
using imp::cuda_kernels::pdl_launch_dependents;
using imp::cuda_kernels::pdl_wait;

__device__ __forceinline__ float sigmoid(float g) { return 1.f / (1.f + expf(-g)); }

// T = float or float4; hd, qg_stride in units of T.
template <typename T>
__global__ void split_kernel(const T* __restrict__ qg, int64_t qg_stride, T* __restrict__ q, int64_t n_tokens,
                             int n_head, int hd) {
    pdl_launch_dependents();
    pdl_wait();
    const int64_t qd = int64_t(n_head) * hd, total = n_tokens * qd;
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
        const int64_t t = i / qd, c = i - t * qd, h = c / hd, d = c - h * hd;
        q[i] = qg[t * qg_stride + 2 * h * hd + d];
    }
}

template <typename T>
__global__ void gate_kernel(T* __restrict__ x, const T* __restrict__ qg, int64_t qg_stride, int64_t n_tokens,
                            int n_head, int hd) {
    pdl_launch_dependents();
    pdl_wait();
    const int64_t qd = int64_t(n_head) * hd, total = n_tokens * qd;
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
        const int64_t t = i / qd, c = i - t * qd, h = c / hd, d = c - h * hd;
        const T g = qg[t * qg_stride + 2 * h * hd + hd + d];
        if constexpr (sizeof(T) == 16) {
            T v = x[i];
            v.x *= sigmoid(g.x), v.y *= sigmoid(g.y), v.z *= sigmoid(g.z), v.w *= sigmoid(g.w);
            x[i] = v;
        } else {
            x[i] *= sigmoid(g);
        }
    }
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

unsigned grid_for(int64_t items, int threads) {
    const int64_t blocks = (items + threads - 1) / threads;
    return unsigned(blocks < 132 * 16 ? (blocks > 0 ? blocks : 1) : 132 * 16);
}

constexpr int kThreads = 256;

}  // namespace

void split_gated_q(const float* qg, int64_t qg_stride, float* q, int64_t n_tokens, int n_head, int head_dim,
                   void* stream, bool pdl) {
    const auto s = static_cast<cudaStream_t>(stream);
    const int64_t total = n_tokens * n_head * int64_t(head_dim);
    if (head_dim % 4 == 0 && qg_stride % 4 == 0 && aligned16(qg) && aligned16(q)) {
        IMP_CUDA_CHECK(launch(split_kernel<float4>, dim3(grid_for(total / 4, kThreads)), dim3(kThreads), 0, s, pdl,
                              reinterpret_cast<const float4*>(qg), qg_stride / 4, reinterpret_cast<float4*>(q),
                              n_tokens, n_head, head_dim / 4));
    } else {
        IMP_CUDA_CHECK(launch(split_kernel<float>, dim3(grid_for(total, kThreads)), dim3(kThreads), 0, s, pdl, qg,
                              qg_stride, q, n_tokens, n_head, head_dim));
    }
}

void apply_output_gate(float* x, const float* qg, int64_t qg_stride, int64_t n_tokens, int n_head, int head_dim,
                       void* stream, bool pdl) {
    const auto s = static_cast<cudaStream_t>(stream);
    const int64_t total = n_tokens * n_head * int64_t(head_dim);
    if (head_dim % 4 == 0 && qg_stride % 4 == 0 && aligned16(qg) && aligned16(x)) {
        IMP_CUDA_CHECK(launch(gate_kernel<float4>, dim3(grid_for(total / 4, kThreads)), dim3(kThreads), 0, s, pdl,
                              reinterpret_cast<float4*>(x), reinterpret_cast<const float4*>(qg), qg_stride / 4,
                              n_tokens, n_head, head_dim / 4));
    } else {
        IMP_CUDA_CHECK(launch(gate_kernel<float>, dim3(grid_for(total, kThreads)), dim3(kThreads), 0, s, pdl, x, qg,
                              qg_stride, n_tokens, n_head, head_dim));
    }
}

}  // namespace imp::blocks::cuda_ops
