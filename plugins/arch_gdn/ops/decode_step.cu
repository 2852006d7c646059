// CUDA kernel of gdn.decode_step (gdn_ops.h): the GDN mixer's decode step after its projections in one kernel: the
// causal conv + SiLU of q, k and v, the L2 norms of q and k, the gates, the delta rule and the gated norm; q|k|v and
// the gates never leave the chip (gdn.conv + gdn.rule_decode ran two kernels with an fp32 q|k|v round trip).
// Grid (G, sequences x Hk) in clusters of G = (Hv / Hk) x C CTAs, one cluster per (sequence, k-head): CTA rank r
// serves v-head m = r / C of the k-head's group and column part c = r % C (the columns of decode_norm_cluster_kernel:
// c W kCols + [0, W kCols), then every C W kCols further). Every CTA convolves its k-head's q and k (2 dk channels)
// from the slot's conv state and the step's row, and the v channels of its own columns. The v channels' conv state is
// rewritten by the CTA that owns them; the q and k channels' by rank 0 after a cluster barrier, when every CTA of the
// cluster has read the old state. The norm's sum of squares of a v-head's C CTAs meets through distributed shared
// memory (in rank order: each CTA gets the same total).
#include <cooperative_groups.h>

#include "conv_common.cuh"
#include "gdn_kernels.h"
#include "imp/cuda/check.h"
#include "imp/cuda/launch.cuh"
#include "imp/cuda/reduce.cuh"
#include "imp/error.h"
#include "rule_decode_cols.cuh"

