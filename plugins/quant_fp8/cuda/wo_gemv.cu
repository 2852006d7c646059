// Weight-only GEMV (1-8 tokens, and one token per (token, slot) pair of an expert matmul) for FP8 E4M3 and NVFP4
// weights on the CUDA cores. Each weight byte is read once, with 16-byte streaming loads (L1 not allocated).
//
// A CTA of 8 warps holds 8 / kw row groups of kw warps; a row group owns RW consecutive rows (4 for 1-2 tokens, 2
// for 4-8) and its kw * 32 lanes split the row's 16-byte chunks (chunk ch to lane ch % (kw * 32)), so each lane
// reads the same columns of its RW rows and loads the matching activations once for all of them. The next chunk's
// loads are issued before the current one is computed.
// Dequantization in registers:
//   NVFP4: a 32-bit word holds 8 codes in the nibble order of wo_layout.h; (q & 0x80008000) | ((q >> 3) &
//          0x0E000E00) puts two codes' sign and magnitude bits into a half2 whose values are exactly e2m1 * 2^-14
//          (subnormal halves included), converted to fp32; per 16-element group the partial dot product is
//          multiplied by e4m3(scale) * 2^14, and the row's sum by the global scale at the end.
//   FP8:   cvt e4m3x2 -> f16x2 (exact), then fp32; the row's sum is multiplied by its weight scale at the end.
// Sums are fp32 (FMA), reduced over lanes with shuffles and over the row group's warps in shared memory; each
// output is written once, deterministically. PDL: the first chunk's weights are loaded before griddepcontrol.wait
// (dense); an expert matmul waits first (its expert id is an activation).
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <string>

#include "imp/cuda/check.h"
#include "imp/cuda/launch.cuh"
#include "imp/error.h"
#include "wo_decode.cuh"
#include "wo_kernels.h"

