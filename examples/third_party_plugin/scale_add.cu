// hello_layer: the CUDA kernel of "hello.scale_add", launched with the SDK's helpers (imp/cuda/launch.cuh): on the
// executor's stream, with programmatic dependent launch when the executor says so (CudaHandles::pdl).
#include <algorithm>

#include "hello_ops.h"
#include "imp/cuda/check.h"
#include "imp/cuda/launch.cuh"
#include "imp/error.h"

namespace hello {

namespace {

__global__ void scale_add_kernel(const float* x, float* y, int64_t n, float scale, float add) {
    imp::cuda::pdl_wait();  // x and y may be written by the kernel before this one: wait before touching them
    imp::cuda::pdl_launch_dependents();
    const int64_t stride = int64_t(gridDim.x) * blockDim.x;
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) y[i] = scale * x[i] + add;
}

}  // namespace

bool scale_add_cuda_supports(const imp::Executor& ex) { return ex.cuda() != nullptr; }

void scale_add_cuda(imp::Executor& ex, const ScaleAdd::Args& a) {
    const imp::CudaHandles* h = ex.cuda();
    if (!h) throw imp::Error("hello.scale_add: executor " + ex.name() + " has no CUDA handles");
    if (a.n <= 0) return;
    imp::cuda::LaunchConfig c = imp::cuda::launch_config(*h);
    c.block = dim3(256);
    c.grid = dim3(unsigned(std::min<int64_t>(imp::cuda::div_up(a.n, 256), int64_t(std::max(h->sm_count, 1)) * 8)));
    IMP_CUDA_CHECK(imp::cuda::launch(c, scale_add_kernel, a.x, a.y, a.n, a.scale, a.add));
}

}  // namespace hello