namespace imp::gdn {

namespace {

constexpr int kMaxDv = 512;
constexpr int kMaxCluster = DecodeStep::kMaxCluster;
using decode::kCols;

struct StepK {
    Conv::Args c;
    RuleArgs r;
    int ctas;  // C: CTAs per v-head
};

// silu(causal conv) of channel ch for a sequence's only row x: the K-1 taps of the state rows, then x (conv.cu's
// order).
__device__ __forceinline__ float conv_one(const Conv::Args& a, const float* x, const float* st, int64_t ch) {
    const int K = a.kernel;
    const int64_t cd = a.dims.conv_dim();
    float acc = 0.f;
    for (int j = 0; j < K - 1; ++j) acc += a.w[ch * K + j] * st[j * cd + ch];
    acc += a.w[ch * K + K - 1] * x[ch];
    return conv::silu(acc);
}

// The conv state of channel ch after the row x: the window's last K-1 inputs.
__device__ __forceinline__ void shift_state(const Conv::Args& a, const float* x, float* st, int64_t ch) {
    const int K = a.kernel;
    const int64_t cd = a.dims.conv_dim();
    for (int j = 0; j + 2 < K; ++j) st[j * cd + ch] = st[(j + 1) * cd + ch];
    st[(K - 2) * cd + ch] = x[ch];
}

template <int kPer, int W>  // dk / 32, warps per CTA
__global__ void __launch_bounds__(W * 32) decode_step_kernel(StepK p) {
    imp::cuda::pdl_launch_dependents();
    imp::cuda::pdl_wait();
    namespace cg = cooperative_groups;
    const Conv::Args& ca = p.c;
    const RuleArgs& ra = p.r;
    const Dims& d = ca.dims;
    constexpr int dk = kPer * 32;
    const bool clustered = gridDim.x > 1;
    const int rank = clustered ? int(cg::this_cluster().block_rank()) : 0;
    const int C = p.ctas, m = rank / C, part = rank % C, dv = d.head_v_dim;
    const int s = blockIdx.y / d.n_k_heads, kh = blockIdx.y % d.n_k_heads;
    const int h = d.tiled ? kh + m * d.n_k_heads : kh * (d.n_v_heads / d.n_k_heads) + m;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    constexpr int nt = W * 32, blk = W * kCols;  // columns of one CTA per round
    __shared__ float qs[dk], ks[dk], vs[kMaxDv], os[kMaxDv], red[32];
    __shared__ float gates[2], psum;
    const int64_t kd = d.key_dim();
    const float* x = ca.x + int64_t(s) * ca.x_stride;  // the sequence's only row (row s)
    float* cst = ca.conv_state + int64_t(ca.seqs.state_slots[s]) * ca.state_stride;

    // q and k of the k-head, L2-normalized.
    float sq = 0.f, sk = 0.f;
    for (int i = tid; i < 2 * dk; i += nt) {
        const int64_t ch = (i < dk ? 0 : kd - dk) + int64_t(kh) * dk + i;
        const float y = conv_one(ca, x, cst, ch);
        if (i < dk) qs[i] = y, sq += y * y;
        else ks[i - dk] = y, sk += y * y;
    }
    // The v channels of this CTA's columns (their conv state is this CTA's alone) and the v-head's gates.
    for (int i = tid;; i += nt) {
        const int j = (i / blk * C + part) * blk + i % blk;
        if (j >= dv) break;
        const int64_t ch = 2 * kd + int64_t(h) * dv + j;
        vs[j] = conv_one(ca, x, cst, ch);
        shift_state(ca, x, cst, ch);
    }
    if (tid == 0) {  // the v-head's decay exp(g) and beta
        const float2 gb = conv::gate_values(ca, s, h);
        gates[0] = expf(gb.x);
        gates[1] = gb.y;
    }
    sq = imp::cuda::block_sum(sq, red);  // (its barriers also publish qs, ks, vs and the gates)
    sk = imp::cuda::block_sum(sk, red);
    const float iq = rsqrtf(sq + ca.l2_eps), ik = rsqrtf(sk + ca.l2_eps);
    for (int i = tid; i < 2 * dk; i += nt) {
        if (i < dk) qs[i] *= iq;
        else ks[i - dk] *= ik;
    }
    __syncthreads();

    // The delta rule on this CTA's columns, then the gated norm over the v-head's C CTAs.
    float* S = ra.state + int64_t(ra.seqs.state_slots[s]) * ra.state_stride + int64_t(h) * dv * dk;
    const int step = C * blk, first = (part * W + warp) * kCols;
    float ss = 0.f;  // the same in every lane: f gets the warp-summed output
    for (int j0 = first; j0 < dv; j0 += step)
        decode::delta_cols<kPer>(qs, ks, vs + j0, gates[0], gates[1], ra.scale, S + int64_t(j0) * dk, j0, dv,
                                 [&](int j, float v) {
                                     if (lane == 0) os[j] = v;
                                     ss += v * v;
                                 });
    if (lane == 0) red[warp] = ss;  // (block_sum's last reads of red ended before the barrier above)
    __syncthreads();
    if (tid == 0) {
        float t = 0.f;
        for (int i = 0; i < W; ++i) t += red[i];
        psum = t;
    }
    float tot = 0.f;
    if (clustered) {
        cg::cluster_group cluster = cg::this_cluster();
        cluster.sync();  // every CTA's partial sum is written and every CTA has read the old q, k conv state
        for (int r = m * C; r < (m + 1) * C; ++r) tot += *cluster.map_shared_rank(&psum, r);
    } else {
        __syncthreads();
        tot = psum;
    }
    decode::write_gated(os, tot, ra.norm_eps, ra.norm_w, ra.z + int64_t(s) * ra.z_stride + int64_t(h) * dv,
                        ra.o + int64_t(s) * ra.o_stride + int64_t(h) * dv, first, step, dv);
    if (rank == 0)
        for (int i = tid; i < 2 * dk; i += nt) shift_state(ca, x, cst, (i < dk ? 0 : kd - dk) + int64_t(kh) * dk + i);
    if (clustered) cg::this_cluster().sync();  // the partial sums stay in shared memory until every CTA has read them
}

template <int kPer>
void launch_step(const imp::cuda::LaunchConfig& c, const StepK& p, int nw) {
    if (nw == 8) IMP_CUDA_CHECK(imp::cuda::launch(c, decode_step_kernel<kPer, 8>, p));
    else if (nw == 16) IMP_CUDA_CHECK(imp::cuda::launch(c, decode_step_kernel<kPer, 16>, p));
    else IMP_CUDA_CHECK(imp::cuda::launch(c, decode_step_kernel<kPer, 32>, p));
}

[[noreturn]] void fail(const std::string& what) { throw Error(std::string(DecodeStep::name) + ": " + what); }

}  // namespace

void decode_step_cuda(Executor& ex, const DecodeStep::Args& a) {
    const RuleArgs r = validate(a);
    const CudaHandles* h = ex.cuda();
    if (!h) fail("executor '" + ex.name() + "' is not a CUDA executor");
    const Dims& d = r.dims;
    if (d.head_v_dim > kMaxDv) fail("head_v_dim " + std::to_string(d.head_v_dim) + " above " + std::to_string(kMaxDv));
    const int nw = r.variant == 0 ? 8 : r.variant;
    if (nw != 8 && nw != 16 && nw != 32)
        fail("variant " + std::to_string(r.variant) + " is not a warp count of the kernel (0 or 8, 16, 32)");
    const int ctas = r.decode_ctas, ratio = d.n_v_heads / d.n_k_heads;
    if (ctas != 1 && ctas != 2 && ctas != 4 && ctas != 8)
        fail("decode_ctas " + std::to_string(ctas) + " is not 1, 2, 4 or 8");
    if (ratio * ctas > kMaxCluster)
        fail(std::to_string(ratio) + " v-heads per k-head x decode_ctas " + std::to_string(ctas) + " = " +
             std::to_string(ratio * ctas) + " CTAs per cluster, above " + std::to_string(kMaxCluster));
    if (ratio * ctas > 1 && h->cc < 90)
        fail("thread-block clusters need compute capability 9.0, device has " + std::to_string(h->cc / 10) + "." +
             std::to_string(h->cc % 10));
    if (r.seqs.n_tokens == 0) return;
    imp::cuda::LaunchConfig c = imp::cuda::launch_config(*h);
    c.grid = dim3(unsigned(ratio * ctas), unsigned(int64_t(r.seqs.n_seqs) * d.n_k_heads));
    c.block = dim3(unsigned(nw * 32));
    c.cluster = dim3(unsigned(ratio * ctas), 1, 1);
    const StepK p{a.conv, r, ctas};
    switch (d.head_k_dim) {
        case 64: launch_step<2>(c, p, nw); break;
        case 128: launch_step<4>(c, p, nw); break;
        case 256: launch_step<8>(c, p, nw); break;
        default:
            fail("head_k_dim " + std::to_string(d.head_k_dim) + " is not supported by the CUDA kernel (64, 128 or 256)");
    }
}

}  // namespace imp::gdn
