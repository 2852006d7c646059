// Executor::prefetch_l2 on CUDA: one kernel per call over up to kPrefetchRanges ranges (at most kPrefetchMaxBytes in
// all: the H100 L2 is 50 MB, the H200's 60, and what the next layer reads must leave room for what the current one
// streams).
// Each thread issues prefetch.global.L2::evict_last for 128-byte lines spread over the grid (fire and forget: the
// lines arrive while the kernels after it run), then waits for the previous kernel (PDL) before it ends, so the
// kernels after it still see everything before it completed. The ranges are weights, which no kernel writes: they
// may be touched before the wait.
#include <algorithm>

#include "exec/cuda/common.cuh"
#include "exec/cuda/cuda_check.h"
#include "exec/cuda/kernels.h"
#include "exec/cuda/launch.cuh"

namespace imp::cuda_kernels {

namespace {

struct PrefetchArgs {
    const char* p[kPrefetchRanges];
    int64_t lines[kPrefetchRanges];  // 128-byte lines of each range
    int n;
};

__global__ void l2_prefetch_kernel(PrefetchArgs a) {
    pdl_launch_dependents();
    const int64_t stride = int64_t(gridDim.x) * blockDim.x;
    const int64_t first = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    for (int r = 0; r < a.n; ++r)
        for (int64_t i = first; i < a.lines[r]; i += stride)
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
            asm volatile("prefetch.global.L2::evict_last [%0];" ::"l"(a.p[r] + i * 128));
#endif
    pdl_wait();
}

}  // namespace

void l2_prefetch(const DeviceRange* ranges, size_t n, int sm_count, Queue s) {
    PrefetchArgs a{};
    int64_t left = kPrefetchMaxBytes, most = 0;
    for (size_t i = 0; i < n && a.n < kPrefetchRanges && left > 0; ++i) {
        if (!ranges[i].p || ranges[i].bytes == 0) continue;
        const int64_t bytes = std::min<int64_t>(int64_t(ranges[i].bytes), left);
        left -= bytes;
        // whole lines from the line that holds the first byte
        const auto base = reinterpret_cast<uintptr_t>(ranges[i].p);
        const uintptr_t start = base & ~uintptr_t(127);
        a.p[a.n] = reinterpret_cast<const char*>(start);
        a.lines[a.n] = int64_t((base + uint64_t(bytes) - start + 127) / 128);
        most = std::max(most, a.lines[a.n]);
        ++a.n;
    }
    if (a.n == 0) return;
    constexpr int kThreads = 256;
    const int64_t want = (most + kThreads * 4 - 1) / (kThreads * 4);  // about 4 lines per thread of the largest range
    const unsigned grid = unsigned(std::max<int64_t>(1, std::min<int64_t>(want, 2 * int64_t(std::max(sm_count, 1)))));
    IMP_CUDA_CHECK(launch(l2_prefetch_kernel, dim3(grid), dim3(kThreads), 0, s.stream, s.pdl, a));
}

}  // namespace imp::cuda_kernels
