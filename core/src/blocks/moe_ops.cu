// CUDA kernels of the MoE block's ops (moe_ops.h). The router is one launch: a cluster of 8 or 16 CTAs of 8 or 16
// warps ([plugin.core] router_cluster, router_warps: MoeOptions) per tile of tokens splits the expert rows of the
// router GEMV (each CTA reads its slice of the router weights once for
// the tile's tokens), the logits meet in CTA 0 through distributed shared memory, and one warp per token runs the
// softmax, the iterated argmax top-k (ties to the lower id, as the CPU reference), the renormalization and scale,
// and the shared-expert gate. Nothing depends on host-side values of the routing, so the launch captures into a
// graph. Launched with PDL when CudaHandles::pdl (pdl_wait before touching activations). [plugin.core] router_grid =
// "wide" runs decode-sized calls on one warp per router row over many CTAs instead (router_wide_kernel).
#include <cooperative_groups.h>

#include <cfloat>
#include <climits>
#include <map>
#include <mutex>
#include <string>

#include "blocks/moe_ops.h"
#include "exec/cuda/cuda_check.h"
#include "exec/cuda/cuda_executor.h"
#include "imp/cuda/launch.cuh"
#include "imp/error.h"

namespace imp::blocks::moe_cuda {

namespace {

namespace cg = cooperative_groups;
using imp::cuda::pdl_launch_dependents;
using imp::cuda::pdl_wait;

constexpr int kRouterCluster = 8;  // CTAs per token tile: the portable cluster size (16 where asked and possible)
constexpr int kMaxExperts = 1024;  // keeps the logits of a tile of 8 tokens under 48 KiB of shared memory

struct RouterParams {
    const float* x;
    int64_t xs;
    const float* w;
    const float* sgw;
    int64_t n_tokens, n_embd;
    int n_expert, top_k, epb;  // epb: expert rows per CTA
    int norm_topk;
    float scale;
    int32_t* ids;
    float* weights;
    float* shared_gate;
    const float* norm_w;  // RMSNorm weight, or null
    float eps;
    float* xn;            // [n_tokens, n_embd], written when norm_w
};

// Loads of a lane in flight at once in the vectorized router GEMV: a batch of kRouterBatch float4 of the weight row
// (and, one token, of x and the norm weight) is issued before any is used, so a warp's row costs a few memory
// latencies rather than one per 32 float4 (the loop is otherwise latency-bound: ~23 us per decode step at 8 CTAs).
// The sums keep their order (c = lane, lane + 32, ...): the same logits as one load at a time.
template <int TT>
constexpr int kRouterBatch = TT == 1 ? 8 : 4;

template <int TT, bool VEC>
__device__ __forceinline__ void dot_rows(const RouterParams& p, const float* wr, int64_t t0, int nt, int lane,
                                         float (&acc)[TT]) {
#pragma unroll
    for (int tt = 0; tt < TT; ++tt) acc[tt] = 0.f;
    if constexpr (VEC) {
        constexpr int U = kRouterBatch<TT>;
        const float4* w4 = reinterpret_cast<const float4*>(wr);
        const float4* n4 = reinterpret_cast<const float4*>(p.norm_w);
        const int64_t n_c = p.n_embd / 4;
        for (int64_t c0 = lane; c0 < n_c; c0 += 32 * U) {
            float4 wv[U], nv[U], xv[U];
#pragma unroll
            for (int u = 0; u < U; ++u) {
                const int64_t c = c0 + 32 * u;
                const bool in = c < n_c;
                wv[u] = in ? __ldg(w4 + c) : make_float4(0.f, 0.f, 0.f, 0.f);
                nv[u] = in && n4 ? __ldg(n4 + c) : make_float4(1.f, 1.f, 1.f, 1.f);
                if constexpr (TT == 1)
                    xv[u] = in ? reinterpret_cast<const float4*>(p.x + t0 * p.xs)[c] : make_float4(0.f, 0.f, 0.f, 0.f);
            }
#pragma unroll
            for (int u = 0; u < U; ++u) {
                const int64_t c = c0 + 32 * u;
                if (c >= n_c) break;
                float4 w = wv[u];
                if (n4) w.x *= nv[u].x, w.y *= nv[u].y, w.z *= nv[u].z, w.w *= nv[u].w;
#pragma unroll
                for (int tt = 0; tt < TT; ++tt)
                    if (tt < nt) {
                        const float4 x =
                            TT == 1 ? xv[u] : reinterpret_cast<const float4*>(p.x + (t0 + tt) * p.xs)[c];
                        acc[tt] += w.x * x.x + w.y * x.y + w.z * x.z + w.w * x.w;
                    }
            }
        }
    } else {
        for (int64_t c = lane; c < p.n_embd; c += 32) {
            const float wv = __ldg(wr + c) * (p.norm_w ? __ldg(p.norm_w + c) : 1.f);
#pragma unroll
            for (int tt = 0; tt < TT; ++tt)
                if (tt < nt) acc[tt] += wv * p.x[(t0 + tt) * p.xs + c];
        }
    }
#pragma unroll
    for (int tt = 0; tt < TT; ++tt)
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) acc[tt] += __shfl_xor_sync(0xffffffffu, acc[tt], o);
}

// One warp routes token t from its logits lg[0, n_expert] (shared memory; lg[n_expert]: the shared-expert gate's
// logit when p.sgw): softmax, the iterated argmax top-k (ties to the lower id, as the CPU reference), the
// renormalization and scale, and the shared-expert gate. Overwrites lg[0, n_expert) with the probabilities' keys
// (their bits + 1; 0 once taken), as route_token_regs ranks them, so both pick the same ids bit for bit, and a
// non-finite logit (every probability NaN) picks the lowest ids, as the CPU reference does, instead of no id.
__device__ void route_token(const RouterParams& p, float* lg, int64_t t, int lane) {
    float mx = -FLT_MAX;
    for (int e = lane; e < p.n_expert; e += 32) mx = fmaxf(mx, lg[e]);
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    float sum = 0.f;
    for (int e = lane; e < p.n_expert; e += 32) sum += (lg[e] = expf(lg[e] - mx));
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    // The keys stay in the float array as bit patterns (every access is a float one: no type punning through
    // memory); loads and stores keep the bits, NaN payloads included.
    for (int e = lane; e < p.n_expert; e += 32) lg[e] = __uint_as_float(__float_as_uint(lg[e] / sum) + 1u);
    __syncwarp();
    float picked = 0.f;
    for (int j = 0; j < p.top_k; ++j) {
        unsigned bk = 0u, bi = UINT_MAX;
        for (int e = lane; e < p.n_expert; e += 32) {
            const unsigned k = __float_as_uint(lg[e]);
            if (k > bk) bk = k, bi = unsigned(e);  // ascending e: the lower id wins ties inside a lane
        }
        const unsigned m = __reduce_max_sync(0xffffffffu, bk);
        const unsigned win = __reduce_min_sync(0xffffffffu, bk == m ? bi : UINT_MAX);
        const float bv = __uint_as_float(m - 1u);
        picked += bv;
        if (lane == 0) {
            p.ids[t * p.top_k + j] = int32_t(win);
            p.weights[t * p.top_k + j] = bv;
        }
        if (win < unsigned(p.n_expert) && win % 32u == unsigned(lane)) lg[win] = __uint_as_float(0u);  // taken
        __syncwarp();
    }
    const float f = (p.norm_topk ? 1.f / picked : 1.f) * p.scale;
    for (int j = lane; j < p.top_k; j += 32) p.weights[t * p.top_k + j] *= f;
    if (p.sgw && lane == 0) p.shared_gate[t] = 1.f / (1.f + expf(-lg[p.n_expert]));
}

// route_token on logits the lane holds in registers (e = lane + 32 i, i < NPL; n_expert <= 32 NPL), read once with
// load(e): the same softmax (its sums in the same order), then the iterated argmax on keys (the probability's bits
// + 1, positive probabilities order as their bits; 0 once taken) with two warp reductions a round (redux.sync: the
// largest key, then the lowest id holding it) instead of five shuffle rounds over shared memory. For finite logits the
// same ids and weights as route_token, bit for bit.
template <int NPL, typename Load>
__device__ void route_token_regs(const RouterParams& p, Load load, int64_t t, int lane) {
    float v[NPL];
    float mx = -FLT_MAX;
#pragma unroll
    for (int i = 0; i < NPL; ++i) {
        const int e = lane + 32 * i;
        v[i] = e < p.n_expert ? load(e) : -FLT_MAX;
        mx = fmaxf(mx, v[i]);
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    float sum = 0.f;
#pragma unroll
    for (int i = 0; i < NPL; ++i)
        if (lane + 32 * i < p.n_expert) sum += (v[i] = expf(v[i] - mx));
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    unsigned key[NPL];
#pragma unroll
    for (int i = 0; i < NPL; ++i) key[i] = lane + 32 * i < p.n_expert ? __float_as_uint(v[i] / sum) + 1u : 0u;
    float picked = 0.f;
    for (int j = 0; j < p.top_k; ++j) {
        unsigned bk = 0u, bi = UINT_MAX;
#pragma unroll
        for (int i = 0; i < NPL; ++i)
            if (key[i] > bk) bk = key[i], bi = unsigned(lane + 32 * i);  // ascending ids: the lower wins ties
        const unsigned m = __reduce_max_sync(0xffffffffu, bk);
        const unsigned win = __reduce_min_sync(0xffffffffu, bk == m ? bi : UINT_MAX);
        const float bv = __uint_as_float(m - 1u);
        picked += bv;
        if (lane == 0) {
            p.ids[t * p.top_k + j] = int32_t(win);
            p.weights[t * p.top_k + j] = bv;
        }
#pragma unroll
        for (int i = 0; i < NPL; ++i)
            if (unsigned(lane + 32 * i) == win) key[i] = 0u;  // taken
    }
    __syncwarp();
    const float f = (p.norm_topk ? 1.f / picked : 1.f) * p.scale;
    for (int j = lane; j < p.top_k; j += 32) p.weights[t * p.top_k + j] *= f;
    if (p.sgw && lane == 0) p.shared_gate[t] = 1.f / (1.f + expf(-load(p.n_expert)));
}

// route_token, on registers where the experts fit 16 a lane.
template <typename Load>
__device__ void route_token_any(const RouterParams& p, Load load, float* lg, int64_t t, int lane) {
    if (p.n_expert <= 32 * 4) return route_token_regs<4>(p, load, t, lane);
    if (p.n_expert <= 32 * 8) return route_token_regs<8>(p, load, t, lane);
    if (p.n_expert <= 32 * 16) return route_token_regs<16>(p, load, t, lane);
    const int n_total = p.n_expert + (p.sgw ? 1 : 0);
    for (int i = lane; i < n_total; i += 32) lg[i] = load(i);
    __syncwarp();
    route_token(p, lg, t, lane);
}

// Grid (C, tiles of TT tokens), cluster (C, 1, 1) with C = 8 or 16, W warps. Shared memory: this CTA's logits
// [TT][epb], then (CTA 0) the gathered logits [TT][n_total], then the tokens' RMSNorm scales [TT]. With the norm,
// logit = scale_t * sum_c x_c (norm_w_c w_ec) and each CTA writes its slice of the columns of xn.
template <int TT, bool VEC, int W>
__global__ void __launch_bounds__(W * 32) router_kernel(RouterParams p) {
    static_assert(W >= TT, "one warp per token of the tile for the norm and the top-k");
    extern __shared__ float smem[];
    cg::cluster_group cluster = cg::this_cluster();
    const int rank = int(cluster.block_rank()), n_cta = int(cluster.num_blocks());
    const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;
    const int64_t t0 = int64_t(blockIdx.y) * TT;
    const int64_t left = p.n_tokens - t0;
    const int nt = left < TT ? int(left) : TT;
    const int n_total = p.n_expert + (p.sgw ? 1 : 0);
    pdl_launch_dependents();
    pdl_wait();
    float* own = smem;
    float* inv = smem + TT * (p.epb + n_total);
    if (p.norm_w) {
        if (warp < nt) {
            const float* xr = p.x + (t0 + warp) * p.xs;
            float ss = 0.f;
#pragma unroll 8
            for (int64_t c = lane; c < p.n_embd; c += 32) ss += xr[c] * xr[c];
#pragma unroll
            for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
            if (lane == 0) inv[warp] = 1.f / sqrtf(ss / float(p.n_embd) + p.eps);
        }
        __syncthreads();
        const int64_t per = (p.n_embd + n_cta - 1) / n_cta, c0 = rank * per;
        const int64_t c1 = c0 + per < p.n_embd ? c0 + per : p.n_embd;
        for (int tt = 0; tt < nt; ++tt)
            for (int64_t c = c0 + threadIdx.x; c < c1; c += blockDim.x)
                p.xn[(t0 + tt) * p.n_embd + c] = p.x[(t0 + tt) * p.xs + c] * inv[tt] * p.norm_w[c];
    }
    for (int i = warp; i < p.epb; i += W) {
        const int e = rank * p.epb + i;
        if (e >= n_total) break;
        const float* wr = e < p.n_expert ? p.w + int64_t(e) * p.n_embd : p.sgw;
        float acc[TT];
        dot_rows<TT, VEC>(p, wr, t0, nt, lane, acc);
        if (lane == 0)
#pragma unroll
            for (int tt = 0; tt < TT; ++tt) own[tt * p.epb + i] = p.norm_w && tt < nt ? acc[tt] * inv[tt] : acc[tt];
    }
    cluster.sync();
    if (rank == 0 && warp < nt) {
        float* lg = smem + TT * p.epb + warp * n_total;
        for (int e = lane; e < n_total; e += 32) {
            const float* src = cluster.map_shared_rank(own, e / p.epb);
            lg[e] = src[warp * p.epb + e % p.epb];
        }
        __syncwarp();
        route_token(p, lg, t0 + warp, lane);
    }
    cluster.sync();  // every CTA's logits stay in shared memory until CTA 0 has read them
}

// The wide router (MoeOptions::router_wide; decode: up to kWideMaxTokens tokens, float4-aligned rows): one router
// row per warp over ceil(n_total / kWideWarps) CTAs per token (65 for 256 experts + the shared gate), so the rows'
// loads come from that many SMs at once instead of a cluster's 8-16. Each warp loads the first 2048 columns of its
// row into registers before pdl_wait (weights are never written by a kernel), so under PDL the row streams in while
// the previous kernel finishes. x and the norm weight of the token are staged in shared memory (the norm weight
// before pdl_wait too); the logits go to the executor's router scratch, and the CTA that arrives last (a counter per
// token, reset by that CTA, so graph replays start from 0) reads them back into registers and routes the token
// (route_token_regs up to 512 experts). Dots in the order of the cluster kernel's (lane,
// lane + 32, ...; the same xor reduction): without the fused norm both give the same logits for a row; with it the
// norm's sum of squares is added in another order, so the logits (and near ties) may differ in the last bits.
constexpr int kWideWarps = 4;
constexpr int kWideChunk = 16;  // float4 loads in flight per lane: 32 lanes x 16 x 4 = 2048 columns per pass
constexpr int kWideLgStride = kMaxExperts + 1;

__global__ void __launch_bounds__(kWideWarps * 32) router_wide_kernel(RouterParams p, float* lg_g, unsigned* count) {
    extern __shared__ float4 smem4[];
    const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;
    const int64_t t = blockIdx.y;
    const int n_total = p.n_expert + (p.sgw ? 1 : 0);
    const int e = int(blockIdx.x) * kWideWarps + warp;
    const bool has_row = e < n_total;
    const float4* w4 =
        reinterpret_cast<const float4*>(has_row ? (e < p.n_expert ? p.w + int64_t(e) * p.n_embd : p.sgw) : p.w);
    const int64_t n_c = p.n_embd / 4;
    float4 wv[kWideChunk];
#pragma unroll
    for (int u = 0; u < kWideChunk; ++u) {
        const int64_t c = lane + 32 * u;
        wv[u] = has_row && c < n_c ? __ldg(w4 + c) : make_float4(0.f, 0.f, 0.f, 0.f);
    }
    pdl_launch_dependents();
    float4* xs4 = smem4;                            // x of token t, [n_c]
    float4* ns4 = smem4 + n_c;                      // the norm weight, [n_c] (when p.norm_w)
    float* red = reinterpret_cast<float*>(smem4 + (p.norm_w ? 2 : 1) * n_c);  // [kWideWarps] partial sums
    float* lg = red + kWideWarps;                   // the last CTA's logits, [n_total] (more than 512 experts)
    __shared__ float inv_s;
    __shared__ int last_s;
    const float4* x4 = reinterpret_cast<const float4*>(p.x + t * p.xs);
    const float4* nw4 = reinterpret_cast<const float4*>(p.norm_w);
    if (nw4)  // the norm weight (never written by a kernel) is staged before the wait too
        for (int64_t c = threadIdx.x; c < n_c; c += blockDim.x) ns4[c] = __ldg(nw4 + c);
    pdl_wait();
    float ss = 0.f;
    for (int64_t c = threadIdx.x; c < n_c; c += blockDim.x) {
        const float4 v = x4[c];
        xs4[c] = v;
        if (nw4) ss += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
    }
    if (p.norm_w) {
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
        if (lane == 0) red[warp] = ss;
    }
    __syncthreads();
    if (p.norm_w) {
        if (threadIdx.x == 0) {
            float tot = 0.f;
            for (int i = 0; i < kWideWarps; ++i) tot += red[i];
            inv_s = 1.f / sqrtf(tot / float(p.n_embd) + p.eps);
        }
        __syncthreads();
        const float inv = inv_s;
        const float* xs = reinterpret_cast<const float*>(xs4);
        const float* ns = reinterpret_cast<const float*>(ns4);
        const int64_t per = (p.n_embd + gridDim.x - 1) / gridDim.x, c0 = int64_t(blockIdx.x) * per;
        const int64_t c1 = c0 + per < p.n_embd ? c0 + per : p.n_embd;
        for (int64_t c = c0 + threadIdx.x; c < c1; c += blockDim.x) p.xn[t * p.n_embd + c] = xs[c] * inv * ns[c];
    }
    if (has_row) {
        float acc = 0.f;
        for (int64_t base = 0; base < n_c; base += 32 * kWideChunk) {
            if (base > 0)
#pragma unroll
                for (int u = 0; u < kWideChunk; ++u) {
                    const int64_t c = base + lane + 32 * u;
                    wv[u] = c < n_c ? __ldg(w4 + c) : make_float4(0.f, 0.f, 0.f, 0.f);
                }
#pragma unroll
            for (int u = 0; u < kWideChunk; ++u) {
                const int64_t c = base + lane + 32 * u;
                if (c >= n_c) break;
                float4 w = wv[u];
                if (nw4) {
                    const float4 nv = ns4[c];
                    w.x *= nv.x, w.y *= nv.y, w.z *= nv.z, w.w *= nv.w;
                }
                const float4 x = xs4[c];
                acc += w.x * x.x + w.y * x.y + w.z * x.z + w.w * x.w;
            }
        }
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
        if (lane == 0) {
            lg_g[t * kWideLgStride + e] = p.norm_w ? acc * inv_s : acc;
            __threadfence();  // the logit is visible device-wide before this CTA counts itself in
        }
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        __threadfence();
        last_s = atomicAdd(count + t, 1u) == gridDim.x - 1;
    }
    __syncthreads();
    if (!last_s || warp != 0) return;
    __threadfence();  // the other CTAs' logits, seen after their counts
    if (lane == 0) count[t] = 0;  // every CTA of this token has counted: the next launch starts from 0
    const float* lt = lg_g + t * kWideLgStride;
    route_token_any(p, [lt](int e) { return __ldcg(lt + e); }, lg, t, lane);
}

size_t router_wide_smem(int64_t n_embd, bool norm, int n_total) {
    return size_t(norm ? 2 : 1) * size_t(n_embd) * sizeof(float) + size_t(kWideWarps + n_total) * sizeof(float);
}

// Shared memory of a tile: own logits, gathered logits, norm scales.
size_t router_smem(int tt, int epb, int n_total) { return size_t(tt) * size_t(epb + n_total + 1) * sizeof(float); }

// Whether the kernel runs in clusters of 16 CTAs on `device` (the current one): the non-portable size allowed (the
// attribute is set per device), and the occupancy calculator places at least one such cluster (at the largest
// shared memory a call can ask for). Probed once per device and kernel; a probe's own error is consumed.
template <int TT, bool VEC, int W>
bool cluster16_ok(int device) {
    static std::mutex mu;
    static std::map<int, bool> known;
    std::lock_guard<std::mutex> lock(mu);
    if (auto it = known.find(device); it != known.end()) return it->second;
    const bool ok = [] {
        const auto k = router_kernel<TT, VEC, W>;
        if (cudaFuncSetAttribute(k, cudaFuncAttributeNonPortableClusterSizeAllowed, 1) != cudaSuccess) {
            (void)cudaGetLastError();
            return false;
        }
        cudaLaunchConfig_t cfg{};
        cfg.gridDim = dim3(16, 1, 1);
        cfg.blockDim = dim3(W * 32, 1, 1);
        cfg.dynamicSmemBytes = router_smem(TT, (kMaxExperts + 1 + 15) / 16, kMaxExperts + 1);
        cudaLaunchAttribute attr{};
        attr.id = cudaLaunchAttributeClusterDimension;
        attr.val.clusterDim.x = 16;
        attr.val.clusterDim.y = 1;
        attr.val.clusterDim.z = 1;
        cfg.attrs = &attr;
        cfg.numAttrs = 1;
        int n = 0;
        if (cudaOccupancyMaxActiveClusters(&n, k, &cfg) != cudaSuccess) {
            (void)cudaGetLastError();
            return false;
        }
        return n > 0;
    }();
    known[device] = ok;
    return ok;
}

template <int TT, bool VEC, int W>
int cluster_in_use(int want, int device) {
    return want == 16 && cluster16_ok<TT, VEC, W>(device) ? 16 : kRouterCluster;
}

template <int TT, bool VEC, int W>
void launch_router(RouterParams p, int cluster, const CudaHandles& h) {
    cluster = cluster_in_use<TT, VEC, W>(cluster, h.device);
    const int n_total = p.n_expert + (p.sgw ? 1 : 0);
    p.epb = (n_total + cluster - 1) / cluster;
    imp::cuda::LaunchConfig c = imp::cuda::launch_config(h);
    c.grid = dim3(unsigned(cluster), unsigned((p.n_tokens + TT - 1) / TT), 1);
    c.block = dim3(W * 32, 1, 1);
    c.cluster = dim3(unsigned(cluster), 1, 1);
    c.smem = router_smem(TT, p.epb, n_total);
    IMP_CUDA_CHECK(imp::cuda::launch(c, router_kernel<TT, VEC, W>, p));
}

constexpr int kWideMaxTokens = 8;
constexpr size_t kWideCountOffset = size_t(kWideMaxTokens) * kWideLgStride * sizeof(float);
static_assert(kWideCountOffset + kWideMaxTokens * sizeof(unsigned) <= CudaExecutor::kRouterScratchBytes,
              "the wide router's logits and counters fit the executor's router scratch");

// Whether a call of n_tokens rows of n_embd (float4-aligned: `vec`) runs the wide router on an executor that asks
// for it: few enough tokens for the scratch, x and the norm weight fit the default 48 KiB of shared memory.
bool wide_fits(int64_t n_tokens, int64_t n_embd, bool vec, int n_total) {
    return vec && n_tokens <= kWideMaxTokens && router_wide_smem(n_embd, true, n_total) + 64 <= 48 * 1024;  // + static
}

void launch_router_wide(const RouterParams& p, void* scratch, const CudaHandles& h) {
    const int n_total = p.n_expert + (p.sgw ? 1 : 0);
    imp::cuda::LaunchConfig c = imp::cuda::launch_config(h);
    c.grid = dim3(unsigned((n_total + kWideWarps - 1) / kWideWarps), unsigned(p.n_tokens), 1);
    c.block = dim3(kWideWarps * 32, 1, 1);
    c.smem = router_wide_smem(p.n_embd, p.norm_w != nullptr, n_total);
    auto* base = static_cast<char*>(scratch);
    IMP_CUDA_CHECK(imp::cuda::launch(c, router_wide_kernel, p, reinterpret_cast<float*>(base),
                                     reinterpret_cast<unsigned*>(base + kWideCountOffset)));
}

template <int TT, bool VEC>
void launch_router(const RouterParams& p, const MoeOptions& o, const CudaHandles& h) {
    if (o.router_warps == 16) launch_router<TT, VEC, 16>(p, o.router_cluster, h);
    else launch_router<TT, VEC, 8>(p, o.router_cluster, h);
}

__global__ void row_scale_kernel(float* x, int64_t stride, const float* s, int64_t n_rows, int64_t n) {
    pdl_launch_dependents();
    pdl_wait();
    const int64_t total = n_rows * n;
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
        const int64_t r = i / n, c = i - r * n;
        x[r * stride + c] *= s[r];
    }
}

const CudaHandles& handles(const Executor& ex, const char* op) {
    const CudaHandles* h = ex.kind() == DeviceKind::CUDA ? ex.cuda() : nullptr;
    if (!h) throw Error(std::string(op) + ": executor '" + ex.name() + "' gives no CUDA handles");
    if (h->cc < 90)
        throw Error(std::string(op) + ": the CUDA kernel needs compute capability 9.0 (clusters), device has " +
                    std::to_string(h->cc / 10) + "." + std::to_string(h->cc % 10));
    return *h;
}

bool al16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

// The executor's router shape, and the wide router's scratch when it asks for the wide router (another CUDA
// executor, e.g. a plugin's test double: the defaults, no scratch).
struct RouterSetup {
    MoeOptions o;
    void* wide_scratch = nullptr;
};
RouterSetup router_setup(Executor& ex) {
    auto* ce = dynamic_cast<CudaExecutor*>(&ex);
    if (!ce) return {};
    return {ce->moe_options(), ce->moe_options().router_wide ? ce->router_scratch() : nullptr};
}

}  // namespace

