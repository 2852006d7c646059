// gdn.conv's decode kernel for K = 4 taps (Qwen3-Next, Qwen3.5, Qwen3.6): steps of one row per sequence. The grid
// of conv.cu (a block of 128 threads per (row, head of q, k or v channels), a thread per channel), but everything
// no kernel of the step writes is read before the PDL wait, so those loads overlap the kernel before (the in_proj
// GEMV): the row's metadata, the channel's 4 tap weights (one float4), the K-1 = 3 rows of the slot's conv state
// (written only by this layer's conv of an earlier step, or zeroed when the sequence was added, both stream-ordered
// before this step), and the gates' A and dt_bias. After the wait: the row's x, a and b. conv.cu's kernel loops over
// a runtime K with each tap's loads behind the last (5.6 us a call alone, 17 us of the decode step's critical path by
// bench.ablate, on an H100 at 47a6fde, Qwen3.6-35B-A3B's 64 heads). The sums are conv.cu's, in its order: the same
// outputs bit for bit.
#include <cstdint>

#include "conv_common.cuh"
#include "imp/cuda/check.h"
#include "imp/cuda/launch.cuh"
#include "imp/cuda/reduce.cuh"

namespace imp::gdn::conv {

namespace {

using imp::cuda::pdl_launch_dependents;
using imp::cuda::pdl_wait;

constexpr int kThreads = 128;

// PT: channels per thread (ceil(widest head / 128)).
template <int PT>
__global__ void __launch_bounds__(kThreads) conv_decode4_kernel(Conv::Args a) {
    pdl_launch_dependents();
    const Dims& d = a.dims;
    const int unit = blockIdx.y;
    const int64_t t = blockIdx.x;
    const int s = a.seqs.token_seq[t];
    const int64_t r0 = a.seqs.query_start_loc[s];  // = t: the sequence's only row
    const int64_t cd = d.conv_dim();
    float* st = a.conv_state + int64_t(a.seqs.state_slots[s]) * a.state_stride;
    const bool is_key = unit < 2 * d.n_k_heads;
    const int width = is_key ? d.head_k_dim : d.head_v_dim;
    const int64_t c0 = is_key ? int64_t(unit) * d.head_k_dim : 2 * d.key_dim() + int64_t(unit - 2 * d.n_k_heads) * d.head_v_dim;
    const float4* w4 = reinterpret_cast<const float4*>(a.w);
    float4 w[PT];
    float s0[PT], s1[PT], s2[PT];
#pragma unroll
    for (int e = 0; e < PT; ++e) {
        const int i = threadIdx.x + e * kThreads;
        if (i >= width) continue;
        const int64_t c = c0 + i;
        w[e] = __ldg(w4 + c);
        s0[e] = st[c];
        s1[e] = st[cd + c];
        s2[e] = st[2 * cd + c];
    }
    const int hv = d.n_v_heads;
    const bool gates = unit == 0 && int(threadIdx.x) < hv;  // hv <= kThreads (checked at launch)
    const int j = int(threadIdx.x);
    const float A = gates ? __ldg(a.A + j) : 0.f, dt = gates ? __ldg(a.dt_bias + j) : 0.f;
    pdl_wait();
    float y[PT];
    float ss = 0.f;
#pragma unroll
    for (int e = 0; e < PT; ++e) {
        const int i = threadIdx.x + e * kThreads;
        y[e] = 0.f;
        if (i >= width) continue;
        const int64_t c = c0 + i;
        const float xv = a.x[r0 * a.x_stride + c];
        float acc = 0.f;
        acc += w[e].x * s0[e];
        acc += w[e].y * s1[e];
        acc += w[e].z * s2[e];
        acc += w[e].w * xv;
        y[e] = silu(acc);
        ss += y[e] * y[e];
        st[c] = s1[e];  // the new state: the window's last 3 inputs
        st[cd + c] = s2[e];
        st[2 * cd + c] = xv;
    }
    if (is_key) {
        __shared__ float red[32];
        ss = imp::cuda::block_sum(ss, red);
        const float inv = rsqrtf(ss + a.l2_eps);
#pragma unroll
        for (int e = 0; e < PT; ++e) y[e] *= inv;
    }
#pragma unroll
    for (int e = 0; e < PT; ++e) {
        const int i = threadIdx.x + e * kThreads;
        if (i < width) a.out[t * a.out_stride + c0 + i] = y[e];
    }
    if (gates) {
        const float2 gb = gate_values(a, t, j, A, dt);
        a.g[t * hv + j] = gb.x;
        a.beta[t * hv + j] = gb.y;
    }
}

}  // namespace

bool conv_decode_applies(const Conv::Args& a) {
    const int widest = a.dims.head_k_dim > a.dims.head_v_dim ? a.dims.head_k_dim : a.dims.head_v_dim;
    return a.seqs.max_query_len == 1 && a.kernel == 4 && a.variant == 0 && widest <= 4 * kThreads &&
           a.dims.n_v_heads <= kThreads && reinterpret_cast<uintptr_t>(a.w) % 16 == 0;
}

void conv_decode(const Conv::Args& a, const CudaHandles& h) {
    imp::cuda::LaunchConfig c = imp::cuda::launch_config(h);
    c.block = dim3(kThreads);
    c.grid = dim3(unsigned(a.seqs.n_tokens), unsigned(2 * a.dims.n_k_heads + a.dims.n_v_heads));
    const int widest = a.dims.head_k_dim > a.dims.head_v_dim ? a.dims.head_k_dim : a.dims.head_v_dim;
    const int pt = (widest + kThreads - 1) / kThreads;
    if (pt == 1) IMP_CUDA_CHECK(imp::cuda::launch(c, conv_decode4_kernel<1>, a));
    else if (pt == 2) IMP_CUDA_CHECK(imp::cuda::launch(c, conv_decode4_kernel<2>, a));
    else IMP_CUDA_CHECK(imp::cuda::launch(c, conv_decode4_kernel<4>, a));
}

}  // namespace imp::gdn::conv
