// arch_gdn: the CUDA kernel of gdn.regroup (regroup_op.h): one thread per output element of a row; the key head g
// and the part an output column belongs to give its input column (the inverse of the grouped layout).
#include "imp/cuda/check.h"
#include "imp/cuda/launch.cuh"
#include "regroup_op.h"

namespace imp::gdn_arch {

namespace {

constexpr int kThreads = 256;

// Input column of output column c (mode 0: qkvz, mode 1: ba).
__device__ __forceinline__ int64_t source_col(int64_t c, int mode, int hk, int hv, int dk, int dv) {
    const int R = hv / hk;
    if (mode == 1) {
        const int64_t part = c / hv, j = c % hv, g = j / R, r = j % R;  // part 0: b, 1: a
        return g * 2 * R + part * R + r;
    }
    const int64_t kd = int64_t(hk) * dk, vd = int64_t(hv) * dv, group = 2 * int64_t(dk) + 2 * int64_t(R) * dv;
    if (c < 2 * kd) {  // q or k of key head g
        const int64_t part = c / kd, g = (c % kd) / dk, i = c % dk;
        return g * group + part * dk + i;
    }
    const int64_t c2 = c - 2 * kd, part = c2 / vd, w = c2 % vd;  // part 0: v, 1: z; w = (g*R + r)*dv + i
    const int64_t g = w / (int64_t(R) * dv), rest = w % (int64_t(R) * dv);
    return g * group + 2 * dk + part * int64_t(R) * dv + rest;
}

__global__ void __launch_bounds__(kThreads) regroup_kernel(Regroup::Args a, int64_t cols) {
    imp::cuda::pdl_launch_dependents();
    imp::cuda::pdl_wait();
    const int64_t t = blockIdx.y;
    const int64_t c = int64_t(blockIdx.x) * kThreads + threadIdx.x;
    if (c >= cols) return;
    const gdn::Dims& d = a.dims;
    a.y[t * a.y_stride + c] =
        a.x[t * a.x_stride + source_col(c, a.mode, d.n_k_heads, d.n_v_heads, d.head_k_dim, d.head_v_dim)];
}

}  // namespace

void regroup_cuda(Executor& ex, const Regroup::Args& a) {
    validate_regroup(a);
    const CudaHandles* h = ex.cuda();
    if (!h) throw Error(std::string(Regroup::name) + ": executor '" + ex.name() + "' is not a CUDA executor");
    if (a.n_tokens == 0) return;
    const int64_t cols = regroup_cols(a);
    imp::cuda::LaunchConfig c = imp::cuda::launch_config(*h);
    c.grid = dim3(unsigned(imp::cuda::div_up(cols, kThreads)), unsigned(a.n_tokens));
    c.block = dim3(kThreads);
    IMP_CUDA_CHECK(imp::cuda::launch(c, regroup_kernel, a, cols));
}

}  // namespace imp::gdn_arch