void router(Executor& ex, const MoeRouter::Args& a) {
    moe_detail::check_router_args(a);
    const CudaHandles& h = handles(ex, MoeRouter::name);
    if (a.n_tokens == 0) return;
    if (a.n_expert > kMaxExperts)
        throw Error(std::string(MoeRouter::name) + ": " + std::to_string(a.n_expert) +
                    " experts; the CUDA kernel takes at most " + std::to_string(kMaxExperts));
    RouterParams p{a.x, a.x_stride, a.w, a.shared_gate_w, a.n_tokens, a.n_embd, a.n_expert, a.top_k, 0,
                   a.norm_topk ? 1 : 0, a.scale, a.ids, a.weights, a.shared_gate, a.norm_w, a.eps, a.xn};
    const bool vec = a.n_embd % 4 == 0 && a.x_stride % 4 == 0 && al16(a.x) && al16(a.w) &&
                     (!a.shared_gate_w || al16(a.shared_gate_w)) && (!a.norm_w || al16(a.norm_w));
    const auto [o, scratch] = router_setup(ex);
    if (scratch && wide_fits(a.n_tokens, a.n_embd, vec, a.n_expert + (a.shared_gate_w ? 1 : 0))) {
        launch_router_wide(p, scratch, h);
        return;
    }
    if (a.n_tokens <= 4) vec ? launch_router<1, true>(p, o, h) : launch_router<1, false>(p, o, h);
    else vec ? launch_router<8, true>(p, o, h) : launch_router<8, false>(p, o, h);
}

