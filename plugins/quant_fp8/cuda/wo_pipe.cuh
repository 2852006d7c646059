// Weight-only CUDA kernels: the asynchronous copy ring of the GEMV's "async" plan. Each lane streams its own 16-byte
// chunks into its own shared-memory slots with cp.async (L1 bypassed; a chunk past the matrix is zero-filled), S
// stages deep, so the bytes in flight do not cost registers. A lane reads back only what it copied itself, so
// cp.async.wait_group orders everything (no barrier). Slot [stage][r][thread] keeps a warp's 16-byte reads and
// writes conflict-free.
#pragma once
#include <cstdint>

namespace imp::wo {

// 16 bytes from gmem to smem; valid == false: 16 zero bytes (nothing read).
__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, bool valid) {
    const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
    const int n = valid ? 16 : 0;
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(s), "l"(gmem), "r"(n) : "memory");
}

__device__ __forceinline__ void cp_async_commit() {
    asm volatile("cp.async.commit_group;" ::: "memory");
}

// Returns once at most N of this thread's committed groups are still in flight.
template <int N>
__device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory");
}

__device__ __forceinline__ void cp_async_wait_all() {
    asm volatile("cp.async.wait_all;" ::: "memory");
}

// Dynamic shared memory of the ring: S stages x RW rows x threads x 16 bytes.
__host__ __device__ constexpr int ring_bytes(int s, int rw, int threads) {
    return s * rw * threads * 16;
}

}  // namespace imp::wo
