// CUDA kernels of gdn.rule_decode (gdn_ops.h): one warp per (sequence, v-head, 4 value columns). The state is stored
// [Hv, dv, dk], so a value column's dk keys are contiguous: the warp reads them coalesced (dk/32 per lane), decays
// them, and one pass of warp sums gives S^T k and S^T q; then delta = beta (v - e S^T k), the column is rewritten
// as e S + k delta and o = scale (e S^T q + delta (k . q)), e = exp(g). Blocks of 4 warps cover 16 columns; with the
// gated norm (RuleArgs::norm_w), one block per v-head (8, 16 or 32 warps: RuleArgs::variant) covers the whole head
// and normalizes its outputs in place. At dv = 128, 32 warps take one group of 4 columns each: the head's state is
// read in one round of loads instead of four (8 warps), at the same 1 block per head. RuleArgs::decode_ctas > 1 splits
// each head's columns over a cluster of that many CTAs (decode_norm_cluster_kernel).
#include <cooperative_groups.h>

#include "gdn_kernels.h"
#include "imp/cuda/check.h"
#include "imp/cuda/launch.cuh"
#include "imp/cuda/reduce.cuh"
#include "rule_decode_cols.cuh"

namespace imp::gdn {

namespace {

constexpr int kWarps = 4;
using decode::kCols;

// The state of value columns [j0, j0 + kCols) of v-head h of row t (sequence t).
template <int kPer>
__device__ __forceinline__ float* state_cols(const RuleArgs& a, int64_t t, int h, int j0) {
    return a.state + int64_t(a.seqs.state_slots[t]) * a.state_stride +
           (int64_t(h) * a.dims.head_v_dim + j0) * (kPer * 32);
}

// One warp: value columns [j0, j0 + kCols) of v-head h of row t (sequence t), their state in col (decode::load_cols
// of state_cols), f(column, o value) for each.
template <int kPer, class F>
__device__ __forceinline__ void decode_cols_loaded(const RuleArgs& a, int64_t t, int h, int j0,
                                                   const float (&col)[decode::kCols][kPer], F&& f) {
    const Dims& d = a.dims;
    const int kh = d.k_head_of(h), dk = kPer * 32;
    const float* row = a.qkv + t * a.qkv_stride;
    const float* q = row + int64_t(kh) * dk;
    decode::delta_cols_loaded<kPer>(q, q + d.key_dim(), row + 2 * d.key_dim() + int64_t(h) * d.head_v_dim + j0,
                                    expf(a.g[t * d.n_v_heads + h]), a.beta[t * d.n_v_heads + h], a.scale,
                                    state_cols<kPer>(a, t, h, j0), j0, d.head_v_dim, col, f);
}

// decode_cols_loaded with the state read here.
template <int kPer, class F>
__device__ __forceinline__ void decode_cols(const RuleArgs& a, int64_t t, int h, int j0, F&& f) {
    float col[decode::kCols][kPer];
    decode::load_cols<kPer>(state_cols<kPer>(a, t, h, j0), j0, a.dims.head_v_dim, col);
    decode_cols_loaded<kPer>(a, t, h, j0, col, f);
}

template <int kPer>  // dk / 32
__global__ void __launch_bounds__(kWarps * 32) decode_kernel(RuleArgs a) {
    imp::cuda::pdl_launch_dependents();
    imp::cuda::pdl_wait();
    const int s = blockIdx.y / a.dims.n_v_heads, h = blockIdx.y % a.dims.n_v_heads;
    const int j0 = (blockIdx.x * kWarps + (threadIdx.x >> 5)) * kCols;
    if (j0 >= a.dims.head_v_dim) return;
    float* o = a.o + int64_t(s) * a.o_stride + int64_t(h) * a.dims.head_v_dim;
    decode_cols<kPer>(a, s, h, j0, [&](int j, float v) {
        if ((threadIdx.x & 31) == 0) o[j] = v;
    });
}

// With the gated norm: one block of W warps per (sequence, v-head) holds the head's dv outputs in shared memory.
constexpr int kMaxDv = 512;

template <int kPer, int W>
__global__ void __launch_bounds__(W * 32) decode_norm_kernel(RuleArgs a) {
    imp::cuda::pdl_launch_dependents();
    imp::cuda::pdl_wait();
    __shared__ float os[kMaxDv];
    __shared__ float red[32];
    const int s = blockIdx.y / a.dims.n_v_heads, h = blockIdx.y % a.dims.n_v_heads, dv = a.dims.head_v_dim;
    for (int j0 = (threadIdx.x >> 5) * kCols; j0 < dv; j0 += W * kCols)
        decode_cols<kPer>(a, s, h, j0, [&](int j, float v) {
            if ((threadIdx.x & 31) == 0) os[j] = v;
        });
    __syncthreads();
    float ss = 0.f;
    for (int j = threadIdx.x; j < dv; j += blockDim.x) ss += os[j] * os[j];
    ss = imp::cuda::block_sum(ss, red);
    const float inv = rsqrtf(ss / float(dv) + a.norm_eps);
    const float* z = a.z + int64_t(s) * a.z_stride + int64_t(h) * dv;
    float* o = a.o + int64_t(s) * a.o_stride + int64_t(h) * dv;
    for (int j = threadIdx.x; j < dv; j += blockDim.x) o[j] = decode::gated(os[j], inv, a.norm_w[j], z[j]);
}

// The gated norm with a v-head split over a cluster of C CTAs (RuleArgs::decode_ctas; grid (C, sequences x heads)):
// CTA r takes the head's columns r W kCols + [0, W kCols), then every C W kCols further; each CTA sums the squares
// of its outputs, the C partial sums meet through distributed shared memory (added in rank order, so every CTA gets
// the same total) and each CTA normalizes its own columns. C times the CTAs of decode_norm_kernel, each reading
// 1/C of the head's state: at dv 128, C 4 and 8 warps, 128 CTAs for 32 heads, each column group in one round.
template <int kPer, int W>
__global__ void __launch_bounds__(W * 32) decode_norm_cluster_kernel(RuleArgs a) {
    imp::cuda::pdl_launch_dependents();
    namespace cg = cooperative_groups;
    cg::cluster_group cluster = cg::this_cluster();
    const int rank = int(cluster.block_rank()), n_cta = int(cluster.num_blocks());
    __shared__ float os[kMaxDv];
    __shared__ float red[32];
    __shared__ float part;
    const int s = blockIdx.y / a.dims.n_v_heads, h = blockIdx.y % a.dims.n_v_heads, dv = a.dims.head_v_dim;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int step = n_cta * W * kCols, first = (rank * W + warp) * kCols;
    // The state of the warp's first columns is read before the PDL wait, overlapping the kernels before: only this
    // kernel writes this layer's state during a step (new sequences' slots are zeroed, forks copied, before the
    // step's first kernel), and the state slots are step metadata the host writes before it.
    float col0[kCols][kPer];
    if (first < dv) decode::load_cols<kPer>(state_cols<kPer>(a, s, h, first), first, dv, col0);
    imp::cuda::pdl_wait();
    float ss = 0.f;  // the same in every lane: f gets the warp-summed output
    auto put = [&](int j, float v) {
        if (lane == 0) os[j] = v;
        ss += v * v;
    };
    if (first < dv) decode_cols_loaded<kPer>(a, s, h, first, col0, put);
    for (int j0 = first + step; j0 < dv; j0 += step) decode_cols<kPer>(a, s, h, j0, put);
    if (lane == 0) red[warp] = ss;
    __syncthreads();
    if (threadIdx.x == 0) {
        float t = 0.f;
        for (int i = 0; i < W; ++i) t += red[i];
        part = t;
    }
    cluster.sync();  // every CTA's partial sum is written
    float tot = 0.f;
    for (int r = 0; r < n_cta; ++r) tot += *cluster.map_shared_rank(&part, r);
    decode::write_gated(os, tot, a.norm_eps, a.norm_w, a.z + int64_t(s) * a.z_stride + int64_t(h) * dv,
                        a.o + int64_t(s) * a.o_stride + int64_t(h) * dv, first, step, dv);
    cluster.sync();  // the partial sums stay in shared memory until every CTA has read them
}

template <int kPer>  // dk / 32
void launch_decode(const imp::cuda::LaunchConfig& c, const RuleArgs& a, int nw) {
    if (!a.norm_w) IMP_CUDA_CHECK(imp::cuda::launch(c, decode_kernel<kPer>, a));
    else if (c.cluster.x > 1) {
        if (nw == 8) IMP_CUDA_CHECK(imp::cuda::launch(c, decode_norm_cluster_kernel<kPer, 8>, a));
        else if (nw == 16) IMP_CUDA_CHECK(imp::cuda::launch(c, decode_norm_cluster_kernel<kPer, 16>, a));
        else IMP_CUDA_CHECK(imp::cuda::launch(c, decode_norm_cluster_kernel<kPer, 32>, a));
    } else if (nw == 8) IMP_CUDA_CHECK(imp::cuda::launch(c, decode_norm_kernel<kPer, 8>, a));
    else if (nw == 16) IMP_CUDA_CHECK(imp::cuda::launch(c, decode_norm_kernel<kPer, 16>, a));
    else IMP_CUDA_CHECK(imp::cuda::launch(c, decode_norm_kernel<kPer, 32>, a));
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
    if (a.norm_w && a.dims.head_v_dim > kMaxDv)
        throw Error(std::string(RuleDecode::name) + ": the gated norm in the CUDA kernel takes head_v_dim <= " +
                    std::to_string(kMaxDv) + ", got " + std::to_string(a.dims.head_v_dim));
    const int nw = a.variant == 0 ? 8 : a.variant;  // warps per v-head with the gated norm
    if (nw != 8 && nw != 16 && nw != 32)
        throw Error(std::string(RuleDecode::name) + ": variant " + std::to_string(a.variant) +
                    " is not a warp count of the gated-norm kernel (0 or 8, 16, 32)");
    const int ctas = a.decode_ctas;
    if (ctas != 1 && ctas != 2 && ctas != 4 && ctas != 8)
        throw Error(std::string(RuleDecode::name) + ": decode_ctas " + std::to_string(ctas) +
                    " is not a cluster size of the gated-norm kernel (1, 2, 4 or 8)");
    if (ctas > 1 && h->cc < 90)
        throw Error(std::string(RuleDecode::name) + ": decode_ctas " + std::to_string(ctas) +
                    " needs thread-block clusters (compute capability 9.0), device has " + std::to_string(h->cc / 10) +
                    "." + std::to_string(h->cc % 10));
    imp::cuda::LaunchConfig c = imp::cuda::launch_config(*h);
    c.grid = dim3(a.norm_w ? unsigned(ctas) : unsigned(imp::cuda::div_up(a.dims.head_v_dim, kWarps * kCols)),
                  unsigned(int64_t(a.seqs.n_seqs) * a.dims.n_v_heads));
    c.block = dim3(a.norm_w ? nw * 32 : kWarps * 32);
    if (a.norm_w && ctas > 1) c.cluster = dim3(unsigned(ctas), 1, 1);
    switch (a.dims.head_k_dim) {
        case 64: launch_decode<2>(c, a, nw); break;
        case 128: launch_decode<4>(c, a, nw); break;
        case 256: launch_decode<8>(c, a, nw); break;
        default:
            throw Error(std::string(RuleDecode::name) + ": head_k_dim " + std::to_string(a.dims.head_k_dim) +
                        " is not supported by the CUDA kernel (64, 128 or 256)");
    }
}

}  // namespace imp::gdn