namespace imp::wo {
namespace {

constexpr int kWarps = 8;

struct KP {
    const uint8_t* w;
    uint64_t mat_bytes;
    int64_t ld, scale_ld;
    uint64_t scale_off, post_off;
    int n_post, rows, cols, nch;
    const float* x;
    int64_t xs;
    float* y;
    int64_t ys;
    int n_tokens, accumulate;
    const int32_t* ids;
    const int32_t* groups;    // grouped expert matmul: [item][3] = expert (-1: ids out of range), start, count
    const int32_t* n_groups;  // items at or past *n_groups do nothing
    const int32_t* order;     // pairs sorted by expert
    int n_expert, top_k, x_per_slot, zero_invalid, pair0, kw, x_vec;
};

// 8 activations at column col (col < cols); zero past cols.
__device__ __forceinline__ void load_x(const KP& p, const float* xt, int col, float (&v)[8]) {
    if (p.x_vec && col + 8 <= p.cols) {
        const float4 a = __ldg(reinterpret_cast<const float4*>(xt + col));
        const float4 b = __ldg(reinterpret_cast<const float4*>(xt + col) + 1);
        v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
    } else {
#pragma unroll
        for (int e = 0; e < 8; ++e) v[e] = col + e < p.cols ? __ldg(xt + col + e) : 0.f;
    }
}

template <Codec C>
struct Chunk {
    uint4 q;
    uint32_t s;  // NVFP4: the chunk's two scale bytes
};

template <Codec C, int RW>
__device__ __forceinline__ void load_chunk(const KP& p, const uint8_t* m, int r0, int ch, Chunk<C> (&c)[RW]) {
#pragma unroll
    for (int r = 0; r < RW; ++r) {
        if (ch < p.nch && r0 + r < p.rows) {
            c[r].q = ld_stream(m + int64_t(r0 + r) * p.ld + int64_t(ch) * 16);
            if constexpr (C == Codec::NVFP4)
                c[r].s = __ldg(reinterpret_cast<const unsigned short*>(m + p.scale_off + int64_t(r0 + r) * p.scale_ld +
                                                                       int64_t(ch) * 2));
        } else {
            c[r].q = make_uint4(0, 0, 0, 0);
            c[r].s = 0;
        }
    }
}

template <Codec C, int T, int RW>
__device__ __forceinline__ void compute(const KP& p, const float* x, const int64_t (&xo)[T], int ntok,
                                        const Chunk<C> (&c)[RW], int ch, float (&acc)[RW][T]) {
    if (ch >= p.nch) return;
    if constexpr (C == Codec::NVFP4) {
#pragma unroll
        for (int g = 0; g < 2; ++g) {
            float part[RW][T];
#pragma unroll
            for (int r = 0; r < RW; ++r)
#pragma unroll
                for (int t = 0; t < T; ++t) part[r][t] = 0.f;
#pragma unroll
            for (int j = 0; j < 2; ++j) {
                const int col = ch * 32 + 16 * g + 8 * j;
                if (col >= p.cols) continue;
                float wv[RW][8];
#pragma unroll
                for (int r = 0; r < RW; ++r) dec_nvfp4(word(c[r].q, 2 * g + j), wv[r]);
#pragma unroll
                for (int t = 0; t < T; ++t) {
                    if (t >= ntok) continue;
                    float xv[8];
                    load_x(p, x + xo[t], col, xv);
#pragma unroll
                    for (int r = 0; r < RW; ++r)
#pragma unroll
                        for (int e = 0; e < 8; ++e) part[r][t] = fmaf(wv[r][e], xv[e], part[r][t]);
                }
            }
#pragma unroll
            for (int r = 0; r < RW; ++r) {
                const float sc = e4m3(c[r].s >> (8 * g)) * 16384.f;
#pragma unroll
                for (int t = 0; t < T; ++t) acc[r][t] = fmaf(part[r][t], sc, acc[r][t]);
            }
        }
    } else {
#pragma unroll
        for (int j = 0; j < 2; ++j) {
            const int col = ch * 16 + 8 * j;
            if (col >= p.cols) continue;
            float wv[RW][8];
#pragma unroll
            for (int r = 0; r < RW; ++r) {
                dec_fp8(word(c[r].q, 2 * j), wv[r]);
                dec_fp8(word(c[r].q, 2 * j + 1), wv[r] + 4);
            }
#pragma unroll
            for (int t = 0; t < T; ++t) {
                if (t >= ntok) continue;
                float xv[8];
                load_x(p, x + xo[t], col, xv);
#pragma unroll
                for (int r = 0; r < RW; ++r)
#pragma unroll
                    for (int e = 0; e < 8; ++e) acc[r][t] = fmaf(wv[r][e], xv[e], acc[r][t]);
            }
        }
    }
}

template <Codec C, int T>
__global__ void __launch_bounds__(kWarps * 32) wo_gemv_kernel(KP p) {
    constexpr int RW = T <= 2 ? 4 : 2;
    __shared__ float red[kWarps][RW * T];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int kw = p.kw, groups = kWarps / kw;
    const int gi = warp / kw, li = (warp % kw) * 32 + lane, L = kw * 32;
    const int r0 = (int(blockIdx.x) * groups + gi) * RW;
    const uint8_t* m = p.w;
    const float* x = p.x;
    float* y = p.y;
    ::imp::cuda::pdl_launch_dependents();
    Chunk<C> cur[RW], nxt[RW];
    int64_t xo[T], yo[T];  // row offsets of each token's activations and outputs
    int ntok = p.n_tokens;
    if (p.ids) {
        ::imp::cuda::pdl_wait();
        const int item = p.pair0 + int(blockIdx.y);
        int e = 0, start = item, cnt = 1;
        if (p.groups) {
            if (item >= *p.n_groups) return;  // the whole CTA leaves (one item per CTA)
            e = p.groups[3 * item];
            start = p.groups[3 * item + 1];
            cnt = p.groups[3 * item + 2];
        } else {
            e = p.ids[item];
        }
        ntok = cnt;
#pragma unroll
        for (int t = 0; t < T; ++t) {
            const int pair = t < cnt ? (p.groups ? p.order[start + t] : item) : 0;
            xo[t] = int64_t(p.x_per_slot ? pair : pair / p.top_k) * p.xs;
            yo[t] = int64_t(pair) * p.ys;
        }
        if (e < 0 || e >= p.n_expert) {  // the whole CTA leaves
            const int i = int(threadIdx.x), row = int(blockIdx.x) * groups * RW + i;
            if (p.zero_invalid && i < groups * RW && row < p.rows)
#pragma unroll
                for (int t = 0; t < T; ++t)
                    if (t < cnt) y[yo[t] + row] = 0.f;
            return;
        }
        m += uint64_t(e) * p.mat_bytes;
        load_chunk<C, RW>(p, m, r0, li, cur);
    } else {
#pragma unroll
        for (int t = 0; t < T; ++t) {
            xo[t] = int64_t(t) * p.xs;
            yo[t] = int64_t(t) * p.ys;
        }
        load_chunk<C, RW>(p, m, r0, li, cur);
        ::imp::cuda::pdl_wait();
    }
    float acc[RW][T];
#pragma unroll
    for (int r = 0; r < RW; ++r)
#pragma unroll
        for (int t = 0; t < T; ++t) acc[r][t] = 0.f;
    for (int ch = li; ch < p.nch; ch += L) {
        load_chunk<C, RW>(p, m, r0, ch + L, nxt);
        compute<C, T, RW>(p, x, xo, ntok, cur, ch, acc);
#pragma unroll
        for (int r = 0; r < RW; ++r) cur[r] = nxt[r];
    }
#pragma unroll
    for (int r = 0; r < RW; ++r)
#pragma unroll
        for (int t = 0; t < T; ++t) {
            float v = acc[r][t];
#pragma unroll
            for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xFFFFFFFFu, v, o);
            if (lane == 0) red[warp][r * T + t] = v;
        }
    __syncthreads();
    const int tid = int(threadIdx.x);
    if (tid < groups * RW * T) {
        const int g2 = tid / (RW * T), idx = tid % (RW * T), r = idx / T, t = idx % T;
        float v = 0.f;
        for (int w = 0; w < kw; ++w) v += red[g2 * kw + w][idx];
        const int row = (int(blockIdx.x) * groups + g2) * RW + r;
        if (row < p.rows && t < ntok) {
            const float* post = reinterpret_cast<const float*>(m + p.post_off);
            v *= C == Codec::NVFP4 ? post[0] : post[p.n_post == 1 ? 0 : row];
            float* yp = y + yo[t] + row;
            *yp = p.accumulate ? *yp + v : v;
        }
    }
}

template <Codec C, int T>
void launch(const KP& p, int rows_per_cta, int n_items, bool pdl, cudaStream_t st) {
    for (int i0 = 0; i0 < n_items; i0 += 65535) {
        KP q = p;
        q.pair0 = i0;
        const unsigned gy = unsigned(n_items - i0 < 65535 ? n_items - i0 : 65535);
        IMP_CUDA_CHECK(::imp::cuda::launch(wo_gemv_kernel<C, T>, dim3(unsigned(::imp::cuda::div_up(p.rows, rows_per_cta)), gy),
                                           dim3(kWarps * 32), 0, st, pdl, q));
    }
}

template <Codec C>
void launch_codec(const KP& p, int T, int n_items, bool pdl, cudaStream_t st) {
    const int groups = kWarps / p.kw;
    if (T <= 1)
        launch<C, 1>(p, groups * 4, n_items, pdl, st);
    else if (T <= 2)
        launch<C, 2>(p, groups * 4, n_items, pdl, st);
    else if (T <= 4)
        launch<C, 4>(p, groups * 2, n_items, pdl, st);
    else
        launch<C, 8>(p, groups * 2, n_items, pdl, st);
}

}  // namespace

