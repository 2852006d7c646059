// Decode attention (one row per sequence: row s is sequence s) for BF16 / F16 KV caches with head_dim 64, 128 or
// 256, in one kernel (no combine pass).
//
// A cluster of kDecCluster CTAs of NW warps (4 or 8) takes one row t (blockIdx.z), one KV head g and all `group`
// query heads that share it (GQA), so every K/V row is read once. The row's positions [0, pos] (pos =
// token_pos[t], read from device memory at run time, found through block table row t) are cut into kDecCluster *
// NW contiguous ranges of equal length, one per warp of the cluster, so the work spreads over every warp at any
// length while the grid (kDecCluster x n_kv_head x n_tokens) does not depend on it: the launch can be captured in
// a CUDA graph and replayed at any positions. A warp walks its range in tiles of 128 / NW keys, double
// buffered: cp.async copies the tile's K and V rows (16-byte pieces, paged through the block table) into the
// warp's own shared memory while the previous tile is computed (head_dim 256: tiles of 64 / NW keys, half as
// many, so the stages fit). Per tile: (1) scores, one lane (NW = 4 at hd <= 128), two (NW = 8, or NW = 4 at hd
// 256) or four lanes (NW = 8 at hd 256) per key, each a share of the dims, the key's K row against the group's q
// (fp32, pre-scaled by scale * log2 e, in shared memory, read as broadcasts); (2) an online softmax per head (warp
// max, exp2), probabilities to shared memory; (3) O = O * alpha + P V with one lane per hd / 32 output dimensions.
// At the end
// each warp holds (max, sum, unnormalized O) per head; the CTA merges its warps in warp order into shared memory,
// and after a cluster barrier CTA r merges the CTAs' partials (rank order, through distributed shared memory) for
// its 1/kDecCluster of the group's outputs. Fixed orders everywhere: the same inputs give the same bits (for a
// given NW). Scores and softmax are fp32, as in attention_kernel.cuh. Shared memory: about 150 KB (hd 128, group
// 8), one CTA per SM.
#pragma once
#include <cooperative_groups.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>

#include "exec/cuda/attention_decode.h"  // kDecCluster
#include "exec/cuda/attention_kernel.cuh"
#include "exec/cuda/common.cuh"
#include "exec/cuda/kv_types.cuh"
#include "exec/cuda/launch.cuh"

namespace imp::cuda_kernels {

constexpr int kDecMaxGroup = 8;
// Warps per CTA: 4 (tiles of 32 keys, one lane per key in the score phase) or 8 (tiles of 16 keys, two lanes per
// key); either way 128 keys per CTA step and the same shared memory. Head dim 256: 64 keys per CTA step (tiles of 16
// or 8 keys, two or four lanes per key), the same shared memory as 128 keys of head dim 128.
template <int HD, int NW> __host__ __device__ constexpr int dec_tile_keys() { return (HD == 256 ? 64 : 128) / NW; }

// Shared-memory row of one key: hd 16-bit elements plus 16 bytes of padding (16-byte reads of one chunk by 32 lanes
// on 32 rows, and of one row by 32 lanes, are free of bank conflicts).
template <int HD> __host__ __device__ constexpr int dec_row_bytes() { return HD * 2 + 16; }
template <int HD, int NW> __host__ __device__ constexpr int dec_tile_bytes() {
    return dec_tile_keys<HD, NW>() * dec_row_bytes<HD>();
}

// q [GP][HD] f32 | per warp: 2 stages x (K, V) tiles | probabilities [warps][tile keys][GP] | CTA partial
// O [GP][HD], max, sum [GP]. A warp's tile buffers hold its final partial after the loop.
template <int HD, int GP, int NW> __host__ __device__ constexpr size_t attn_decode_smem_bytes() {
    return sizeof(float) * GP * HD + size_t(NW) * 4 * dec_tile_bytes<HD, NW>() +
           sizeof(float) * NW * dec_tile_keys<HD, NW>() * GP + sizeof(float) * (GP * HD + 2 * GP);
}

template <typename T> struct DecCvt;
template <> struct DecCvt<__nv_bfloat16> {
    __device__ static void two(uint32_t u, float& lo, float& hi) {
        lo = __uint_as_float(u << 16);
        hi = __uint_as_float(u & 0xffff0000u);
    }
};
template <> struct DecCvt<__half> {
    __device__ static void two(uint32_t u, float& lo, float& hi) {
        __half2 h;
        static_assert(sizeof(h) == 4, "half2");
        memcpy(&h, &u, 4);
        const float2 f = __half22float2(h);
        lo = f.x;
        hi = f.y;
    }
};

__device__ __forceinline__ void dec_cp16(void* smem, const void* gmem) {
    const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(s), "l"(gmem) : "memory");
}
__device__ __forceinline__ void dec_cp_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
template <int N> __device__ __forceinline__ void dec_cp_wait() {
    asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory");
}

