// Tensor-core prefill attention (FlashAttention-2 style) for BF16, F16 and FP8 E4M3 KV caches, head_dim <= 128 (a
// multiple of 8; padded to 64 or 128), and BF16 / F16 head_dim 256 with AttnOptions::tensor_cores_hd256 (4 warps:
// 202 KB of shared memory, one CTA per SM; 255 registers, no spills). Same semantics as attn_kernel's one-pass mode (attention_kernel.cuh).
//
// A CTA of W = 4 or 8 warps takes 16 W rows of one sequence's flattened (token, head-in-group) space of one KV head
// g (row i: the sequence's token i / group, head g * group + i % group; query tiles never mix sequences: each
// sequence has as many CTAs as tiles, plus at most one that exits at once), 16 rows per warp, and walks
// the sequence's KV positions [0, kv_end) (through its block table row) in tiles of kMmaKeys = 64 keys (8 warps:
// each K/V tile is read from L2 once for twice the rows, one CTA per SM at head_dim 128; 4 warps: two CTAs per
// SM). K and V tiles are copied to shared memory with cp.async (16 bytes per copy, paged through the block table,
// zero-filled past kv_end and past hd), two stages deep, so the next tile's copy overlaps the current tile's math.
// Per tile, each warp computes
//   S = Q K^T with mma.m16n8k16 (fp32 accumulate): Q fragments by ldmatrix, K fragments by ldmatrix (K stored
//     [key][dim] is the column-major B operand);
//   the online softmax on the S fragments in registers (log2 domain: Q is pre-multiplied by scale * log2 e; row
//     max and sum over the 4 lanes of a quad), causal mask key <= token_pos[row], key < kv_end;
//   O = O * alpha + P V: P taken from the S fragments as the A operand, V fragments by ldmatrix.trans.
// Precision: Q (fp32) and P (fp32) are each split into a 16-bit hi part and a 16-bit lo part (x - hi), both rounded
// to nearest, and every product is two MMAs (hi and lo against the same K or V fragment); hi + lo keeps about 16
// significant bits (bf16) or 22 (f16) of the fp32 value. K and V are exact (the cache's own 16-bit values). The row
// sum l adds the fp32 P. F16 caches need |q * scale * log2 e| < 65504 (the f16 range) for the hi part.
// FP8 E4M3 caches: the MMAs take bf16, in which every E4M3 code is exact; the tiles go through registers (8 codes per
// 8-byte load, the next tile's loads in flight during the current tile's math) and are stored converted, unscaled.
// The cache's scales are applied outside the MMAs: k_scale with the softmax scale on Q, v_scale on the output (the
// reference multiplies each K / V element instead: the same values up to fp32 rounding).
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "exec/cuda/attention_kernel.cuh"

