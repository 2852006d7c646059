// quant_ggml CUDA: the GEMV of the tiled block types over stacked experts. Same frame, loads, math, plan and
// reductions as the dense decode GEMV (gemv_tiled.cuh: TiledGemv, the staged B fragments, dp4a_stage / dp4a_tile,
// tiled_plan, the cluster reduction), with a third grid dimension of work items (ExpertsRoute): one (token, slot)
// pair, or a group of pairs routed to the same expert. After griddepcontrol.wait each CTA reads its item from device
// memory (the expert id, or the group built by experts_group_kernel), looks up its tokens' activation rows and
// output rows through the pair indices, and runs the dense machinery on that expert's rows (expert e's row group rg
// at w + e * expert_bytes + rg * rg_bytes). An item whose expert is out of range writes zeros (when asked) or nothing.
// With route.glu the activation rows are [gate | up] and the staging computes silu(gate) * up (ExpertMatmul::x_swiglu).
// With ExpertsSum counters (per-pair items) the last CTA of a token's slots writes their weighted sum.
// Each output is written once by one CTA: deterministic, no atomics.
#pragma once
#include <algorithm>

#include "experts_kernels.h"
#include "gemv_tiled.cuh"

namespace imp::ggml::cuda {

// The CTA's work item (blockIdx.z): returns {expert, pairs}; threads t < pairs (<= TP) store token t's activation
// row and output row. Call after pdl_wait(), then __syncthreads() before reading xrow / orow. Uniform per CTA.
template <int TP>
__device__ __forceinline__ int2 resolve_item(const ExpertsRoute& r, const float** xrow, float** orow) {
    const int item = r.item0 + int(blockIdx.z);
    int e, first, n;
    if (r.groups) {
        if (item >= *r.n_groups) return make_int2(-1, 0);
        const int32_t* g = r.groups + 3 * int64_t(item);
        e = g[0];
        first = g[1];
        n = min(g[2], TP);
    } else {
        e = r.ids[item];
        first = item;
        n = 1;
    }
    const int t = int(threadIdx.x);
    if (t < n) {
        const int p = r.groups ? r.order[first + t] : first;
        xrow[t] = r.x + int64_t(r.x_per_slot ? p : p / r.top_k) * r.xs;
        orow[t] = r.out + int64_t(p) * r.os;
    }
    return make_int2(e, n);
}

__device__ __forceinline__ float4 load_x4(const float* p, int vec) {
    return vec ? __ldg(reinterpret_cast<const float4*>(p)) : make_float4(__ldg(p), __ldg(p + 1), __ldg(p + 2), __ldg(p + 3));
}
// silu(g) * u per lane, silu(g) = g / (1 + exp(-g)) (as the executor's SwiGLU kernel).
__device__ __forceinline__ float silu_mul(float g, float u) { return g / (1.f + expf(-g)) * u; }
__device__ __forceinline__ float4 silu_mul4(float4 g, float4 u) {
    return make_float4(silu_mul(g.x, u.x), silu_mul(g.y, u.y), silu_mul(g.z, u.z), silu_mul(g.w, u.w));
}

// The fused weighted sum (ExpertsSum): this CTA has written rows [row0, row0 + nr) of its pair's output row (or
// nothing: an id out of range); count it, and the last CTA of the token's pairs for these rows sums them. Called by
// every thread of the CTA (per-pair items: blockIdx.z is the pair).
__device__ __forceinline__ void experts_sum_arrive(const ExpertsRoute& r, const ExpertsSum& s, int row0, int nr) {
    __shared__ int last;
    const int p = r.item0 + int(blockIdx.z), t = p / r.top_k;
    __threadfence();  // this CTA's output rows are visible device-wide before it is counted
    __syncthreads();
    if (threadIdx.x == 0) {
        int* c = s.counters + int64_t(t) * gridDim.x + blockIdx.x;
        last = atomicAdd(c, 1) == r.top_k - 1;
        if (last) atomicExch(c, 0);  // every slot has arrived: zero for the next call or graph replay
    }
    __syncthreads();
    if (!last) return;
    __threadfence();
    for (int i = int(threadIdx.x); i < nr; i += int(blockDim.x)) {
        const int row = row0 + i;
        float v = 0.f;
        for (int j = 0; j < r.top_k; ++j) {
            const int64_t q = int64_t(t) * r.top_k + j;
            const int e = r.ids[q];
            if (e >= 0 && e < r.n_expert) v = fmaf(s.weights[q], __ldcg(r.out + q * r.os + row), v);
        }
        float* yp = s.y + int64_t(t) * s.ys + row;
        *yp = s.accumulate ? *yp + v : v;
    }
}

struct ExpertsTiledArgs {
    const uint8_t* w;
    int64_t expert_bytes, rg_bytes;
    int chunks, rows, cols;
    ExpertsRoute route;
    int x_vec, accumulate, zero_invalid;
    ExpertsSum sum;
};

// Grid (CTA rows of one expert, splits, work items); a cluster of (1, splits, 1) when splits > 1 (the CTAs of a
// cluster share their work item). TP: tokens per work item (1: per pair; kExpertGroupTokens: grouped).
template <class L, int TP, int MINB, bool DP = false>
__global__ void __launch_bounds__(kGemvWarps * 32, MINB) experts_tiled_kernel(ExpertsTiledArgs a, int kw_count) {
    static_assert(!DP || (TP == 1 && kDp4aLayout<L>), "dp4a GEMV: one token, Q4_K or Q6_K");
    constexpr int J = (TP + 3) / 4;
    constexpr int kOut = 2 * J * 32;
    extern __shared__ uint2 smem_b[];
    __shared__ float red[kGemvWarps * kOut];
    __shared__ float part[kGemvWarps * kOut];
    __shared__ const float* xrow[TP];
    __shared__ float* orow[TP];
    const int splits = gridDim.y, split = blockIdx.y;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int rgc = kGemvWarps / kw_count;
    const int rg = blockIdx.x * rgc + warp / kw_count;
    const int n_rg = (a.rows + kTileRows - 1) / kTileRows;
    ::imp::cuda::pdl_wait();  // ids, groups and x come from earlier kernels; which weights to read depends on them
    const int2 item = resolve_item<TP>(a.route, xrow, orow);
    const int n_tok = item.y;
    if (n_tok == 0) return;  // the whole CTA (and its cluster: same item)
    __syncthreads();
    if (item.x < 0 || item.x >= a.route.n_expert) {
        const int row0 = blockIdx.x * rgc * kTileRows, nr = min(rgc * kTileRows, a.rows - row0);
        if (a.zero_invalid && split == 0)
            for (int i = threadIdx.x; i < n_tok * nr; i += blockDim.x) orow[i / nr][row0 + i % nr] = 0.f;
        if (a.sum.counters && split == 0) experts_sum_arrive(a.route, a.sum, row0, max(nr, 0));
        return;
    }
    TiledGemv<L, TP> g;
    g.lane = lane;
    g.kw_count = kw_count;
    g.c_begin = int(int64_t(a.chunks) * split / splits);
    g.c_end = rg < n_rg ? int(int64_t(a.chunks) * (split + 1) / splits) : g.c_begin;  // no rows: no chunks
    g.wr = a.w + int64_t(item.x) * a.expert_bytes + int64_t(rg < n_rg ? rg : 0) * a.rg_bytes;
    g.sb = smem_b;
#pragma unroll
    for (int j = 0; j < J; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) g.acc[j][e] = 0.f;

    const int kStep = kw_count * L::kUnroll;
    typename L::Frag fa[L::kUnroll], fb[L::kUnroll];
    const int first = g.c_begin + warp % kw_count;
    g.load(fa, first);  // in flight while x is staged

    const int c_all = int(int64_t(a.chunks) * (split + 1) / splits) - g.c_begin;
    [[maybe_unused]] const Dp4aSmem dsm = dp4a_smem(smem_b, c_all * L::kSteps);
    [[maybe_unused]] float ydp[2] = {0.f, 0.f};
    if constexpr (DP) {
        if (a.route.glu)
            dp4a_stage<true>(xrow[0], a.cols, a.x_vec, g.c_begin * L::kChunkCols, c_all * L::kSteps, dsm);
        else
            dp4a_stage(xrow[0], a.cols, a.x_vec, g.c_begin * L::kChunkCols, c_all * L::kSteps, dsm);
        __syncthreads();
    } else {
        // As gemv_tiled_kernel: pair (k-step, token, c) -> hi item 8 t + c and lo item 8 t + 4 + c.
        constexpr int kBatch = 8;
        const int n_pairs = c_all * L::kSteps * 4 * TP;
        for (int p0 = threadIdx.x; p0 < n_pairs; p0 += kBatch * blockDim.x) {
            float4 v[kBatch];
#pragma unroll
            for (int b = 0; b < kBatch; ++b) {
                const int p = p0 + b * blockDim.x;
                const int cc = p & 3, t = (p >> 2) % TP, ks = (p >> 2) / TP;
                const int col = g.c_begin * L::kChunkCols + 16 * ks + 4 * cc;
                v[b] = make_float4(0.f, 0.f, 0.f, 0.f);
                if (p < n_pairs && col < a.cols && t < n_tok) {
                    const float* xp = xrow[t] + col;
                    v[b] = load_x4(xp, a.x_vec);
                    if (a.route.glu) v[b] = silu_mul4(v[b], load_x4(xp + a.cols, a.x_vec));  // [gate | up]
                }
            }
#pragma unroll
            for (int b = 0; b < kBatch; ++b) {
                const int p = p0 + b * blockDim.x;
                if (p >= n_pairs) break;
                const int cc = p & 3, t = (p >> 2) % TP, ks = (p >> 2) / TP;
                uint2* d = smem_b + ks * b_stride<TP>() + 8 * t + cc;
                d[0] = make_uint2(split_pair(v[b].x, v[b].y, 0.f), split_pair(v[b].z, v[b].w, 0.f));
                d[4] = make_uint2(split_pair(v[b].x, v[b].y, -1.f), split_pair(v[b].z, v[b].w, -1.f));
            }
        }
        __syncthreads();
    }

    if constexpr (DP) {
        const auto tiles = [&](const typename L::Frag (&f)[L::kUnroll], int ch0) {
#pragma unroll
            for (int u = 0; u < L::kUnroll; ++u) {
                const int ch = ch0 + u * kw_count;
                if (ch < g.c_end) dp4a_tile(f[u], dsm, ch - g.c_begin, lane, ydp);
            }
        };
        for (int ch0 = first; ch0 < g.c_end; ch0 += 2 * kStep) {
            g.load(fb, ch0 + kStep);
            tiles(fa, ch0);
            g.load(fa, ch0 + 2 * kStep);
            tiles(fb, ch0 + kStep);
        }
    } else {
        for (int ch0 = first; ch0 < g.c_end; ch0 += 2 * kStep) {
            g.load(fb, ch0 + kStep);
            g.compute(fa, ch0);
            g.load(fa, ch0 + 2 * kStep);
            g.compute(fb, ch0 + kStep);
        }
    }

    ::imp::cuda::pdl_launch_dependents();
    if constexpr (DP) {
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            ydp[r] += __shfl_xor_sync(0xFFFFFFFFu, ydp[r], 1);
            ydp[r] += __shfl_xor_sync(0xFFFFFFFFu, ydp[r], 2);
        }
        red[warp * kOut + lane] = ydp[0];
        red[warp * kOut + 32 + lane] = ydp[1];
    } else {
#pragma unroll
        for (int j = 0; j < J; ++j) {
            red[warp * kOut + (2 * j) * 32 + lane] = g.acc[j][0] + g.acc[j][1];
            red[warp * kOut + (2 * j + 1) * 32 + lane] = g.acc[j][2] + g.acc[j][3];
        }
    }
    __syncthreads();
    const int n_out = rgc * kOut;
    for (int i = threadIdx.x; i < n_out; i += blockDim.x) {
        const int rgl = i / kOut, rem = i % kOut;
        float v = 0.f;
        for (int k = 0; k < kw_count; ++k) v += red[(rgl * kw_count + k) * kOut + rem];
        part[i] = v;
    }
    if (splits > 1) {
        cooperative_groups::cluster_group cl = cooperative_groups::this_cluster();
        cl.sync();
        if (split == 0) {
            for (int i = threadIdx.x; i < n_out; i += blockDim.x) {
                float v = part[i];
                for (int r = 1; r < splits; ++r) v += cl.map_shared_rank(part, r)[i];
                part[i] = v;
            }
        }
        cl.sync();
        if (split != 0) return;
    } else {
        __syncthreads();
    }
    for (int i = threadIdx.x; i < n_out; i += blockDim.x) {
        const int rgl = i / kOut, q = (i % kOut) >> 5, ln = i & 31;
        const int p = q & 1, j = q >> 1;
        const int row = (blockIdx.x * rgc + rgl) * kTileRows + (ln >> 2) + 8 * p;
        const int t = 4 * j + (ln & 3);
        if (row < a.rows && t < n_tok) {
            float* yp = orow[t] + row;
            *yp = a.accumulate ? *yp + part[i] : part[i];
        }
    }
    if (a.sum.counters) {
        const int row0 = blockIdx.x * rgc * kTileRows;
        experts_sum_arrive(a.route, a.sum, row0, max(min(rgc * kTileRows, a.rows - row0), 0));
    }
}

