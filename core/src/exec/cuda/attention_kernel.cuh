// Flash-style attention over a paged KV cache, fp32 math on CUDA cores: decode, and the prefills the tensor-core
// kernel (attention_mma.cuh: BF16 / F16 KV, head_dim <= 128, or <= 256 when asked) does not take.
//
// The step holds the rows of several sequences (StepBatch): sequence s owns tokens [query_start_loc[s],
// query_start_loc[s + 1]) and finds its KV positions through row s of the block tables. A block takes R query rows
// of one sequence and one KV head g: row i of the sequence's flattened (token, head-in-group) space is its token
// i / group, head g * group + i % group, so GQA heads share every K/V tile a block loads. The grid has
// tiles_per_seq blocks per sequence (from the host's max_query_len); blocks past a sequence's rows exit at once.
// The block walks the sequence's KV positions in tiles of TK keys: (1) K and V tiles are loaded with 16-byte
// coalesced loads, converted to fp32 in shared memory (paged through the block table), (2) scores S = Q K^T with
// one thread per key, (3) an online softmax per row (one warp per row, exp2 with the scale pre-multiplied by
// log2 e), (4) O += P V with one thread per output dimension. Causality and the KV length come from token_pos in
// device memory.
//
// Split mode (decode: every sequence has one row, token s of sequence s): blockIdx.z is a split of `split_len`
// positions; the block writes an unnormalized partial O and its (max, sum) for attn_combine_kernel. The grid is
// sized from max_blocks * block_size, so the launch can be captured in a CUDA graph; splits past a row's position
// exit at once.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "exec/cuda/common.cuh"
#include "exec/cuda/kernels.h"
#include "exec/cuda/kv_types.cuh"
#include "exec/cuda/launch.cuh"