namespace imp::cuda_kernels {

constexpr int kMmaKeys = 64;
constexpr int kMmaMaxRows = 128;  // rows per CTA: 16 per warp, 4 or 8 warps

// Shared memory: Q hi, Q lo [16 W][LD]; K, V [2 stages][kMmaKeys][LD] (16-bit elements, LD = HDP + 8: the 16-byte
// pad puts the 8 rows of an ldmatrix 8x8 matrix in distinct bank groups); 2 ints per warp for the position reduction.
template <int HDP, int W> constexpr size_t attn_mma_smem_bytes() {
    return 2 * size_t(HDP + 8) * (2 * 16 * W + 4 * kMmaKeys) + 2 * W * sizeof(int);
}

template <typename T> struct MmaOps;
template <> struct MmaOps<__nv_bfloat16> {
    __device__ static float round(float x) { return __bfloat162float(__float2bfloat16_rn(x)); }
    __device__ static uint32_t pack(float lo, float hi) {  // lo: the lower 16 bits (smaller column index)
        const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
        return *reinterpret_cast<const uint32_t*>(&v);
    }
    __device__ static void mma(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
        asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
            "{%0,%1,%2,%3};\n"
            : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }
};
template <> struct MmaOps<__half> {
    __device__ static float round(float x) { return __half2float(__float2half_rn(x)); }
    __device__ static uint32_t pack(float lo, float hi) {
        const __half2 v = __floats2half2_rn(lo, hi);
        return *reinterpret_cast<const uint32_t*>(&v);
    }
    __device__ static void mma(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
        asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
            "{%0,%1,%2,%3};\n"
            : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }
};

// The 16-bit MMA element of a KV cache type: its own for BF16 / F16, bf16 for FP8 E4M3 (exact).
template <typename E> struct MmaElem {
    using type = typename E::T;
};
template <> struct MmaElem<KvF8> {
    using type = __nv_bfloat16;
};

// 8 E4M3 codes (little-endian in c) as 8 bf16 values, exact and unscaled.
__device__ __forceinline__ uint4 f8x8_to_bf16x8(uint2 c) {
    uint32_t w[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const uint32_t word = i < 2 ? c.x : c.y;
        const int sh = 16 * (i & 1);
        const float lo = KvF8::load(__nv_fp8_storage_t((word >> sh) & 0xFFu), 1.f);
        const float hi = KvF8::load(__nv_fp8_storage_t((word >> (sh + 8)) & 0xFFu), 1.f);
        w[i] = MmaOps<__nv_bfloat16>::pack(lo, hi);
    }
    return make_uint4(w[0], w[1], w[2], w[3]);
}

// (x0, x1) as a packed hi pair and a packed lo pair: hi = round(x), lo = round(x - hi) (x - hi is exact in fp32).
template <typename Ops> __device__ __forceinline__ void split2(float x0, float x1, uint32_t& hi, uint32_t& lo) {
    const float h0 = Ops::round(x0), h1 = Ops::round(x1);
    hi = Ops::pack(h0, h1);
    lo = Ops::pack(x0 - h0, x1 - h1);
}

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
    return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
// 16-byte cp.async; bytes = 0 writes 16 zero bytes and reads nothing.
__device__ __forceinline__ void cp_async16(void* dst, const void* src, int bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src), "r"(bytes)
                 : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N> __device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}
__device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], const void* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(p)));
}
__device__ __forceinline__ void ldsm_x4_trans(uint32_t (&r)[4], const void* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(p)));
}