int auto_kw(const Layout& l) {
    const int64_t nch = l.ld / 16;
    int kw = 8;
    while (kw > 1 && nch < int64_t(kw) * 32 * 2) kw >>= 1;
    return kw;
}

void gemv(const Layout& l, const GemvArgs& a, cudaStream_t st) {
    const bool experts = a.ids != nullptr, grouped = experts && a.groups != nullptr;
    const int n_items = grouped ? a.n_items : (experts ? a.n_pairs : 1);
    if (n_items <= 0 || (!experts && a.n_tokens <= 0)) return;
    if (!experts && a.n_tokens > kMaxGemvTokens)
        throw Error("weight-only GEMV called with " + std::to_string(a.n_tokens) + " tokens, at most " +
                    std::to_string(kMaxGemvTokens));
    const int kw = a.kw > 0 ? a.kw : auto_kw(l);
    if (kw != 1 && kw != 2 && kw != 4 && kw != 8)
        throw Error("weight-only GEMV: warps per row group " + std::to_string(kw) + " is not 1, 2, 4 or 8");
    KP p{};
    p.w = a.w;
    p.mat_bytes = l.bytes;
    p.ld = l.ld;
    p.scale_ld = l.scale_ld;
    p.scale_off = l.scale_off;
    p.post_off = l.post_off;
    p.n_post = int(l.n_post);
    p.rows = int(l.rows);
    p.cols = int(l.cols);
    p.nch = int(l.ld / 16);
    p.x = a.x;
    p.xs = a.xs;
    p.y = a.y;
    p.ys = a.ys;
    p.n_tokens = grouped ? kExpertGroup : (experts ? 1 : a.n_tokens);
    p.accumulate = a.accumulate ? 1 : 0;
    p.ids = a.ids;
    p.groups = a.groups;
    p.n_groups = a.n_groups;
    p.order = a.order;
    p.n_expert = a.n_expert;
    p.top_k = a.top_k > 0 ? a.top_k : 1;
    p.x_per_slot = a.x_per_slot ? 1 : 0;
    p.zero_invalid = a.zero_invalid ? 1 : 0;
    p.kw = kw;
    p.x_vec = ::imp::cuda::aligned16(a.x) && a.xs % 4 == 0;
    if (l.codec == Codec::NVFP4)
        launch_codec<Codec::NVFP4>(p, p.n_tokens, n_items, a.pdl, st);
    else
        launch_codec<Codec::FP8>(p, p.n_tokens, n_items, a.pdl, st);
}

}  // namespace imp::wo
