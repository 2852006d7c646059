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
#include "rule_chunked_records.cuh"

namespace imp::gdn::chunked {

namespace {

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

template <int kBV>
void launch_state(const RuleArgs& a, const CudaHandles& h, const __nv_bfloat16* ws) {
    static bool done[64] = {};
    launch_state_grid<kBV>(state_kernel<kBV>, a, h, ws, done);
}

}  // namespace

void rule_chunked_split(const RuleArgs& a, const CudaHandles& h, const SplitPlan& plan) {
    auto* ws = static_cast<__nv_bfloat16*>(a.workspace);
    if ((plan.phases & 1) && plan.mma_prep) {
        launch_prep_mma(a, h, ws);
    } else if (plan.phases & 1) {
        static bool done[64] = {};
        raise_smem(prep_kernel, PrepScratch<kD>::bytes(), h.device, done);
        imp::cuda::LaunchConfig c = imp::cuda::launch_config(h);
        c.grid = prep_grid(a);
        c.block = dim3(kThreads);
        c.smem = PrepScratch<kD>::bytes();
        IMP_CUDA_CHECK(imp::cuda::launch(c, prep_kernel, a, ws));
    }
    if (!(plan.phases & 2)) return;
    if (plan.mma_state) launch_state_mma(a, h, ws, plan.bv);
    else if (plan.bv == 32) launch_state<32>(a, h, ws);
    else launch_state<64>(a, h, ws);
}

}  // namespace imp::gdn::chunked