template <typename E, int HDP, int W>
__global__ void __launch_bounds__(32 * W, HDP > 128 ? 1 : 8 / W) attn_mma_kernel(const AttnArgs a) {
    using T = typename E::T;
    using Ops = MmaOps<typename MmaElem<E>::type>;
    constexpr bool kF8 = std::is_same_v<E, KvF8>;
    constexpr int NTH = 32 * W;                          // threads
    constexpr int BM = 16 * W, BN = kMmaKeys, LD = HDP + 8;
    constexpr int CPR = HDP / 8;                         // 16-byte chunks per K/V row
    constexpr int KV_ITERS = BN * CPR / NTH;             // chunks per thread per tile (of K, and of V)
    constexpr int NT = BN / 8;                           // S n-tiles (8 keys each) per warp
    constexpr int DT = HDP / 8;                          // O n-tiles (8 dims each) per warp
    static_assert(BN * CPR % NTH == 0 && NTH % CPR == 0, "tile does not split over the block");
    pdl_launch_dependents();
    pdl_wait();

    extern __shared__ uint4 attn_mma_smem[];
    uint16_t* sqh = reinterpret_cast<uint16_t*>(attn_mma_smem);
    uint16_t* sql = sqh + BM * LD;
    uint16_t* sk = sql + BM * LD;  // [2][BN][LD]
    uint16_t* sv = sk + 2 * BN * LD;
    int* sred = reinterpret_cast<int*>(sv + 2 * BN * LD);

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int g = blockIdx.y;
    // Block x: (sequence, query tile). Sequence s owns blocks [start(s), start(s) + tiles(s)), start(s) = s +
    // floor(query_start_loc[s] * group / BM), tiles(s) = ceil(rows(s) / BM): start(s + 1) - start(s) >= tiles(s),
    // so the grid (attn_mma_blocks: n_seqs + floor(n_tokens * group / BM)) has at most one idle block per sequence,
    // however uneven the sequences (a mixed step's one-row decodes beside a long prompt). s is found by binary
    // search over start(); within a sequence the tiles of the heavy causal rows come first. Row counts fit 32 bits:
    // n_tokens * group <= INT32_MAX - kMmaMaxRows (the host checks).
    int seq = 0;
    {
        const int x = int(blockIdx.x);
        int hi = a.n_seqs - 1;
        while (seq < hi) {
            const int mid = (seq + hi + 1) >> 1;
            if (mid + a.query_start_loc[mid] * a.group / BM <= x) seq = mid;
            else hi = mid - 1;
        }
    }
    const AttnSeq sr = attn_seq(a, seq);
    const int total_rows = int(sr.rows), t0 = int(sr.t0);
    const int tile_idx = int(blockIdx.x) - (seq + t0 * a.group / BM);
    const int row0 = ((total_rows + BM - 1) / BM - 1 - tile_idx) * BM;
    if (row0 < 0) return;  // past this sequence's tiles (uniform over the block)

    // Largest position of the block's rows (kv_end) and the smallest (below it no key needs the causal mask).
    if (tid < BM) {
        int pmax = -1, pmin = INT32_MAX;
        if (row0 + tid < total_rows) pmax = pmin = a.token_pos[t0 + (row0 + tid) / a.group];
        pmax = __reduce_max_sync(0xffffffffu, pmax);
        pmin = __reduce_min_sync(0xffffffffu, pmin);
        if (lane == 0) sred[2 * warp] = pmax, sred[2 * warp + 1] = pmin;
    }
    // This thread's two rows of the warp's 16: r = lane / 4 and r + 8 (the rows of its accumulator fragments).
    int rpos[2];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        const int i = row0 + warp * 16 + (lane >> 2) + h * 8;
        rpos[h] = i < total_rows ? a.token_pos[t0 + i / a.group] : -1;
    }
    __syncthreads();
    int pos_max = sred[0], pos_min = sred[1];
