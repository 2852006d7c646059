// gdn.rule_chunked on CUDA in two kernels (dk = dv = 128), for long prompts: the work that does not depend on the
// state runs for every chunk in parallel, and only what does runs sequentially along the sequence
// (rule_chunked_phases.cuh has both phases).
//   prep:  one block per (chunk, v-head, sequence): chunk_prep, written per row to the workspace as bf16 records
//          [-w | u | q e scale | k e_last/e | Aqk row] (576 values).
//   state: one block per (kBV value columns, v-head, sequence) keeps h in fp32 fragments and runs state_chunk along
//          the chunks; the next chunk's records stream into shared memory (cp.async, double buffered) meanwhile.
#include <cuda_bf16.h>

#include "gdn_kernels.h"
#include "imp/cuda/check.h"
#include "imp/cuda/launch.cuh"
#include "imp/cuda/reduce.cuh"
#include "rule_chunked_phases.cuh"

namespace imp::gdn::chunked {

namespace {

constexpr int kRec = 4 * kD + kC;  // bf16 values per (row, v-head) record
constexpr int kOffWN = 0, kOffU = kD, kOffQD = 2 * kD, kOffKD = 3 * kD, kOffAqk = 4 * kD;
constexpr size_t kBf16Buf = size_t(kC) * kLdK * 2;  // one [kC][kD] bf16 buffer
static_assert(kRec * 2 == 1152, "rule_chunked_workspace_bytes counts 1152 bytes per row and v-head");

// chunk_prep's outputs into the workspace records (rows < n only: the others belong to other rows of the step).
struct RecSink {
    __nv_bfloat16* ws;
    int64_t row0;
    int hv, h, n;
    __device__ __nv_bfloat16* rec(int r) const { return ws + ((row0 + r) * hv + h) * kRec; }
    __device__ void put(int r, int off, float v) const {
        if (r < n) rec(r)[off] = __float2bfloat16(v);
    }
    __device__ void qd(int r, int e, float v) const { put(r, kOffQD + e, v); }
    __device__ void kd(int r, int e, float v) const { put(r, kOffKD + e, v); }
    __device__ void aqk(int r, int c, float v) const { put(r, kOffAqk + c, v); }
    __device__ void wn(int r, int e, float v) const { put(r, kOffWN + e, v); }
    __device__ void u(int r, int e, float v) const { put(r, kOffU + e, v); }
};

__global__ void __launch_bounds__(kThreads, 2) prep_kernel(RuleArgs a, __nv_bfloat16* ws) {
    imp::cuda::pdl_launch_dependents();
    imp::cuda::pdl_wait();
    extern __shared__ __align__(128) unsigned char smem_raw[];
    PrepScratch<kD> sm;
    sm.carve(smem_raw);
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int h = blockIdx.y, s = blockIdx.z;
    const int64_t r0 = a.seqs.query_start_loc[s], len = a.seqs.query_start_loc[s + 1] - r0;
    const int64_t c0 = int64_t(blockIdx.x) * kC;
    if (c0 >= len) return;
    const int n = int(len - c0 < kC ? len - c0 : kC);
    RecSink sink{ws, r0 + c0, a.dims.n_v_heads, h, n};
    chunk_prep<kD>(a, sm, sink, r0 + c0, n, h, a.dims.k_head_of(h), 0, tid, lane, warp);
}

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

template <int kBV>
__global__ void __launch_bounds__(kThreads, 1) state_kernel(RuleArgs a, const __nv_bfloat16* ws) {
    imp::cuda::pdl_launch_dependents();
    imp::cuda::pdl_wait();
    extern __shared__ __align__(128) unsigned char smem_raw[];
    StateSmem<kBV> sm(smem_raw);
    const Dims& d = a.dims;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int vb = blockIdx.x, h = blockIdx.y, s = blockIdx.z;
    const int64_t r0 = a.seqs.query_start_loc[s], len = a.seqs.query_start_loc[s + 1] - r0;
    float* stage = sm.stage + warp * 256;
    float* S = state_cols(a, s, h, vb * kBV);
    FragC hacc[kBV / 16];
    load_h<kBV>(hacc, S, warp);
    store_h<kBV>(hacc, sm.H, stage, lane, warp);
    float* orow = a.o + r0 * a.o_stride + int64_t(h) * kD + vb * kBV;
    const int n_chunks = int((len + kC - 1) / kC);
    if (n_chunks > 0) prefetch<kBV>(sm.buf(0), ws, r0, int(len < kC ? len : kC), d.n_v_heads, h, vb, tid);
    cp_async_commit();
    for (int ci = 0; ci < n_chunks; ++ci) {
        const int64_t c0 = int64_t(ci) * kC;
        const int n = int(len - c0 < kC ? len - c0 : kC);
        if (ci + 1 < n_chunks) {  // buffer (ci + 1) & 1 was last read by chunk ci - 1, which ended with a barrier
            const int64_t c1 = c0 + kC;
            prefetch<kBV>(sm.buf((ci + 1) & 1), ws, r0 + c1, int(len - c1 < kC ? len - c1 : kC), d.n_v_heads, h, vb,
                          tid);
        }
        cp_async_commit();
        if (warp == 0) {  // e_last = exp(sum of the chunk's g)
            float g = 0.f;
            for (int i = lane; i < n; i += 32) g += a.g[(r0 + c0 + i) * d.n_v_heads + h];
            g = imp::cuda::warp_sum(g);
            if (lane == 0) sm.el[ci & 1] = __expf(g);
        }
        cp_async_wait_1();  // chunk ci's copies (all but the group just queued) are done
        __syncthreads();
        state_chunk<kBV>(hacc, sm.buf(ci & 1), sm.H, sm.VN, sm.el[ci & 1], orow + c0 * a.o_stride, a.o_stride, n,
                         stage, lane, warp);
    }
    save_h<kBV>(hacc, S, warp);
}

template <class K>
void raise_smem(K kernel, size_t bytes, int device, bool* done) {
    if (device >= 0 && device < 64 && done[device]) return;
    IMP_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
    if (device >= 0 && device < 64) done[device] = true;
}

template <int kBV>
void launch_state(const RuleArgs& a, const CudaHandles& h, const __nv_bfloat16* ws) {
    static bool done[64] = {};
    constexpr size_t smem = StateSmem<kBV>::bytes();
    raise_smem(state_kernel<kBV>, smem, h.device, done);
    imp::cuda::LaunchConfig c = imp::cuda::launch_config(h);
    c.grid = dim3(unsigned(kD / kBV), unsigned(a.dims.n_v_heads), unsigned(a.seqs.n_seqs));
    c.block = dim3(kThreads);
    c.smem = smem;
    IMP_CUDA_CHECK(imp::cuda::launch(c, state_kernel<kBV>, a, ws));
}

}  // namespace

void rule_chunked_split(const RuleArgs& a, const CudaHandles& h, int bv) {
    auto* ws = static_cast<__nv_bfloat16*>(a.workspace);
    static bool done[64] = {};
    raise_smem(prep_kernel, PrepScratch<kD>::bytes(), h.device, done);
    imp::cuda::LaunchConfig c = imp::cuda::launch_config(h);
    // Chunks of the longest sequence (StepBatch::max_query_len bounds every sequence's rows; n_tokens when unset).
    const int64_t max_len = a.seqs.max_query_len > 0 ? a.seqs.max_query_len : a.seqs.n_tokens;
    c.grid = dim3(unsigned((max_len + kC - 1) / kC), unsigned(a.dims.n_v_heads), unsigned(a.seqs.n_seqs));
    c.block = dim3(kThreads);
    c.smem = PrepScratch<kD>::bytes();
    IMP_CUDA_CHECK(imp::cuda::launch(c, prep_kernel, a, ws));
    if (bv == 32) launch_state<32>(a, h, ws);
    else launch_state<64>(a, h, ws);
}

}  // namespace imp::gdn::chunked
