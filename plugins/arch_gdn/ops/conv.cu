// CUDA kernels of gdn.conv (gdn_ops.h). One block of 128 threads per (row, head of q, k or v channels): the causal
// conv reads the window from the step's rows or, before the sequence's first row, from the slot's conv state; SiLU;
// a block sum of squares L2-normalizes q and k heads; the first block of each row also computes the gates.
// A step with several rows per sequence rewrites the conv states in a second kernel (every row must have read the
// old state first); a decode step (one row per sequence) updates the state in the first kernel. Steps with several
// rows per sequence take conv_rows.cu's kernel instead of the first when Conv::Args::variant allows and it applies;
// decode steps with K = 4 take conv_decode.cu's (the same outputs, its loads before the PDL wait) likewise.
#include "conv_common.cuh"
#include "gdn_kernels.h"
#include "imp/cuda/check.h"
#include "imp/cuda/launch.cuh"
#include "imp/cuda/reduce.cuh"

namespace imp::gdn {

namespace {

using imp::cuda::pdl_launch_dependents;
using imp::cuda::pdl_wait;

constexpr int kThreads = 128;
constexpr int kMaxPerThread = 4;  // head sizes up to 512

struct ConvK {
    Conv::Args a;
    int n_units;  // 2 Hk + Hv heads
};

using conv::silu;

template <bool kUpdateState>
__global__ void __launch_bounds__(kThreads) conv_kernel(ConvK p) {
    pdl_launch_dependents();
    pdl_wait();
    const Conv::Args& a = p.a;
    const Dims& d = a.dims;
    const int unit = blockIdx.y;
    const int64_t t = blockIdx.x;
    const int s = a.seqs.token_seq[t];
    const int64_t r0 = a.seqs.query_start_loc[s];
    const int64_t pos = t - r0;
    const int K = a.kernel;
    const int64_t cd = d.conv_dim();
    float* st = a.conv_state + int64_t(a.seqs.state_slots[s]) * a.state_stride;
    const bool is_key = unit < 2 * d.n_k_heads;
    const int width = is_key ? d.head_k_dim : d.head_v_dim;
    const int64_t c0 = is_key ? int64_t(unit) * d.head_k_dim : 2 * d.key_dim() + int64_t(unit - 2 * d.n_k_heads) * d.head_v_dim;

    float y[kMaxPerThread];
    float ss = 0.f;
#pragma unroll
    for (int e = 0; e < kMaxPerThread; ++e) {
        const int i = threadIdx.x + e * kThreads;
        y[e] = 0.f;
        if (i >= width) continue;
        const int64_t c = c0 + i;
        float acc = 0.f, win[8];
        for (int j = 0; j < K; ++j) {
            const int64_t q = pos - (K - 1) + j;  // position of tap j
            win[j] = q >= 0 ? a.x[(r0 + q) * a.x_stride + c] : st[(pos + j) * cd + c];
            acc += a.w[c * K + j] * win[j];
        }
        y[e] = silu(acc);
        ss += y[e] * y[e];
        if (kUpdateState)  // the only row of its sequence: the new state is the window's last K-1 inputs
            for (int j = 0; j < K - 1; ++j) st[j * cd + c] = win[j + 1];
    }
    if (is_key) {
        __shared__ float red[32];
        ss = imp::cuda::block_sum(ss, red);
        const float inv = rsqrtf(ss + a.l2_eps);
#pragma unroll
        for (int e = 0; e < kMaxPerThread; ++e) y[e] *= inv;
    }
#pragma unroll
    for (int e = 0; e < kMaxPerThread; ++e) {
        const int i = threadIdx.x + e * kThreads;
        if (i < width) a.out[t * a.out_stride + c0 + i] = y[e];
    }
    if (unit == 0) conv::row_gates(a, t, threadIdx.x, kThreads);
}

// New conv state of each (sequence, channel): the last K-1 inputs of (old state, the step's rows).
__global__ void state_kernel(Conv::Args a) {
    pdl_launch_dependents();
    pdl_wait();
    const int64_t cd = a.dims.conv_dim();
    const int s = blockIdx.y;
    const int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (c >= cd) return;
    const int64_t r0 = a.seqs.query_start_loc[s], n = a.seqs.query_start_loc[s + 1] - r0;
    const int K = a.kernel;
    float* st = a.conv_state + int64_t(a.seqs.state_slots[s]) * a.state_stride;
    float v[7];
    for (int j = 0; j < K - 1; ++j) {
        const int64_t q = n - (K - 1) + j;
        v[j] = q >= 0 ? a.x[(r0 + q) * a.x_stride + c] : st[(n + j) * cd + c];
    }
    for (int j = 0; j < K - 1; ++j) st[j * cd + c] = v[j];
}

}  // namespace

void conv_cuda(Executor& ex, const Conv::Args& a) {
    validate(a);
    const CudaHandles* h = ex.cuda();
    if (!h) throw Error(std::string(Conv::name) + ": executor '" + ex.name() + "' is not a CUDA executor");
    if (a.dims.head_k_dim > kThreads * kMaxPerThread || a.dims.head_v_dim > kThreads * kMaxPerThread)
        throw Error(std::string(Conv::name) + ": head sizes above " + std::to_string(kThreads * kMaxPerThread) +
                    " are not supported by the CUDA kernel");
    if (a.variant < 0 || a.variant > 1)
        throw Error(std::string(Conv::name) + ": variant " + std::to_string(a.variant) + " is not 0..1");
    if (a.seqs.n_tokens == 0) return;
    imp::cuda::LaunchConfig c = imp::cuda::launch_config(*h);
    ConvK p{a, 2 * a.dims.n_k_heads + a.dims.n_v_heads};
    c.block = dim3(kThreads);
    const bool decode = a.seqs.max_query_len == 1;
    c.grid = dim3(unsigned(a.seqs.n_tokens), unsigned(p.n_units));
    if (decode && conv::conv_decode_applies(a))
        conv::conv_decode(a, *h);
    else if (decode)
        IMP_CUDA_CHECK(imp::cuda::launch(c, conv_kernel<true>, p));
    else if (a.variant == 0 && conv::conv_rows_applies(a))
        conv::conv_rows(a, *h);
    else
        IMP_CUDA_CHECK(imp::cuda::launch(c, conv_kernel<false>, p));
    if (!decode) {
        c.grid = dim3(unsigned(imp::cuda::div_up(a.dims.conv_dim(), 256)), unsigned(a.seqs.n_seqs));
        c.block = dim3(256);
        IMP_CUDA_CHECK(imp::cuda::launch(c, state_kernel, a));
    }
}

}  // namespace imp::gdn