namespace imp::cuda_kernels {

struct AttnArgs {
    const float* q;
    int64_t q_stride;
    const void* k;
    const void* v;
    const int32_t* token_pos;        // [n_tokens] position of each row in its sequence
    const int32_t* query_start_loc;  // [n_seqs + 1] (unused when decode)
    const int32_t* block_tables;     // [n_seqs, max_blocks]
    int max_blocks;
    int block_size;
    int64_t max_ctx;                 // max_blocks * block_size: the positions a block table can address
    int n_seqs;
    int tiles_per_seq;               // grid blocks (x) per sequence: query tiles of the longest sequence
    bool decode;                     // one row per sequence: row s is sequence s (query_start_loc not read)
    float k_scale, v_scale;
    int n_head, n_kv_head, group, hd;
    float qscale;  // softmax scale * log2(e)
    int64_t n_tokens;
    float* out;      // [n_tokens, n_head * hd]
    int split_len;   // split mode: positions per split (a multiple of TK); 0 = no split
    int n_splits;
    float* part_o;   // [n_tokens, n_head, n_splits, hd]
    float* part_ml;  // [n_tokens, n_head, n_splits, 2]
    bool vec_kv;     // 16-byte K/V loads allowed (hd * elem bytes % 16 == 0, aligned base)
};

// The query rows of one sequence: its first token, its rows in the flattened (token, head-in-group) space, and its
// block table row. Read after pdl_wait().
struct AttnSeq {
    int64_t t0;
    int64_t rows;
    const int32_t* table;
};
__device__ __forceinline__ AttnSeq attn_seq(const AttnArgs& a, int seq) {
    AttnSeq s;
    if (a.decode) {
        s.t0 = seq;
        s.rows = a.group;
    } else {
        const int b = a.query_start_loc[seq], e = a.query_start_loc[seq + 1];
        s.t0 = b;
        s.rows = e > b ? int64_t(e - b) * a.group : 0;
    }
    s.table = a.block_tables + int64_t(seq) * a.max_blocks;
    return s;
}

// Element offset of position j's K (V) row of KV head g through a sequence's block table.
__device__ __forceinline__ int64_t attn_kv_off(const AttnArgs& a, const int32_t* table, int64_t j, int g) {
    const int jb = int(j) / a.block_size;
    return (int64_t(table[jb]) * a.block_size + (int(j) - jb * a.block_size)) * (int64_t(a.n_kv_head) * a.hd) +
           int64_t(g) * a.hd;
}

constexpr int kAttnThreads = 128;

template <int HDP> __host__ __device__ constexpr int attn_tile_keys() { return HDP > 128 ? 32 : 64; }

template <int HDP, int R> __host__ __device__ constexpr size_t attn_smem_bytes() {
    constexpr int TK = attn_tile_keys<HDP>();
    constexpr int NDP = kAttnThreads / TK;
    return sizeof(float) * (size_t(R) * HDP + size_t(TK) * (HDP + 4) + size_t(TK) * HDP + size_t(NDP) * R * TK +
                            3 * R) + sizeof(int) * (R + 1);
}

// Vectorized tile transfer: each thread moves ITERS 16-byte chunks of K (and of V: same rows) per tile.
template <typename E, int HDP, int TK> struct AttnTileVec {
    using T = typename E::T;
    static constexpr int EPV = 16 / int(sizeof(T));      // elements per chunk
    static constexpr int CPR = HDP / EPV;                // chunks per key row
    static constexpr int ITERS = TK * CPR / kAttnThreads;
    static_assert(ITERS >= 1 && (TK * CPR) % kAttnThreads == 0, "tile does not split over the block");
    // Next tile's raw bytes live in registers while the current tile is computed, when they fit.
    static constexpr bool kPrefetch = ITERS <= 8;

    // Element offsets of this thread's chunks (-1: outside [0, kv_end) or past hd); one 32-bit division per chunk.
    __device__ static void offsets(int64_t (&off)[ITERS], const AttnArgs& a, const int32_t* table, int g, int64_t j0,
                                   int64_t kv_end) {
#pragma unroll
        for (int it = 0; it < ITERS; ++it) {
            const int c = threadIdx.x + it * kAttnThreads;
            const int kk = c / CPR, ch = c % CPR;
            const int64_t j = j0 + kk;
            off[it] = -1;
            if (j < kv_end && ch * EPV < a.hd) off[it] = attn_kv_off(a, table, j, g) + ch * EPV;
        }
    }
    __device__ static void fetch(uint4 (&buf)[ITERS], const int64_t (&off)[ITERS], const T* __restrict__ src) {
#pragma unroll
        for (int it = 0; it < ITERS; ++it)
            buf[it] = off[it] >= 0 ? __ldg(reinterpret_cast<const uint4*>(src + off[it])) : make_uint4(0, 0, 0, 0);
    }
    __device__ static void commit(const uint4 (&buf)[ITERS], float* dst, int ld, float scale) {
#pragma unroll
        for (int it = 0; it < ITERS; ++it) {
            const int c = threadIdx.x + it * kAttnThreads;
            const int kk = c / CPR, ch = c % CPR;
            const T* e = reinterpret_cast<const T*>(&buf[it]);
            float* d = dst + kk * ld + ch * EPV;
#pragma unroll
            for (int x = 0; x < EPV; x += 4)
                *reinterpret_cast<float4*>(d + x) = make_float4(E::load(e[x], scale), E::load(e[x + 1], scale),
                                                                E::load(e[x + 2], scale), E::load(e[x + 3], scale));
        }
    }
};

// Scalar tile load (head dims whose rows are not 16-byte multiples): zero outside [0, kv_end) and past hd.
template <typename E, int HDP, int TK>
__device__ __forceinline__ void attn_load_tile_scalar(float* dst, int ld, const typename E::T* __restrict__ src,
                                                      const AttnArgs& a, const int32_t* table, int g, int64_t j0,
                                                      int64_t kv_end, float scale) {
    for (int e = threadIdx.x; e < TK * HDP; e += kAttnThreads) {
        const int kk = e / HDP, d = e % HDP;
        const int64_t j = j0 + kk;
        float x = 0.f;
        if (j < kv_end && d < a.hd) x = E::load(src[attn_kv_off(a, table, j, g) + d], scale);
        dst[kk * ld + d] = x;
    }
}

template <typename E, int HDP, int R>
__global__ void __launch_bounds__(kAttnThreads) attn_kernel(const AttnArgs a) {
    using T = typename E::T;
    constexpr int TK = attn_tile_keys<HDP>();
    constexpr int NT = kAttnThreads;
    constexpr int NDP = NT / TK;                 // threads per key in the score phase
    constexpr int DD = HDP / NDP;                // dims per score thread
    constexpr int DC = HDP < 128 ? HDP : 128;    // output columns per pass
    constexpr int KP = NT / DC;                  // key groups in the PV phase
    constexpr int DPT = HDP / DC;                // output dims per thread
    constexpr int SKS = HDP + 4;                 // padded K row (conflict-free 16-byte reads across keys)
    static_assert(R <= 32 && R % 4 == 0, "rows per block");
    pdl_launch_dependents();
    pdl_wait();

    extern __shared__ __align__(16) float smem[];
    float* sq = smem;                  // [R][HDP]
    float* sk = sq + R * HDP;          // [TK][SKS]
    float* sv = sk + TK * SKS;         // [TK][HDP]
    float* sp = sv + TK * HDP;         // [NDP][R][TK] partial scores; sp[0] then holds P
    float* sm = sp + NDP * R * TK;     // running max (log2 domain)
    float* sl = sm + R;                // running sum
    float* sa = sl + R;                // rescale factor of the current tile
    int* spos = reinterpret_cast<int*>(sa + R);
    int* send = spos + R;

    const int tid = threadIdx.x;
    const int g = blockIdx.y;
    // Block x: (sequence, query tile); split mode in sequence order, else the tiles of the heavy causal rows first.
    int seq, rb;
    if (a.split_len) {
        seq = int(blockIdx.x) / a.tiles_per_seq;
        rb = int(blockIdx.x) - seq * a.tiles_per_seq;
    } else {
        const int idx = int(blockIdx.x) / a.n_seqs;
        seq = int(blockIdx.x) - idx * a.n_seqs;
        rb = a.tiles_per_seq - 1 - idx;
    }
    const AttnSeq sr = attn_seq(a, seq);
    const int64_t total_rows = sr.rows, t0 = sr.t0;
    const int64_t row0 = int64_t(rb) * R;
    if (row0 >= total_rows) return;  // past this sequence's rows (uniform over the block)

    if (tid < 32) {
        int pos = -1;
        if (tid < R && row0 + tid < total_rows) pos = a.token_pos[t0 + (row0 + tid) / a.group];
        if (tid < R) {
            spos[tid] = pos;
            sm[tid] = -INFINITY;
            sl[tid] = 0.f;
        }
        const int mx = __reduce_max_sync(0xffffffffu, pos);
        if (tid == 0) send[0] = int(min64(int64_t(mx) + 1, a.max_ctx));
    }
    __syncthreads();
    int64_t kv_begin = 0, kv_end = send[0];
    if (a.split_len) {
        kv_begin = int64_t(blockIdx.z) * a.split_len;
        kv_end = min64(kv_end, kv_begin + a.split_len);
        if (kv_begin >= kv_end) return;  // uniform over the block
    }

    for (int e = tid; e < R * HDP; e += NT) {
        const int r = e / HDP, d = e % HDP;
        const int64_t i = row0 + r;
        float x = 0.f;
        if (i < total_rows && d < a.hd) {
            const int64_t t = t0 + i / a.group;
            const int h = g * a.group + int(i % a.group);
            x = a.q[t * a.q_stride + int64_t(h) * a.hd + d] * a.qscale;
        }
        sq[e] = x;
    }

    float o[R][DPT];
#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
        for (int i = 0; i < DPT; ++i) o[r][i] = 0.f;

    const T* K = static_cast<const T*>(a.k);
    const T* V = static_cast<const T*>(a.v);
    const int lane = tid & 31, warp = tid >> 5;
    using Vec = AttnTileVec<E, HDP, TK>;
    uint4 kbuf[Vec::ITERS], vbuf[Vec::ITERS];
    int64_t off[Vec::ITERS];
    if (Vec::kPrefetch && a.vec_kv) {
        Vec::offsets(off, a, sr.table, g, kv_begin, kv_end);
        Vec::fetch(kbuf, off, K);
        Vec::fetch(vbuf, off, V);
    }
    for (int64_t j0 = kv_begin; j0 < kv_end; j0 += TK) {
        if (!a.vec_kv) {
            attn_load_tile_scalar<E, HDP, TK>(sk, SKS, K, a, sr.table, g, j0, kv_end, a.k_scale);
            attn_load_tile_scalar<E, HDP, TK>(sv, HDP, V, a, sr.table, g, j0, kv_end, a.v_scale);
        } else if constexpr (Vec::kPrefetch) {
            Vec::commit(kbuf, sk, SKS, a.k_scale);
            Vec::commit(vbuf, sv, HDP, a.v_scale);
        } else {
            Vec::offsets(off, a, sr.table, g, j0, kv_end);
            Vec::fetch(kbuf, off, K);
            Vec::fetch(vbuf, off, V);
            Vec::commit(kbuf, sk, SKS, a.k_scale);
            Vec::commit(vbuf, sv, HDP, a.v_scale);
        }
        __syncthreads();
        if constexpr (Vec::kPrefetch) {
            if (a.vec_kv && j0 + TK < kv_end) {  // the next tile's loads fly while this one is computed
                Vec::offsets(off, a, sr.table, g, j0 + TK, kv_end);
                Vec::fetch(kbuf, off, K);
                Vec::fetch(vbuf, off, V);
            }
        }

        {  // scores: thread (key kk, dim part dp)
            const int kk = tid % TK, dp = tid / TK;
            float acc[R];
#pragma unroll
            for (int r = 0; r < R; ++r) acc[r] = 0.f;
            const float* kr = sk + kk * SKS + dp * DD;
            const float* qr = sq + dp * DD;
#pragma unroll 4
            for (int d = 0; d < DD; d += 4) {
                const float4 k4 = *reinterpret_cast<const float4*>(kr + d);
#pragma unroll
                for (int r = 0; r < R; ++r) {
                    const float4 q4 = *reinterpret_cast<const float4*>(qr + r * HDP + d);
                    acc[r] += q4.x * k4.x + q4.y * k4.y + q4.z * k4.z + q4.w * k4.w;
                }
            }
#pragma unroll
            for (int r = 0; r < R; ++r) sp[(dp * R + r) * TK + kk] = acc[r];
        }
        __syncthreads();

        // online softmax: warp w takes rows w, w + 4, ...
        for (int r = warp; r < R; r += NT / 32) {
            constexpr int KPL = TK / 32;
            float s[KPL];
            float tmax = -INFINITY;
            const int pos = spos[r];
#pragma unroll
            for (int x = 0; x < KPL; ++x) {
                const int kk = lane + 32 * x;
                float v = 0.f;
#pragma unroll
                for (int dp = 0; dp < NDP; ++dp) v += sp[(dp * R + r) * TK + kk];
                const int64_t j = j0 + kk;
                s[x] = (j <= pos && j < kv_end) ? v : -INFINITY;
                tmax = fmaxf(tmax, s[x]);
            }
            tmax = warp_max(tmax);
            // Lane 0 alone reads and writes this row's running max/sum; the others get it by shuffle (all lanes
            // reading sm[r] while lane 0 writes it would be an intra-warp hazard that only warp-synchronous
            // execution orders).
            float m_old = 0.f;
            if (lane == 0) m_old = sm[r];
            m_old = __shfl_sync(0xffffffffu, m_old, 0);
            const float m_new = fmaxf(m_old, tmax);
            float sum = 0.f;
#pragma unroll
            for (int x = 0; x < KPL; ++x) {
                const float p = m_new == -INFINITY ? 0.f : exp2f(s[x] - m_new);
                sp[r * TK + lane + 32 * x] = p;
                sum += p;
            }
            sum = warp_sum(sum);
            if (lane == 0) {
                const float alpha = m_new == -INFINITY ? 1.f : exp2f(m_old - m_new);
                sm[r] = m_new;
                sl[r] = sl[r] * alpha + sum;
                sa[r] = alpha;
            }
        }
        __syncthreads();

        {  // O = O * alpha + P V: thread (column dc, key group kp)
            const int dc = tid % DC, kp = tid / DC;
#pragma unroll
            for (int r = 0; r < R; ++r) {
                const float al = sa[r];
#pragma unroll
                for (int i = 0; i < DPT; ++i) o[r][i] *= al;
            }
            constexpr int KPG = TK / KP;
#pragma unroll 2
            for (int kk = kp * KPG; kk < (kp + 1) * KPG; kk += 4) {
                float vv[4][DPT];
#pragma unroll
                for (int c = 0; c < 4; ++c)
#pragma unroll
                    for (int i = 0; i < DPT; ++i) vv[c][i] = sv[(kk + c) * HDP + dc + i * DC];
#pragma unroll
                for (int r = 0; r < R; ++r) {
                    const float4 p4 = *reinterpret_cast<const float4*>(sp + r * TK + kk);
#pragma unroll
                    for (int i = 0; i < DPT; ++i)
                        o[r][i] += p4.x * vv[0][i] + p4.y * vv[1][i] + p4.z * vv[2][i] + p4.w * vv[3][i];
                }
            }
        }
        __syncthreads();
    }

    const int dc = tid % DC, kp = tid / DC;
    if constexpr (KP > 1) {  // fold the key groups' partial O into group 0 (sk is free now)
        for (int part = 1; part < KP; ++part) {
            if (kp == part)
#pragma unroll
                for (int r = 0; r < R; ++r) sk[r * HDP + dc] = o[r][0];
            __syncthreads();
            if (kp == 0)
#pragma unroll
                for (int r = 0; r < R; ++r) o[r][0] += sk[r * HDP + dc];
            __syncthreads();
        }
    }
    if (kp != 0) return;
#pragma unroll
    for (int r = 0; r < R; ++r) {
        const int64_t i = row0 + r;
        if (i >= total_rows) break;
        const int64_t t = t0 + i / a.group;
        const int h = g * a.group + int(i % a.group);
        if (a.split_len) {
            const int64_t slot = (t * a.n_head + h) * a.n_splits + blockIdx.z;
#pragma unroll
            for (int x = 0; x < DPT; ++x)
                if (dc + x * DC < a.hd) a.part_o[slot * a.hd + dc + x * DC] = o[r][x];
            if (dc == 0) {
                a.part_ml[slot * 2] = sm[r];
                a.part_ml[slot * 2 + 1] = sl[r];
            }
        } else {
            const float l = sl[r];
            const float inv = l > 0.f ? 1.f / l : 0.f;
            float* orow = a.out + t * int64_t(a.n_head) * a.hd + int64_t(h) * a.hd;
#pragma unroll
            for (int x = 0; x < DPT; ++x)
                if (dc + x * DC < a.hd) orow[dc + x * DC] = o[r][x] * inv;
        }
    }
}

}  // namespace imp::cuda_kernels