// The plan of one launch: the dense plan (tiled_plan) of a weight with the row groups of all work items expected
// to do work, so the CTAs of all experts together fill the GPU.
template <class L, int TP>
TiledPlan experts_plan(const DeviceLayout& l, const ExpertsArgs& ea, int sm_count, int cc) {
    DeviceLayout v = l;
    v.n_rg = l.n_rg * std::max(1, ea.plan_items);
    return tiled_plan<L, TP>(v, sm_count, cc, ea.splits, ea.kw, ea.dp4a);
}

template <class L, int TP>
bool launch_experts_tp(const DeviceLayout& l, const ExpertsArgs& ea, int sm_count, int cc, cudaStream_t st) {
    const TiledPlan plan = experts_plan<L, TP>(l, ea, sm_count, cc);
    if (plan.splits < 0) return false;
    const auto& r = ea.route;
    ExpertsTiledArgs a{static_cast<const uint8_t*>(ea.w),
                       int64_t(ea.expert_bytes),
                       l.rg_bytes,
                       int(l.chunks),
                       int(l.rows),
                       int(l.cols),
                       r,
                       (reinterpret_cast<uintptr_t>(r.x) % 16 == 0) && (r.xs % 4 == 0) && (!r.glu || l.cols % 4 == 0),
                       ea.accumulate,
                       ea.zero_invalid,
                       ea.sum};
    const int rgc = kGemvWarps / plan.kw;
    cudaLaunchConfig_t cfg{};
    cfg.blockDim = dim3(kGemvWarps * 32, 1, 1);
    cfg.dynamicSmemBytes = tiled_smem<L, TP>((l.chunks + plan.splits - 1) / plan.splits);
    cfg.stream = st;
    cudaLaunchAttribute attr[2];
    unsigned n_attr = 0;
    if (ea.pdl) {
        attr[n_attr].id = cudaLaunchAttributeProgrammaticStreamSerialization;
        attr[n_attr++].val.programmaticStreamSerializationAllowed = 1;
    }
    if (plan.splits > 1) {
        attr[n_attr].id = cudaLaunchAttributeClusterDimension;
        attr[n_attr].val.clusterDim.x = 1;
        attr[n_attr].val.clusterDim.y = unsigned(plan.splits);
        attr[n_attr++].val.clusterDim.z = 1;
    }
    cfg.attrs = attr;
    cfg.numAttrs = n_attr;
    constexpr int kMaxZ = 65535;
    for (int item0 = 0; item0 < ea.n_items; item0 += kMaxZ) {
        a.route.item0 = item0;
        cfg.gridDim = dim3(unsigned((l.n_rg + rgc - 1) / rgc), unsigned(plan.splits),
                           unsigned(std::min(kMaxZ, ea.n_items - item0)));
        if constexpr (TP == 1 && kDp4aLayout<L>) {
            if (ea.dp4a) {
                IMP_CUDA_CHECK(cudaLaunchKernelEx(&cfg, experts_tiled_kernel<L, 1, tiled_minb<L, 1>(), true>, a, plan.kw));
                continue;
            }
        }
        IMP_CUDA_CHECK(cudaLaunchKernelEx(&cfg, experts_tiled_kernel<L, TP, tiled_minb<L, TP>()>, a, plan.kw));
    }
    return true;
}