// a.hd == HD, a.group <= GP, a.decode, K / V 16-byte aligned. Grid (kDecCluster, n_kv_head, n_tokens).
template <typename E, int HD, int GP, int NW>
__global__ void __cluster_dims__(kDecCluster, 1, 1) __launch_bounds__(NW * 32, 1)
    attn_decode_kernel(const AttnArgs a) {
    using T = typename E::T;
    using Cvt = DecCvt<T>;
    constexpr int NT = NW * 32;
    constexpr int TK = dec_tile_keys<HD, NW>();  // keys per tile
    constexpr int LPK = 32 / TK;             // lanes per key in the score phase
    constexpr int RB = dec_row_bytes<HD>();
    constexpr int TB = dec_tile_bytes<HD, NW>();
    constexpr int CPR = HD / 8;    // 16-byte chunks per row
    constexpr int KPI = 32 / CPR;  // rows per warp-wide copy instruction
    constexpr int DPL = HD / 32;   // output dims per lane
    constexpr int NWT = kDecCluster * NW;
    constexpr int EPC = GP * HD / kDecCluster;  // outputs merged per CTA
    static_assert(HD == 64 || HD == 128 || HD == 256, "head dim");
    static_assert((NW == 4 || NW == 8) && TK % KPI == 0 && (LPK == 1 || LPK == 2 || LPK == 4), "warps per CTA");
    static_assert(EPC >= 1, "final merge");
    static_assert(GP * (HD + 2) * sizeof(float) <= 4 * size_t(TB), "warp partial fits its tile buffers");
    namespace cg = cooperative_groups;
    pdl_launch_dependents();

    extern __shared__ __align__(16) unsigned char dsm[];
    float* sQ = reinterpret_cast<float*>(dsm);
    unsigned char* sKV = dsm + sizeof(float) * GP * HD;
    float* sP = reinterpret_cast<float*>(sKV + size_t(NW) * 4 * TB);
    float* sC = sP + NW * TK * GP;
    float* sCm = sC + GP * HD;
    float* sCl = sCm + GP;

    cg::cluster_group cluster = cg::this_cluster();
    const int rank = int(cluster.block_rank());
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int g = blockIdx.y;
    const int64_t t = blockIdx.z;  // row t is sequence t
    // The step's metadata (positions, block tables) is written by the host before the step's first kernel: it is
    // read before the PDL wait, and so are the K and V rows of keys before this step's position (written by earlier
    // steps; the kernel before this one writes position pos only).
    const int32_t* table = a.block_tables + t * a.max_blocks;
    const int pos = a.token_pos[t];
    const int n = pos < 0 ? 0 : int(min64(int64_t(pos) + 1, a.max_ctx));  // keys 0 .. n - 1

    // This warp's keys [kbeg, kend).
    const int per = (n + NWT - 1) / NWT;
    const int gw = rank * NW + warp;
    const int kbeg = int(min64(n, int64_t(per) * gw));
    const int kend = int(min64(n, int64_t(kbeg) + per));
    const int ntile = (kend - kbeg + TK - 1) / TK;

    const T* K = static_cast<const T*>(a.k);
    const T* V = static_cast<const T*>(a.v);
    const int64_t width = int64_t(a.n_kv_head) * HD;
    unsigned char* wbuf = sKV + size_t(warp) * 4 * TB;  // [stage][K, V][TK][RB]
    float* wp = sP + warp * TK * GP;                     // [TK][GP]

    // Copies the K and V rows of keys [t0, min(t0 + TK, kend)) into stage `st`: lane j < TK finds key t0 + j's
    // row, each copy instruction moves KPI whole rows.
    auto issue = [&](int t0, int st) {
        const int j = t0 + lane;
        long long ro = 0;
        if (lane < TK && j < kend) {
            const int blk = j / a.block_size;
            const int phys = table[blk];
            ro = (int64_t(phys) * a.block_size + (j - blk * a.block_size)) * width + int64_t(g) * HD;
        }
        unsigned char* dk = wbuf + st * 2 * TB;
        unsigned char* dv = dk + TB;
        const int ch = lane % CPR;
#pragma unroll
        for (int it = 0; it < TK / KPI; ++it) {
            const int kk = it * KPI + lane / CPR;
            const long long r = __shfl_sync(0xffffffffu, ro, kk);
            if (t0 + kk < kend) {
                dec_cp16(dk + kk * RB + ch * 16, K + r + ch * 8);
                dec_cp16(dv + kk * RB + ch * 16, V + r + ch * 8);
            }
        }
    };

    // A first tile of keys all before pos is copied before the wait, overlapping the kernel before (rope_kv_store).
    const bool early = ntile > 0 && int(min64(int64_t(kbeg) + TK, kend)) <= pos;
    if (early) issue(kbeg, 0);
    pdl_wait();
    const float* q = a.q + t * a.q_stride;
    for (int e = tid; e < GP * HD; e += NT) {
        const int h = e / HD, d = e % HD;
        sQ[e] = h < a.group ? q[int64_t(g * a.group + h) * HD + d] * a.qscale : 0.f;
    }
    __syncthreads();

    float m[GP], l[GP], o[GP][DPL];
#pragma unroll
    for (int h = 0; h < GP; ++h) {
        m[h] = -INFINITY;
        l[h] = 0.f;
#pragma unroll
        for (int i = 0; i < DPL; ++i) o[h][i] = 0.f;
    }

    if (ntile > 0 && !early) issue(kbeg, 0);
    dec_cp_commit();
    for (int t = 0; t < ntile; ++t) {
        const int t0 = kbeg + t * TK;
        if (t + 1 < ntile) issue(t0 + TK, (t + 1) & 1);
        dec_cp_commit();
        dec_cp_wait<1>();  // this lane's copies of tile t are done
        __syncwarp();      // and every lane's are visible
        const unsigned char* bk = wbuf + (t & 1) * 2 * TB;
        const unsigned char* bv = bk + TB;

        // (1) scores of key t0 + kk (pre-scaled, log2 domain); with LPK lanes per key, lane kk + p TK takes share p
        // of the dims and the shares are added (the same sum on all of them)
        const int kk0 = lane % TK, part = lane / TK;
        float s[GP];
#pragma unroll
        for (int h = 0; h < GP; ++h) s[h] = 0.f;
        const unsigned char* kr = bk + kk0 * RB;
#pragma unroll 4
        for (int c = part * (CPR / LPK); c < (part + 1) * (CPR / LPK); ++c) {
            const uint4 raw = *reinterpret_cast<const uint4*>(kr + c * 16);
            float kf[8];
            Cvt::two(raw.x, kf[0], kf[1]);
            Cvt::two(raw.y, kf[2], kf[3]);
            Cvt::two(raw.z, kf[4], kf[5]);
            Cvt::two(raw.w, kf[6], kf[7]);
#pragma unroll
            for (int h = 0; h < GP; ++h) {
                const float4 q0 = *reinterpret_cast<const float4*>(sQ + h * HD + c * 8);
                const float4 q1 = *reinterpret_cast<const float4*>(sQ + h * HD + c * 8 + 4);
                s[h] += q0.x * kf[0] + q0.y * kf[1] + q0.z * kf[2] + q0.w * kf[3] + q1.x * kf[4] + q1.y * kf[5] +
                        q1.z * kf[6] + q1.w * kf[7];
            }
        }

#pragma unroll
        for (int off = TK; off < 32; off <<= 1)
#pragma unroll
            for (int h = 0; h < GP; ++h) s[h] += __shfl_xor_sync(0xffffffffu, s[h], off);

        // (2) online softmax per head; keys past kend were not copied; lanes of parts > 0 repeat part 0's key, so
        // only part 0 stores P and adds to the sum
        const bool valid = t0 + kk0 < kend;
        float alpha[GP];
#pragma unroll
        for (int h = 0; h < GP; ++h) {
            const float sv = valid ? s[h] : -INFINITY;
            const float mn = fmaxf(m[h], warp_max(sv));  // finite: the tile holds at least one key
            alpha[h] = exp2f(m[h] - mn);
            m[h] = mn;
            const float p = valid ? exp2f(sv - mn) : 0.f;
            l[h] = l[h] * alpha[h] + (part == 0 ? p : 0.f);
            if (part == 0) wp[kk0 * GP + h] = p;
        }
        __syncwarp();

        // (3) O = O * alpha + P V over the tile's keys; lane owns dims [lane * DPL, lane * DPL + DPL)
#pragma unroll
        for (int h = 0; h < GP; ++h)
#pragma unroll
            for (int i = 0; i < DPL; ++i) o[h][i] *= alpha[h];
        const int nv = min(TK, kend - t0);
        const unsigned char* vc = bv + lane * DPL * 2;
#pragma unroll 4
        for (int kk = 0; kk < nv; ++kk) {
            float vf[DPL];
            if constexpr (DPL == 8) {
                const uint4 raw = *reinterpret_cast<const uint4*>(vc + kk * RB);
                Cvt::two(raw.x, vf[0], vf[1]);
                Cvt::two(raw.y, vf[2], vf[3]);
                Cvt::two(raw.z, vf[4], vf[5]);
                Cvt::two(raw.w, vf[6], vf[7]);
            } else if constexpr (DPL == 4) {
                const uint2 raw = *reinterpret_cast<const uint2*>(vc + kk * RB);
                Cvt::two(raw.x, vf[0], vf[1]);
                Cvt::two(raw.y, vf[2], vf[3]);
            } else {
                Cvt::two(*reinterpret_cast<const uint32_t*>(vc + kk * RB), vf[0], vf[1]);
            }
            const float* pk = wp + kk * GP;
#pragma unroll
            for (int h = 0; h < GP; ++h) {
                const float p = pk[h];
#pragma unroll
                for (int i = 0; i < DPL; ++i) o[h][i] = fmaf(p, vf[i], o[h][i]);
            }
        }
        __syncwarp();  // the stage and the probabilities are free for the next tile
    }
    dec_cp_wait<0>();
    __syncwarp();

    // This warp's partial (O [GP][HD], max [GP], sum [GP]) in its own tile buffers.
    float* pw = reinterpret_cast<float*>(wbuf);
#pragma unroll
    for (int h = 0; h < GP; ++h) {
        const float lsum = warp_sum(l[h]);
#pragma unroll
        for (int i = 0; i < DPL; ++i) pw[h * HD + lane * DPL + i] = o[h][i];
        if (lane == 0) {
            pw[GP * HD + h] = m[h];
            pw[GP * HD + GP + h] = lsum;
        }
    }
    __syncthreads();

    // CTA partial: warps merged in warp order.
    for (int e = tid; e < GP * HD; e += NT) {
        const int h = e / HD;
        float M = -INFINITY;
#pragma unroll
        for (int w = 0; w < NW; ++w)
            M = fmaxf(M, reinterpret_cast<const float*>(sKV + size_t(w) * 4 * TB)[GP * HD + h]);
        float num = 0.f, den = 0.f;
        if (M != -INFINITY) {
#pragma unroll
            for (int w = 0; w < NW; ++w) {
                const float* pv = reinterpret_cast<const float*>(sKV + size_t(w) * 4 * TB);
                const float c = exp2f(pv[GP * HD + h] - M);  // 0 for a warp without keys
                num += c * pv[e];
                den += c * pv[GP * HD + GP + h];
            }
        }
        sC[e] = num;
        if (e % HD == 0) {
            sCm[h] = M;
            sCl[h] = den;
        }
    }
    cluster.sync();

    // Output: CTA `rank` merges outputs [rank * EPC, rank * EPC + EPC) of the cluster's partials in rank order.
    for (int i = tid; i < EPC; i += NT) {
        const int e = rank * EPC + i;
        const int h = e / HD, d = e % HD;
        float mr[kDecCluster];
        float M = -INFINITY;
#pragma unroll
        for (int r = 0; r < kDecCluster; ++r) {
            mr[r] = *cluster.map_shared_rank(sCm + h, r);
            M = fmaxf(M, mr[r]);
        }
        float num = 0.f, den = 0.f;
        if (M != -INFINITY) {
#pragma unroll
            for (int r = 0; r < kDecCluster; ++r) {
                const float c = exp2f(mr[r] - M);
                num += c * *cluster.map_shared_rank(sC + e, r);
                den += c * *cluster.map_shared_rank(sCl + h, r);
            }
        }
        if (h < a.group) a.out[(t * a.n_head + g * a.group + h) * HD + d] = den > 0.f ? num / den : 0.f;
    }
    cluster.sync();  // no CTA leaves while another reads its shared memory
}