#pragma unroll
    for (int w = 1; w < BM / 32; ++w) pos_max = max(pos_max, sred[2 * w]), pos_min = min(pos_min, sred[2 * w + 1]);
    const int64_t kv_end = min64(int64_t(pos_max) + 1, a.max_ctx);
    const int n_tiles = kv_end > 0 ? int((kv_end + BN - 1) / BN) : 0;

    const T* K = static_cast<const T*>(a.k);
    const T* V = static_cast<const T*>(a.v);
    // This thread's chunk it of a tile at key j0: its key row kk, chunk ch (8 elements), whether it is inside kv_end
    // and hd, and its element offset in the cache.
    const int ch = tid % CPR;
    auto chunk_off = [&](int it, int64_t j0, int& kk, bool& ok) {
        kk = tid / CPR + it * (NTH / CPR);
        ok = j0 + kk < kv_end && ch * 8 < a.hd;
        return ok ? attn_kv_off(a, sr.table, j0 + kk, g) + ch * 8 : int64_t(0);
    };
    auto load_tile = [&](int stage, int64_t j0) {  // BF16 / F16: cp.async straight into the stage
        uint16_t* dk = sk + stage * BN * LD;
        uint16_t* dv = sv + stage * BN * LD;
#pragma unroll
        for (int it = 0; it < KV_ITERS; ++it) {
            int kk;
            bool ok;
            const int64_t off = chunk_off(it, j0, kk, ok);
            cp_async16(dk + kk * LD + ch * 8, K + off, ok ? 16 : 0);
            cp_async16(dv + kk * LD + ch * 8, V + off, ok ? 16 : 0);
        }
    };
    // FP8: a tile's codes into registers (zero past kv_end and hd), then converted into a stage.
    uint2 kreg[kF8 ? KV_ITERS : 1], vreg[kF8 ? KV_ITERS : 1];
    auto fetch_f8 = [&](int64_t j0) {
#pragma unroll
        for (int it = 0; it < KV_ITERS; ++it) {
            int kk;
            bool ok;
            const int64_t off = chunk_off(it, j0, kk, ok);
            kreg[it] = ok ? *reinterpret_cast<const uint2*>(K + off) : make_uint2(0u, 0u);
            vreg[it] = ok ? *reinterpret_cast<const uint2*>(V + off) : make_uint2(0u, 0u);
        }
    };
    auto store_f8 = [&](int stage) {
        uint16_t* dk = sk + stage * BN * LD;
        uint16_t* dv = sv + stage * BN * LD;
#pragma unroll
        for (int it = 0; it < KV_ITERS; ++it) {
            const int kk = tid / CPR + it * (NTH / CPR);
            *reinterpret_cast<uint4*>(dk + kk * LD + ch * 8) = f8x8_to_bf16x8(kreg[it]);
            *reinterpret_cast<uint4*>(dv + kk * LD + ch * 8) = f8x8_to_bf16x8(vreg[it]);
        }
    };
    if constexpr (kF8) {
        if (n_tiles > 0) {
            fetch_f8(0);
            store_f8(0);  // visible after the barrier at the first tile
        }
    } else {
        if (n_tiles > 0) load_tile(0, 0);
        cp_async_commit();
    }
    const float qscale = kF8 ? a.qscale * a.k_scale : a.qscale;

    // Q * scale * log2 e, split into hi and lo parts (zero outside the rows and past hd); overlaps the first copy.
    for (int e = tid; e < BM * HDP / 2; e += NTH) {
        const int r = e / (HDP / 2), d = 2 * (e % (HDP / 2));
        const int i = row0 + r;
        float x0 = 0.f, x1 = 0.f;
        if (i < total_rows && d < a.hd) {
            const int t = i / a.group;
            const int h = g * a.group + (i - t * a.group);
            const float* qr = a.q + int64_t(t0 + t) * a.q_stride + int64_t(h) * a.hd + d;
            x0 = qr[0] * qscale;
            x1 = qr[1] * qscale;
        }
        uint32_t hi, lo;
        split2<Ops>(x0, x1, hi, lo);
        *reinterpret_cast<uint32_t*>(sqh + r * LD + d) = hi;
        *reinterpret_cast<uint32_t*>(sql + r * LD + d) = lo;
    }

    float o[DT][4];