// Per pair (route.groups null): one token per work item; grouped: kExpertGroupTokens.
template <class L>
void launch_experts_tiled(const DeviceLayout& l, const ExpertsArgs& a, int sm_count, int cc, cudaStream_t st) {
    const bool ok = a.route.groups ? launch_experts_tp<L, kExpertGroupTokens>(l, a, sm_count, cc, st)
                                   : launch_experts_tp<L, 1>(l, a, sm_count, cc, st);
    if (!ok)
        throw Error("quant_ggml: experts GEMV: a row of " + std::to_string(l.cols) + " columns is too wide");
}

template <class L>
bool experts_tiled_fits(const DeviceLayout& l, int sm_count, int cc) {
    return tiled_plan<L, kExpertGroupTokens>(l, sm_count, cc, 0, 0, false).splits >= 0;
}

// Raises the dynamic shared memory limit of the expert kernels of layout L (once per process, at load time).
template <class L>
void prepare_experts_tiled() {
    const int bytes = kGemvSmemB + int(b_pad_bytes<8>());
    const auto raise = [bytes](auto kernel) {
        IMP_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
    };
    raise(experts_tiled_kernel<L, 1, tiled_minb<L, 1>()>);
    if constexpr (kDp4aLayout<L>) raise(experts_tiled_kernel<L, 1, tiled_minb<L, 1>(), true>);
    raise(experts_tiled_kernel<L, kExpertGroupTokens, tiled_minb<L, kExpertGroupTokens>()>);
}

}  // namespace imp::ggml::cuda