namespace imp::cuda_kernels {

// Instantiations: head_dim padded to 64 / 128 / 256; rows per block 4 / 8 / 16 / 32 (16 at most for 256).
// Returns the launch error.
template <typename E, int HDP, int R> cudaError_t attn_launch_one(const AttnArgs& a, dim3 grid, Queue s) {
    return launch(attn_kernel<E, HDP, R>, grid, dim3(kAttnThreads), attn_smem_bytes<HDP, R>(), s.stream, s.pdl, a);
}
template <typename E, int HDP> cudaError_t attn_launch_hd(const AttnArgs& a, int rows, dim3 grid, Queue s) {
    if (rows == 4) return attn_launch_one<E, HDP, 4>(a, grid, s);
    if (rows == 8) return attn_launch_one<E, HDP, 8>(a, grid, s);
    if (rows == 16 || HDP > 128) return attn_launch_one<E, HDP, 16>(a, grid, s);
    if constexpr (HDP <= 128) return attn_launch_one<E, HDP, 32>(a, grid, s);
    return cudaErrorInvalidValue;
}
template <typename E> cudaError_t attn_launch_typed(const AttnArgs& a, int hdp, int rows, dim3 grid, Queue s) {
    if (hdp == 64) return attn_launch_hd<E, 64>(a, rows, grid, s);
    if (hdp == 128) return attn_launch_hd<E, 128>(a, rows, grid, s);
    return attn_launch_hd<E, 256>(a, rows, grid, s);
}
template <typename E, int HDP, int R> cudaError_t attn_init_one() {
    return cudaFuncSetAttribute(attn_kernel<E, HDP, R>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                int(attn_smem_bytes<HDP, R>()));
}
// First error, or cudaSuccess.
template <typename E> cudaError_t attn_init_typed() {
    const cudaError_t errs[] = {attn_init_one<E, 64, 4>(),   attn_init_one<E, 64, 8>(),   attn_init_one<E, 64, 16>(),
                                attn_init_one<E, 64, 32>(),  attn_init_one<E, 128, 4>(),  attn_init_one<E, 128, 8>(),
                                attn_init_one<E, 128, 16>(), attn_init_one<E, 128, 32>(), attn_init_one<E, 256, 4>(),
                                attn_init_one<E, 256, 8>(),  attn_init_one<E, 256, 16>()};
    for (cudaError_t e : errs)
        if (e != cudaSuccess) return e;
    return cudaSuccess;
}

}  // namespace imp::cuda_kernels
