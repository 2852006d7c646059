// imp SDK, CUDA: kernel launches with programmatic dependent launch (PDL, sm_90+), and grid-size helpers.
// Header-only; needs the CUDA runtime and the SDK's executor.h (CudaHandles). Include it from .cu files.
//
// Whether to launch with PDL is CudaHandles::pdl, set by the core's CUDA executor (sm_90+, unless the profile sets
// [plugin.core] pdl = false; plugins read only CudaHandles::pdl). A kernel launched with
// `pdl = true` may start while the kernel before it on the stream is still running (once every CTA of that kernel
// has executed pdl_launch_dependents() or exited). The rule for such a kernel:
//   - it executes pdl_wait() in every CTA before it reads or writes any global memory that another kernel
//     produces or consumes (activations, KV cache, scratch), and before any early return; it may read constant
//     data before: weights, and the step's metadata (positions, block tables, slots), which the host writes before
//     the step's first kernel and no kernel writes; and state that only this kernel writes during a step (the KV of
//     positions before a decode row's own, a GDN layer's recurrent state), where its op's contract says so;
//   - it may execute pdl_launch_dependents() at any point (at its start, usually), so the next kernel's CTAs are
//     scheduled while this one finishes.
// pdl_wait() returns once the preceding kernel has completed and its memory writes are visible. Since every
// PDL-launched kernel waits before it can complete, the ordering is transitive along the stream. Kernels launched
// without the attribute (cuBLAS, ...) keep the ordinary stream order and need nothing. Stream capture records the
// programmatic edges (CUDA 12.3+), so captured graphs keep the overlap.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <utility>

#include "imp/executor.h"

namespace imp::cuda {

__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

__device__ __forceinline__ void pdl_launch_dependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// How to launch one kernel.
struct LaunchConfig {
    dim3 grid{1, 1, 1};
    dim3 block{1, 1, 1};
    size_t smem = 0;  // dynamic shared memory bytes
    cudaStream_t stream = nullptr;
    bool pdl = false;       // programmatic dependent launch (from CudaHandles::pdl)
    dim3 cluster{1, 1, 1};  // thread-block cluster (sm_90+); 1x1x1: none
};

// The stream and PDL switch of an executor's handles; the caller sets grid, block and smem.
inline LaunchConfig launch_config(const CudaHandles& h) {
    LaunchConfig c;
    c.stream = static_cast<cudaStream_t>(h.stream);
    c.pdl = h.pdl;
    return c;
}

// Launches kernel with config c (cudaLaunchKernelEx); returns the launch error (check it with IMP_CUDA_CHECK).
template <typename... Params, typename... Args>
cudaError_t launch(const LaunchConfig& c, void (*kernel)(Params...), Args&&... args) {
    cudaLaunchAttribute attr[2];
    unsigned n = 0;
    if (c.pdl) {
        attr[n].id = cudaLaunchAttributeProgrammaticStreamSerialization;
        attr[n++].val.programmaticStreamSerializationAllowed = 1;
    }
    if (c.cluster.x * c.cluster.y * c.cluster.z > 1) {
        attr[n].id = cudaLaunchAttributeClusterDimension;
        attr[n].val.clusterDim.x = c.cluster.x;
        attr[n].val.clusterDim.y = c.cluster.y;
        attr[n++].val.clusterDim.z = c.cluster.z;
    }
    cudaLaunchConfig_t cfg{};
    cfg.gridDim = c.grid;
    cfg.blockDim = c.block;
    cfg.dynamicSmemBytes = c.smem;
    cfg.stream = c.stream;
    cfg.attrs = n ? attr : nullptr;
    cfg.numAttrs = n;
    return cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...);
}

// Launches kernel<<<grid, block, smem, stream>>>(args...), with the programmatic-serialization attribute when
// `pdl` (pass CudaHandles::pdl, which is false below sm_90). Returns the launch error.
template <typename... Params, typename... Args>
cudaError_t launch(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream, bool pdl,
                   Args&&... args) {
    LaunchConfig c;
    c.grid = grid;
    c.block = block;
    c.smem = smem;
    c.stream = stream;
    c.pdl = pdl;
    return launch(c, kernel, std::forward<Args>(args)...);
}

// ceil(a / b), for grid sizes.
inline int div_up(int64_t a, int64_t b) { return int((a + b - 1) / b); }

// Whether p is 16-byte aligned (for vectorized loads).
inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

}  // namespace imp::cuda