#pragma unroll
    for (int n = 0; n < DT; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
    // ldmatrix row addresses of this lane (element offsets): Q as the A operand (rows lane % 16, column half
    // lane / 16); K as B (keys lane % 8 + 8 * (lane / 16), dim half (lane / 8) % 2); V as B^T (keys lane % 8 +
    // 8 * ((lane / 8) % 2), dim half lane / 16).
    const int q_off = (warp * 16 + (lane & 15)) * LD + (lane >> 4) * 8;
    const int k_off = ((lane & 7) + ((lane >> 4) << 3)) * LD + ((lane >> 3) & 1) * 8;
    const int v_off = ((lane & 7) + (((lane >> 3) & 1) << 3)) * LD + (lane >> 4) * 8;

    for (int tile = 0; tile < n_tiles; ++tile) {
        const int stage = tile & 1;
        const int64_t j0 = int64_t(tile) * BN;
        if constexpr (kF8) {
            if (tile + 1 < n_tiles) fetch_f8(j0 + BN);  // in flight during this tile; stored after it
        } else {
            if (tile + 1 < n_tiles) load_tile(stage ^ 1, j0 + BN);  // that stage was released by the last barrier
            cp_async_commit();
            cp_async_wait<1>();  // this tile's group has landed
        }
        __syncthreads();
        const uint16_t* ks = sk + stage * BN * LD;
        const uint16_t* vs = sv + stage * BN * LD;

        float s[NT][4];
#pragma unroll
        for (int n = 0; n < NT; ++n) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.f;
#pragma unroll
        for (int kd = 0; kd < HDP / 16; ++kd) {
            uint32_t qh[4], ql[4];
            ldsm_x4(qh, sqh + q_off + kd * 16);
            ldsm_x4(ql, sql + q_off + kd * 16);
#pragma unroll
            for (int np = 0; np < NT / 2; ++np) {
                uint32_t kb[4];
                ldsm_x4(kb, ks + k_off + np * 16 * LD + kd * 16);
                Ops::mma(s[2 * np], ql, kb[0], kb[1]);
                Ops::mma(s[2 * np], qh, kb[0], kb[1]);
                Ops::mma(s[2 * np + 1], ql, kb[2], kb[3]);
                Ops::mma(s[2 * np + 1], qh, kb[2], kb[3]);
            }
        }

        // Fragment element e of n-tile n: row (lane / 4) + 8 * (e / 2), key j0 + 8 n + 2 (lane % 4) + e % 2.
        if (j0 + BN - 1 > pos_min || j0 + BN > kv_end) {  // uniform over the block
#pragma unroll
            for (int n = 0; n < NT; ++n)
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    const int64_t j = j0 + n * 8 + 2 * (lane & 3) + (e & 1);
                    if (j > rpos[e >> 1] || j >= kv_end) s[n][e] = -INFINITY;
                }
        }
        float alpha[2];
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            float mt = -INFINITY;
#pragma unroll
            for (int n = 0; n < NT; ++n) mt = fmaxf(mt, fmaxf(s[n][2 * h], s[n][2 * h + 1]));
            mt = fmaxf(mt, __shfl_xor_sync(0xffffffffu, mt, 1));
            mt = fmaxf(mt, __shfl_xor_sync(0xffffffffu, mt, 2));
            const float m_new = fmaxf(m[h], mt);
            alpha[h] = m_new == -INFINITY ? 1.f : exp2f(m[h] - m_new);
            m[h] = m_new;
            float sum = 0.f;
#pragma unroll
            for (int n = 0; n < NT; ++n)
#pragma unroll
                for (int e = 2 * h; e < 2 * h + 2; ++e) {
                    const float p = m_new == -INFINITY ? 0.f : exp2f(s[n][e] - m_new);
                    s[n][e] = p;
                    sum += p;
                }
            l[h] = l[h] * alpha[h] + sum;  // this lane's keys only; the quad is summed at the end
        }
#pragma unroll
        for (int n = 0; n < DT; ++n) {
            o[n][0] *= alpha[0];
            o[n][1] *= alpha[0];
            o[n][2] *= alpha[1];
            o[n][3] *= alpha[1];
        }

        // P (keys 16 kt .. 16 kt + 15) as the A operand: n-tiles 2 kt and 2 kt + 1 of S are its two column halves.
#pragma unroll
        for (int kt = 0; kt < BN / 16; ++kt) {
            uint32_t ph[4], pl[4];
            split2<Ops>(s[2 * kt][0], s[2 * kt][1], ph[0], pl[0]);
            split2<Ops>(s[2 * kt][2], s[2 * kt][3], ph[1], pl[1]);
            split2<Ops>(s[2 * kt + 1][0], s[2 * kt + 1][1], ph[2], pl[2]);
            split2<Ops>(s[2 * kt + 1][2], s[2 * kt + 1][3], ph[3], pl[3]);
#pragma unroll
            for (int dp = 0; dp < DT / 2; ++dp) {
                uint32_t vb[4];
                ldsm_x4_trans(vb, vs + v_off + kt * 16 * LD + dp * 16);
                Ops::mma(o[2 * dp], pl, vb[0], vb[1]);
                Ops::mma(o[2 * dp], ph, vb[0], vb[1]);
                Ops::mma(o[2 * dp + 1], pl, vb[2], vb[3]);
                Ops::mma(o[2 * dp + 1], ph, vb[2], vb[3]);
            }
        }
        if constexpr (kF8) {
            if (tile + 1 < n_tiles) store_f8(stage ^ 1);  // released by the last barrier; read after the next one
        }
        __syncthreads();  // every warp is done with this stage before it is refilled
    }