template <typename E, int HD, int GP, int NW> cudaError_t attn_decode_launch_one(const AttnArgs& a, Queue s) {
    return launch(attn_decode_kernel<E, HD, GP, NW>, dim3(kDecCluster, unsigned(a.n_kv_head), unsigned(a.n_tokens)),
                  dim3(NW * 32), attn_decode_smem_bytes<HD, GP, NW>(), s.stream, s.pdl, a);
}
template <typename E, int HD, int NW> cudaError_t attn_decode_launch_hd(const AttnArgs& a, Queue s) {
    if (a.group <= 1) return attn_decode_launch_one<E, HD, 1, NW>(a, s);
    if (a.group <= 2) return attn_decode_launch_one<E, HD, 2, NW>(a, s);
    if (a.group <= 4) return attn_decode_launch_one<E, HD, 4, NW>(a, s);
    return attn_decode_launch_one<E, HD, 8, NW>(a, s);
}
// a.hd 64, 128 or 256, 1 <= a.group <= kDecMaxGroup, warps 4 or 8. Returns the launch error.
template <typename E> cudaError_t attn_decode_launch_typed(const AttnArgs& a, int warps, Queue s) {
    if (a.group < 1 || a.group > kDecMaxGroup || (a.hd != 64 && a.hd != 128 && a.hd != 256) ||
        (warps != 4 && warps != 8))
        return cudaErrorInvalidValue;
    if (warps == 4)
        return a.hd == 64    ? attn_decode_launch_hd<E, 64, 4>(a, s)
               : a.hd == 128 ? attn_decode_launch_hd<E, 128, 4>(a, s)
                             : attn_decode_launch_hd<E, 256, 4>(a, s);
    return a.hd == 64    ? attn_decode_launch_hd<E, 64, 8>(a, s)
           : a.hd == 128 ? attn_decode_launch_hd<E, 128, 8>(a, s)
                         : attn_decode_launch_hd<E, 256, 8>(a, s);
}
template <typename E, int HD, int GP, int NW> cudaError_t attn_decode_init_one() {
    return cudaFuncSetAttribute(attn_decode_kernel<E, HD, GP, NW>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                int(attn_decode_smem_bytes<HD, GP, NW>()));
}
template <typename E, int NW> cudaError_t attn_decode_init_warps() {
    const cudaError_t errs[] = {attn_decode_init_one<E, 64, 1, NW>(),  attn_decode_init_one<E, 64, 2, NW>(),
                                attn_decode_init_one<E, 64, 4, NW>(),  attn_decode_init_one<E, 64, 8, NW>(),
                                attn_decode_init_one<E, 128, 1, NW>(), attn_decode_init_one<E, 128, 2, NW>(),
                                attn_decode_init_one<E, 128, 4, NW>(), attn_decode_init_one<E, 128, 8, NW>(),
                                attn_decode_init_one<E, 256, 1, NW>(), attn_decode_init_one<E, 256, 2, NW>(),
                                attn_decode_init_one<E, 256, 4, NW>(), attn_decode_init_one<E, 256, 8, NW>()};
    for (cudaError_t e : errs)
        if (e != cudaSuccess) return e;
    return cudaSuccess;
}
template <typename E> cudaError_t attn_decode_init_typed() {
    const cudaError_t e = attn_decode_init_warps<E, 4>();
    return e != cudaSuccess ? e : attn_decode_init_warps<E, 8>();
}

}  // namespace imp::cuda_kernels
