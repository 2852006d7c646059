// Element-wise ops: SwiGLU (silu(gate) * up over strided rows) and the residual add. Grid-stride loops with
// 16-byte accesses when sizes, strides and pointers allow them.
#include "exec/cuda/common.cuh"
#include "exec/cuda/cuda_check.h"
#include "exec/cuda/kernels.h"
#include "exec/cuda/launch.cuh"
#include "imp/cuda/row_ops.cuh"

namespace imp::cuda_kernels {

namespace {

using ::imp::cuda::silu_mul;

// n4 = n / 4 when kVec (counts float4s), else n.
template <bool kVec>
__global__ void swiglu_kernel(const float* __restrict__ gate, int64_t gate_stride, const float* __restrict__ up,
                              int64_t up_stride, float* __restrict__ out, int64_t n_rows, int64_t n) {
    pdl_launch_dependents();
    pdl_wait();
    const int64_t total = n_rows * n;
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
        const int64_t r = i / n, c = i - r * n;
        if constexpr (kVec) {
            const float4 g = reinterpret_cast<const float4*>(gate + r * gate_stride)[c];
            const float4 u = reinterpret_cast<const float4*>(up + r * up_stride)[c];
            reinterpret_cast<float4*>(out + r * n * 4)[c] =
                make_float4(silu_mul(g.x, u.x), silu_mul(g.y, u.y), silu_mul(g.z, u.z), silu_mul(g.w, u.w));
        } else {
            out[r * n + c] = silu_mul(gate[r * gate_stride + c], up[r * up_stride + c]);
        }
    }
}

template <bool kVec>
__global__ void add_kernel(float* __restrict__ x, const float* __restrict__ y, int64_t n) {
    pdl_launch_dependents();
    pdl_wait();
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        if constexpr (kVec) {
            float4 a = reinterpret_cast<float4*>(x)[i];
            const float4 b = reinterpret_cast<const float4*>(y)[i];
            a.x += b.x, a.y += b.y, a.z += b.z, a.w += b.w;
            reinterpret_cast<float4*>(x)[i] = a;
        } else {
            x[i] += y[i];
        }
    }
}

unsigned grid_for(int64_t items, int threads) {
    const int64_t blocks = (items + threads - 1) / threads;
    return unsigned(blocks < 132 * 16 ? (blocks > 0 ? blocks : 1) : 132 * 16);
}

}  // namespace

void swiglu(const float* gate, int64_t gate_stride, const float* up, int64_t up_stride, float* out, int64_t n_rows,
            int64_t n, Queue s) {
    if (n_rows <= 0 || n <= 0) return;
    const bool vec = n % 4 == 0 && gate_stride % 4 == 0 && up_stride % 4 == 0 && aligned16(gate) && aligned16(up) &&
                     aligned16(out);
    constexpr int threads = 256;
    const int64_t items = vec ? n_rows * n / 4 : n_rows * n;
    IMP_CUDA_CHECK(launch(vec ? swiglu_kernel<true> : swiglu_kernel<false>, dim3(grid_for(items, threads)),
                          dim3(threads), 0, s.stream, s.pdl, gate, gate_stride, up, up_stride, out, n_rows,
                          vec ? n / 4 : n));
}

void add(float* x, const float* y, int64_t n, Queue s) {
    if (n <= 0) return;
    constexpr int threads = 256;
    const bool vec = n % 4 == 0 && aligned16(x) && aligned16(y);
    const int64_t items = vec ? n / 4 : n;
    IMP_CUDA_CHECK(launch(vec ? add_kernel<true> : add_kernel<false>, dim3(grid_for(items, threads)), dim3(threads),
                          0, s.stream, s.pdl, x, y, items));
}

}  // namespace imp::cuda_kernels
