// CUDA kernel of gdn.rule_decode (gdn_ops.h): one warp per (sequence, v-head, 4 value columns). The state is stored
// [Hv, dv, dk], so a value column's dk keys are contiguous: the warp reads them coalesced (dk/32 per lane), decays
// them, and one pass of warp sums gives S^T k and S^T q; then delta = beta (v - e S^T k), the column is rewritten
// as e S + k delta and o = scale (e S^T q + delta (k . q)), e = exp(g). Blocks of 4 warps cover 16 columns.
#include "gdn_kernels.h"
#include "imp/cuda/check.h"
#include "imp/cuda/launch.cuh"
#include "imp/cuda/reduce.cuh"

namespace imp::gdn {

namespace {

constexpr int kWarps = 4;
constexpr int kCols = 4;  // value columns per warp

template <int kPer>  // dk / 32
__global__ void __launch_bounds__(kWarps * 32) decode_kernel(RuleArgs a) {
    imp::cuda::pdl_launch_dependents();
    imp::cuda::pdl_wait();
    const Dims& d = a.dims;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int s = blockIdx.y / d.n_v_heads, h = blockIdx.y % d.n_v_heads, kh = d.k_head_of(h);
    const int dk = kPer * 32, dv = d.head_v_dim;
    const int j0 = (blockIdx.x * kWarps + warp) * kCols;
    if (j0 >= dv) return;
    const int64_t t = s;  // one row per sequence
    const float* row = a.qkv + t * a.qkv_stride;
    float q[kPer], k[kPer], kq = 0.f;
#pragma unroll
    for (int e = 0; e < kPer; ++e) {
        q[e] = row[int64_t(kh) * dk + lane + 32 * e];
        k[e] = row[d.key_dim() + int64_t(kh) * dk + lane + 32 * e];
        kq += k[e] * q[e];
    }
    kq = imp::cuda::warp_sum(kq);
    const float decay = expf(a.g[t * d.n_v_heads + h]), beta = a.beta[t * d.n_v_heads + h];
    float* S = a.state + int64_t(a.seqs.state_slots[s]) * a.state_stride + (int64_t(h) * dv + j0) * dk;
    const float* v = row + 2 * d.key_dim() + int64_t(h) * dv + j0;
    float col[kCols][kPer];
#pragma unroll
    for (int c = 0; c < kCols; ++c)
        if (j0 + c < dv)
#pragma unroll
            for (int e = 0; e < kPer; ++e) col[c][e] = S[c * dk + lane + 32 * e];
#pragma unroll
    for (int c = 0; c < kCols; ++c) {
        if (j0 + c >= dv) break;
        float sk = 0.f, sq = 0.f;
#pragma unroll
        for (int e = 0; e < kPer; ++e) sk += col[c][e] * k[e], sq += col[c][e] * q[e];
        sk = imp::cuda::warp_sum(sk);
        sq = imp::cuda::warp_sum(sq);
        const float delta = beta * (v[c] - decay * sk);
#pragma unroll
        for (int e = 0; e < kPer; ++e) S[c * dk + lane + 32 * e] = decay * col[c][e] + k[e] * delta;
        if (lane == 0) a.o[t * a.o_stride + int64_t(h) * dv + j0 + c] = a.scale * (decay * sq + delta * kq);
    }
}

}  // namespace

void rule_decode_cuda(Executor& ex, const RuleArgs& a) {
    validate(RuleDecode::name, a);
    const CudaHandles* h = ex.cuda();
    if (!h) throw Error(std::string(RuleDecode::name) + ": executor '" + ex.name() + "' is not a CUDA executor");
    if (a.seqs.n_tokens != a.seqs.n_seqs)
        throw Error(std::string(RuleDecode::name) + ": " + std::to_string(a.seqs.n_tokens) + " rows for " +
                    std::to_string(a.seqs.n_seqs) + " sequences (one row per sequence)");
    if (a.seqs.n_tokens == 0) return;
    imp::cuda::LaunchConfig c = imp::cuda::launch_config(*h);
    c.grid = dim3(unsigned(imp::cuda::div_up(a.dims.head_v_dim, kWarps * kCols)),
                  unsigned(int64_t(a.seqs.n_seqs) * a.dims.n_v_heads));
    c.block = dim3(kWarps * 32);
    switch (a.dims.head_k_dim) {
        case 64: IMP_CUDA_CHECK(imp::cuda::launch(c, decode_kernel<2>, a)); break;
        case 128: IMP_CUDA_CHECK(imp::cuda::launch(c, decode_kernel<4>, a)); break;
        case 256: IMP_CUDA_CHECK(imp::cuda::launch(c, decode_kernel<8>, a)); break;
        default:
            throw Error(std::string(RuleDecode::name) + ": head_k_dim " + std::to_string(a.dims.head_k_dim) +
                        " is not supported by the CUDA kernel (64, 128 or 256)");
    }
}

}  // namespace imp::gdn
