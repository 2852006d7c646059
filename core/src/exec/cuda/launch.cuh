// Kernel launches with programmatic dependent launch (PDL, sm_90+). Needs only the CUDA runtime, so a plugin can
// copy it.
//
// A kernel launched with `pdl = true` may start while the kernel before it on the stream is still running (once
// every CTA of that kernel has executed pdl_launch_dependents() or exited). The rule for such a kernel:
//   - it executes pdl_wait() in every CTA before it reads or writes any global memory that another kernel
//     produces or consumes (activations, KV cache, positions, scratch), and before any early return;
//   - it may execute pdl_launch_dependents() at any point (at its start, usually), so the next kernel's CTAs are
//     scheduled while this one finishes.
// pdl_wait() returns once the preceding kernel has completed and its memory writes are visible. Since every
// PDL-launched kernel waits before it can complete, the ordering is transitive along the stream. Kernels launched
// without the attribute (cuBLAS, plugins) keep the ordinary stream order and need nothing. Stream capture records
// the programmatic edges (CUDA 12.3+), so captured graphs keep the overlap.
#pragma once
#include <cuda_runtime.h>

#include <cstdlib>
#include <utility>

namespace imp::cuda_kernels {

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

// IMP_PDL=0 turns PDL off for the process (read once); anything else, or unset, leaves it on where supported.
inline bool pdl_env_enabled() {
    static const bool on = [] {
        const char* e = std::getenv("IMP_PDL");
        return !(e && e[0] == '0' && e[1] == '\0');
    }();
    return on;
}

// Launches kernel<<<grid, block, smem, stream>>>(args...), with the programmatic-serialization attribute when
// `pdl` (the caller passes false on devices below sm_90). Returns the launch error.
template <typename... Params, typename... Args>
cudaError_t launch(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream, bool pdl,
                   Args&&... args) {
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = 1;
    cudaLaunchConfig_t cfg{};
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = smem;
    cfg.stream = stream;
    cfg.attrs = pdl ? attr : nullptr;
    cfg.numAttrs = pdl ? 1 : 0;
    return cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...);
}

}  // namespace imp::cuda_kernels
