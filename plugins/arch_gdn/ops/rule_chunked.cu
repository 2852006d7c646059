// CUDA kernel of gdn.rule_chunked (gdn_ops.h) for dk = dv = 128, and the choice between it (the fused kernel: no
// workspace) and the two-kernel path of rule_chunked_split.cu. Fused kernel: one block of 8 warps per (value block of
// kBV columns, v-head, sequence) walks the sequence in chunks of 64 rows, each chunk's state-independent operands
// (chunk_prep) into shared memory, then the state update (state_chunk), both in rule_chunked_phases.cuh. Products run
// on the tensor cores (WMMA bf16 16x16x16, fp32 accumulation); the state stays in fp32 accumulator fragments for the
// whole sequence.
#include "gdn_kernels.h"
#include "imp/cuda/check.h"
#include "imp/cuda/launch.cuh"
#include "rule_chunked_phases.cuh"

namespace imp::gdn {

namespace {

using namespace imp::gdn::chunked;

// chunk_prep's outputs into the shared ChunkBuf (all rows).
struct SmemSink {
    ChunkBuf b;
    int ldv;
    __device__ void qd(int r, int e, float v) { b.QD[r * kLdK + e] = __float2bfloat16(v); }
    __device__ void kd(int r, int e, float v) { b.KD[r * kLdK + e] = __float2bfloat16(v); }
    __device__ void aqk(int r, int c, float v) { b.Aqk[r * kLdC + c] = __float2bfloat16(v); }
    __device__ void wn(int r, int e, float v) { b.WN[r * kLdK + e] = __float2bfloat16(v); }
    __device__ void u(int r, int e, float v) { b.U[r * ldv + e] = __float2bfloat16(v); }
};

template <int kBV>
struct FusedSmem {
    static constexpr int kLdV = kBV + 8;
    static constexpr size_t bytes() {
        return PrepScratch<kBV>::bytes() + 2 * size_t(kC) * kLdK * 2 + size_t(kC) * kLdC * 2 + size_t(kC) * kLdV * 2 +
               size_t(kD) * kLdV * 2 + size_t(kC) * kLdV * 2;
    }
};

template <int kBV>
__global__ void __launch_bounds__(kThreads, 1) chunked_kernel(RuleArgs a) {
    imp::cuda::pdl_launch_dependents();
    imp::cuda::pdl_wait();
    extern __shared__ __align__(128) unsigned char smem_raw[];
    constexpr int kLdV = kBV + 8;
    PrepScratch<kBV> ps;
    unsigned char* p = ps.carve(smem_raw);
    ChunkBuf b;
    b.WN = reinterpret_cast<__nv_bfloat16*>(ps.A);  // A is dead once T is formed; -w is written after
    b.QD = reinterpret_cast<__nv_bfloat16*>(p), p += size_t(kC) * kLdK * 2;
    b.KD = reinterpret_cast<__nv_bfloat16*>(p), p += size_t(kC) * kLdK * 2;
    b.Aqk = reinterpret_cast<__nv_bfloat16*>(p), p += size_t(kC) * kLdC * 2;
    b.U = reinterpret_cast<__nv_bfloat16*>(p), p += size_t(kC) * kLdV * 2;
    auto* H = reinterpret_cast<__nv_bfloat16*>(p);
    p += size_t(kD) * kLdV * 2;
    auto* VN = reinterpret_cast<__nv_bfloat16*>(p);
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int vb = blockIdx.x, h = blockIdx.y, s = blockIdx.z, kh = a.dims.k_head_of(h);
    const int64_t r0 = a.seqs.query_start_loc[s], len = a.seqs.query_start_loc[s + 1] - r0;
    float* stage = ps.stage + warp * 256;
    float* S = state_cols(a, s, h, vb * kBV);
    FragC hacc[kBV / 16];
    load_h<kBV>(hacc, S, warp);
    store_h<kBV>(hacc, H, stage, lane, warp);
    float* orow = a.o + r0 * a.o_stride + int64_t(h) * kD + vb * kBV;
    SmemSink sink{b, kLdV};
    for (int64_t c0 = 0; c0 < len; c0 += kC) {
        const int n = int(len - c0 < kC ? len - c0 : kC);
        const float el = chunk_prep<kBV>(a, ps, sink, r0 + c0, n, h, kh, vb * kBV, tid, lane, warp);
        __syncthreads();
        state_chunk<kBV>(hacc, b, H, VN, el, orow + c0 * a.o_stride, a.o_stride, n, stage, lane, warp);
    }
    save_h<kBV>(hacc, S, warp);
}

}  // namespace

void rule_chunked_cuda(Executor& ex, const RuleArgs& a) { rule_chunked_cuda_phases(ex, a, 3); }

void rule_chunked_cuda_phases(Executor& ex, const RuleArgs& a, int phases) {
    validate(RuleChunked::name, a);
    const CudaHandles* h = ex.cuda();
    const std::string op = RuleChunked::name;
    if (!h) throw Error(op + ": executor '" + ex.name() + "' is not a CUDA executor");
    if (a.dims.head_k_dim != kD || a.dims.head_v_dim != kD)
        throw Error(op + ": the CUDA kernel takes head_k_dim = head_v_dim = 128, got " +
                    std::to_string(a.dims.head_k_dim) + " and " + std::to_string(a.dims.head_v_dim));
    if ((reinterpret_cast<uintptr_t>(a.state) & 31u) != 0 || a.state_stride % 8 != 0)
        throw Error(op + ": the state and its slot stride must be 32-byte aligned (stride " +
                    std::to_string(a.state_stride) + " floats)");
    if (a.seqs.n_tokens == 0) return;
    if (a.seqs.n_seqs > 65535) throw Error(op + ": " + std::to_string(a.seqs.n_seqs) + " sequences in one step");
    if (a.variant < 0 || a.variant > 6) throw Error(op + ": variant " + std::to_string(a.variant) + " is not 0..6");
    const bool have_ws = a.workspace && (reinterpret_cast<uintptr_t>(a.workspace) & 15u) == 0 &&
                         a.workspace_bytes >= rule_chunked_workspace_bytes(a.dims, a.seqs.n_tokens);
    if (a.variant >= 2 && !have_ws)
        throw Error(op + ": variant " + std::to_string(a.variant) + " needs a 16-byte aligned workspace of " +
                    std::to_string(rule_chunked_workspace_bytes(a.dims, a.seqs.n_tokens)) + " bytes, got " +
                    std::to_string(a.workspace_bytes));
    if (a.variant >= 2 || (a.variant == 0 && have_ws)) {
        SplitPlan plan;
        plan.bv = a.variant == 2 || a.variant == 6 ||
                          (a.variant == 0 && int64_t(a.seqs.n_seqs) * a.dims.n_v_heads * 2 >= h->sm_count)
                      ? 64 : 32;
        plan.mma_prep = a.variant >= 4;
        plan.mma_state = a.variant >= 5;
        plan.phases = phases;
        rule_chunked_split(a, *h, plan);
        return;
    }
    constexpr int kBV = 64;
    const size_t smem = FusedSmem<kBV>::bytes();
    static bool configured[64] = {};  // per device: the kernel's dynamic shared memory limit raised once
    if (h->device < 0 || h->device >= 64 || !configured[h->device]) {
        IMP_CUDA_CHECK(cudaFuncSetAttribute(chunked_kernel<kBV>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
        if (h->device >= 0 && h->device < 64) configured[h->device] = true;
    }
    imp::cuda::LaunchConfig c = imp::cuda::launch_config(*h);
    c.grid = dim3(unsigned(kD / kBV), unsigned(a.dims.n_v_heads), unsigned(a.seqs.n_seqs));
    c.block = dim3(kThreads);
    c.smem = smem;
    IMP_CUDA_CHECK(imp::cuda::launch(c, chunked_kernel<kBV>, a));
}

}  // namespace imp::gdn