#pragma unroll
    for (int h = 0; h < 2; ++h) {
        l[h] += __shfl_xor_sync(0xffffffffu, l[h], 1);
        l[h] += __shfl_xor_sync(0xffffffffu, l[h], 2);
        const int i = row0 + warp * 16 + (lane >> 2) + h * 8;
        if (i >= total_rows) continue;
        const int t = i / a.group;
        const int head = g * a.group + (i - t * a.group);
        const float inv = l[h] > 0.f ? (kF8 ? a.v_scale : 1.f) / l[h] : 0.f;
        float* orow = a.out + int64_t(t0 + t) * a.n_head * a.hd + int64_t(head) * a.hd;
#pragma unroll
        for (int n = 0; n < DT; ++n) {
            const int d = n * 8 + 2 * (lane & 3);
            if (d < a.hd) *reinterpret_cast<float2*>(orow + d) = make_float2(o[n][2 * h] * inv, o[n][2 * h + 1] * inv);
        }
    }
}

template <typename E, int HDP, int W> cudaError_t attn_mma_launch_one(const AttnArgs& a, dim3 grid, Queue s) {
    return launch(attn_mma_kernel<E, HDP, W>, grid, dim3(32 * W), attn_mma_smem_bytes<HDP, W>(), s.stream, s.pdl, a);
}
// Blocks (grid x) of the kernel for a step of n_seqs sequences and n_tokens rows (see the kernel's block mapping).
inline int64_t attn_mma_blocks(int64_t n_seqs, int64_t n_tokens, int group, int warps) {
    return n_seqs + n_tokens * group / (16 * warps);
}
// Launch over grid (attn_mma_blocks(n_seqs, n_tokens, group, warps), n_kv_head);
// hdp is 64 or 128 (warps 4 or 8), or 256 (4 warps: 8 would need 270 KB of shared memory). Returns the launch
// error.
template <typename E> cudaError_t attn_mma_launch_typed(const AttnArgs& a, int hdp, int warps, dim3 grid, Queue s) {
    if (hdp == 64)
        return warps == 8 ? attn_mma_launch_one<E, 64, 8>(a, grid, s) : attn_mma_launch_one<E, 64, 4>(a, grid, s);
    if (hdp == 256) {  // BF16 / F16 only (the FP8 form would spill: its register-staged tiles double)
        if constexpr (std::is_same_v<E, KvF8>) return cudaErrorInvalidValue;
        else return warps == 4 ? attn_mma_launch_one<E, 256, 4>(a, grid, s) : cudaErrorInvalidValue;
    }
    return warps == 8 ? attn_mma_launch_one<E, 128, 8>(a, grid, s) : attn_mma_launch_one<E, 128, 4>(a, grid, s);
}
template <typename E, int HDP, int W> cudaError_t attn_mma_init_one() {
    return cudaFuncSetAttribute(attn_mma_kernel<E, HDP, W>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                int(attn_mma_smem_bytes<HDP, W>()));
}
// Raises the shared-memory limit of every instantiation; first error, or cudaSuccess.
template <typename E> cudaError_t attn_mma_init_typed() {
    const cudaError_t errs[] = {attn_mma_init_one<E, 64, 4>(), attn_mma_init_one<E, 64, 8>(),
                                attn_mma_init_one<E, 128, 4>(), attn_mma_init_one<E, 128, 8>()};
    for (cudaError_t e : errs)
        if (e != cudaSuccess) return e;
    if constexpr (!std::is_same_v<E, KvF8>) return attn_mma_init_one<E, 256, 4>();
    return cudaSuccess;
}

}  // namespace imp::cuda_kernels
