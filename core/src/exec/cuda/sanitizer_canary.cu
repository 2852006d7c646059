// sanitizer-canary TOOL: one deliberate defect per compute-sanitizer tool, each in a kernel of namespace imp, so that
// `scripts/device-check --sanitize` can prove that a tool, run with the same options and kernel filters as the test
// binaries, reports what it is for: memcheck an out-of-bounds global read, racecheck a shared-memory race between
// two warps, initcheck a read of device memory nothing wrote. Exits 0 after the kernel ran (the sanitizer's
// --error-exitcode is the verdict); 2 on a bad argument.
#include <cuda_runtime_api.h>

#include <cstdio>
#include <cstring>

namespace imp::sanitizer_canary {

__global__ void out_of_bounds_read(const float* p, long long far, float* out) {
    if (threadIdx.x == 0) out[0] = p[far];  // far past the end of p's allocation
}

__global__ void shared_race(float* out) {
    __shared__ float s[64];
    s[threadIdx.x] = float(threadIdx.x);
    // No __syncthreads(): thread 31 reads what thread 32 (the other warp) writes.
    out[threadIdx.x] = s[(threadIdx.x + 1) % 64];
}

__global__ void uninitialized_read(const float* p, float* out) {
    out[threadIdx.x] = p[threadIdx.x];  // p was allocated and never written
}

}  // namespace imp::sanitizer_canary

int main(int argc, char** argv) {
    namespace c = imp::sanitizer_canary;
    const char* tool = argc == 2 ? argv[1] : "";
    if (std::strcmp(tool, "memcheck") && std::strcmp(tool, "racecheck") && std::strcmp(tool, "initcheck")) {
        std::fprintf(stderr, "usage: sanitizer-canary memcheck|racecheck|initcheck\n");
        return 2;
    }
    float *p = nullptr, *out = nullptr;
    if (cudaMalloc(&p, 64 * sizeof(float)) != cudaSuccess || cudaMalloc(&out, 64 * sizeof(float)) != cudaSuccess ||
        cudaMemset(out, 0, 64 * sizeof(float)) != cudaSuccess) {
        std::fprintf(stderr, "sanitizer-canary: no CUDA device or no memory\n");
        return 1;
    }
    if (!std::strcmp(tool, "memcheck")) {
        c::out_of_bounds_read<<<1, 32>>>(p, 1ll << 28, out);
    } else if (!std::strcmp(tool, "racecheck")) {
        c::shared_race<<<1, 64>>>(out);
    } else {
        c::uninitialized_read<<<1, 64>>>(p, out);
    }
    (void)cudaDeviceSynchronize();
    return 0;
}
