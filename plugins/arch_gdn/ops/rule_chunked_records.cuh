// The workspace records of gdn.rule_chunked's split CUDA paths (rule_chunked_split.cu: the WMMA prep and state
// kernels; rule_chunked_prep_mma.cu and rule_chunked_state_mma.cu: their mma.sync versions, interchangeable because
// they read and write the same records): per (row, v-head) 576 bf16 values [-w | u | q e scale | k e_last/e | Aqk row];
// the state kernels' shared memory (two chunk buffers, H, VN) and the cp.async copy of a chunk's records into it.
#pragma once
#include <cuda_bf16.h>

#include "imp/cuda/check.h"
#include "imp/cuda/launch.cuh"
#include "rule_chunked_phases.cuh"

namespace imp::gdn::chunked {

constexpr int kRec = 4 * kD + kC;  // bf16 values per (row, v-head) record
constexpr int kOffWN = 0, kOffU = kD, kOffQD = 2 * kD, kOffKD = 3 * kD, kOffAqk = 4 * kD;
constexpr size_t kBf16Buf = size_t(kC) * kLdK * 2;  // one [kC][kD] bf16 buffer
static_assert(kRec * 2 == 1152, "rule_chunked_workspace_bytes counts 1152 bytes per row and v-head");

template <int kBV>
struct StateSmem {
    static constexpr int kLdV = kBV + 8;
    using Buf = ChunkBuf;
    unsigned char* bufs;  // two Bufs of kBufBytes (double buffering)
    __nv_bfloat16 *H, *VN;
    float *stage, *el;
    static constexpr size_t kBufBytes = 3 * kBf16Buf + size_t(kC) * kLdC * 2 + size_t(kC) * kLdV * 2;
    static constexpr size_t bytes() {
        return 2 * kBufBytes + size_t(kD) * kLdV * 2 + size_t(kC) * kLdV * 2 + kWarps * 256 * 4 + 2 * 4;
    }
    // Buffer i (0 or 1), computed rather than indexed (an indexed array of pointers would live in local memory).
    __device__ Buf buf(int i) const {
        unsigned char* p = bufs + i * kBufBytes;
        Buf b;
        b.WN = reinterpret_cast<__nv_bfloat16*>(p), p += kBf16Buf;
        b.QD = reinterpret_cast<__nv_bfloat16*>(p), p += kBf16Buf;
        b.KD = reinterpret_cast<__nv_bfloat16*>(p), p += kBf16Buf;
        b.Aqk = reinterpret_cast<__nv_bfloat16*>(p), p += size_t(kC) * kLdC * 2;
        b.U = reinterpret_cast<__nv_bfloat16*>(p);
        return b;
    }
    __device__ explicit StateSmem(unsigned char* p) {
        bufs = p, p += 2 * kBufBytes;
        H = reinterpret_cast<__nv_bfloat16*>(p), p += size_t(kD) * kLdV * 2;
        VN = reinterpret_cast<__nv_bfloat16*>(p), p += size_t(kC) * kLdV * 2;
        stage = reinterpret_cast<float*>(p), p += kWarps * 256 * 4;
        el = reinterpret_cast<float*>(p);
    }
};

__device__ __forceinline__ void cp_async16(void* dst, const void* src, bool valid) {
    const unsigned d = static_cast<unsigned>(__cvta_generic_to_shared(dst));
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(d), "l"(src), "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
__device__ __forceinline__ void cp_async_wait_1() { asm volatile("cp.async.wait_group 1;\n" ::: "memory"); }
__device__ __forceinline__ void cp_async_wait_0() { asm volatile("cp.async.wait_group 0;\n" ::: "memory"); }

// Queues the copy of the records of rows [row0, row0 + n) (v-head h, value block vb) into b; rows past n are zeros.
template <int kBV>
__device__ __forceinline__ void prefetch(const typename StateSmem<kBV>::Buf& b, const __nv_bfloat16* ws,
                                         int64_t row0, int n, int hv, int h, int vb, int tid) {
    constexpr int kLdV = StateSmem<kBV>::kLdV;
    constexpr int kPieces = 16 + kBV / 8 + 16 + 16 + 8;  // 16-byte pieces per row: -w, u block, qd, kd, aqk
    for (int idx = tid; idx < kC * kPieces; idx += kThreads) {
        const int r = idx / kPieces, p = idx % kPieces;
        const bool valid = r < n;
        const __nv_bfloat16* rec = ws + ((row0 + (valid ? r : 0)) * hv + h) * kRec;
        __nv_bfloat16* dst;
        const __nv_bfloat16* src;
        if (p < 16) dst = b.WN + r * kLdK + 8 * p, src = rec + kOffWN + 8 * p;
        else if (p < 16 + kBV / 8) dst = b.U + r * kLdV + 8 * (p - 16), src = rec + kOffU + vb * kBV + 8 * (p - 16);
        else if (p < 32 + kBV / 8) dst = b.QD + r * kLdK + 8 * (p - 16 - kBV / 8), src = rec + kOffQD + 8 * (p - 16 - kBV / 8);
        else if (p < 48 + kBV / 8) dst = b.KD + r * kLdK + 8 * (p - 32 - kBV / 8), src = rec + kOffKD + 8 * (p - 32 - kBV / 8);
        else dst = b.Aqk + r * kLdC + 8 * (p - 48 - kBV / 8), src = rec + kOffAqk + 8 * (p - 48 - kBV / 8);
        cp_async16(dst, src, valid);
    }
}

template <class K>
void raise_smem(K kernel, size_t bytes, int device, bool* done) {
    if (device >= 0 && device < 64 && done[device]) return;
    IMP_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
    if (device >= 0 && device < 64) done[device] = true;
}

// Launches a state kernel: one block of kThreads per (kBV value columns, v-head, sequence) with StateSmem<kBV>;
// done: the kernel's per-device flags of its raised shared memory limit.
template <int kBV>
void launch_state_grid(void (*kernel)(RuleArgs, const __nv_bfloat16*), const RuleArgs& a, const CudaHandles& h,
                       const __nv_bfloat16* ws, bool* done) {
    constexpr size_t smem = StateSmem<kBV>::bytes();
    raise_smem(kernel, smem, h.device, done);
    imp::cuda::LaunchConfig c = imp::cuda::launch_config(h);
    c.grid = dim3(unsigned(kD / kBV), unsigned(a.dims.n_v_heads), unsigned(a.seqs.n_seqs));
    c.block = dim3(kThreads);
    c.smem = smem;
    IMP_CUDA_CHECK(imp::cuda::launch(c, kernel, a, ws));
}

// The prep grid: (chunks of the longest sequence, v-heads, sequences); StepBatch::max_query_len bounds every
// sequence's rows (n_tokens when unset). Blocks past their sequence's end return at once.
inline dim3 prep_grid(const RuleArgs& a) {
    const int64_t max_len = a.seqs.max_query_len > 0 ? a.seqs.max_query_len : a.seqs.n_tokens;
    return dim3(unsigned((max_len + kC - 1) / kC), unsigned(a.dims.n_v_heads), unsigned(a.seqs.n_seqs));
}

void launch_prep_mma(const RuleArgs& a, const CudaHandles& h, __nv_bfloat16* ws);   // rule_chunked_prep_mma.cu
// rule_chunked_state_mma.cu, bv (32 or 64) value columns per block
void launch_state_mma(const RuleArgs& a, const CudaHandles& h, const __nv_bfloat16* ws, int bv);

}  // namespace imp::gdn::chunked