int router_cluster_in_use(Executor& ex, int64_t n_tokens) {
    const CudaHandles& h = handles(ex, MoeRouter::name);
    const MoeOptions o = router_setup(ex).o;
    const bool w16 = o.router_warps == 16;
    if (n_tokens <= 4)
        return w16 ? cluster_in_use<1, true, 16>(o.router_cluster, h.device)
                   : cluster_in_use<1, true, 8>(o.router_cluster, h.device);
    return w16 ? cluster_in_use<8, true, 16>(o.router_cluster, h.device)
               : cluster_in_use<8, true, 8>(o.router_cluster, h.device);
}

bool router_wide_in_use(Executor& ex, int64_t n_tokens, int64_t n_embd, int n_expert, bool shared_gate) {
    (void)handles(ex, MoeRouter::name);
    return router_setup(ex).wide_scratch && n_expert <= kMaxExperts &&
           wide_fits(n_tokens, n_embd, n_embd % 4 == 0, n_expert + (shared_gate ? 1 : 0));
}

void row_scale(Executor& ex, const RowScale::Args& a) {
    const CudaHandles& h = handles(ex, RowScale::name);
    if (a.n_rows < 0 || a.n < 0 || a.stride < a.n)
        throw Error(std::string(RowScale::name) + ": " + std::to_string(a.n_rows) + " rows of " +
                    std::to_string(a.n) + " do not fit a row stride of " + std::to_string(a.stride));
    if (a.n_rows == 0 || a.n == 0) return;
    imp::cuda::LaunchConfig c = imp::cuda::launch_config(h);
    const int64_t total = a.n_rows * a.n, blocks = (total + 255) / 256;
    c.grid = dim3(unsigned(blocks < 2048 ? blocks : 2048), 1, 1);
    c.block = dim3(256, 1, 1);
    IMP_CUDA_CHECK(imp::cuda::launch(c, row_scale_kernel, a.x, a.stride, a.s, a.n_rows, a.n));
}

}  // namespace imp::blocks::moe_cuda
