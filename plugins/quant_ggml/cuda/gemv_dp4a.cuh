// quant_ggml CUDA: the one-token GEMV math of Q4_K on the integer dot-product units (dp4a) instead of the tensor
// cores, on the same tiled layout and in the same kernel frame (gemv_tiled.cuh, template flag DP).
//
// Why. The MMA form is issue-bound (ncu, H100: ~40 instructions per 16x16 k-step, 58 % issue utilisation): each
// 32-column scale block needs its own accumulator scaled in fp32, and the codes are converted to bf16 one register
// at a time. Here x is quantized per 256-column chunk to two int8 parts, x ~= s (h + l / 254) with
// s = max|x| / 127, |h|, |l| <= 127 (error <= s / 508, ~1.5e-5 of the chunk's largest |x|); a lane's word of 8
// nibbles gives rows g and g + 8 four codes each with one mask (bytes in column order 0, 2, 1, 3, so x is staged in
// that order), and 4 dp4a per k-step do the dot products. The 6-bit scales and mins multiply the per-block integer
// sums (all exact in int32); fp32 appears once per chunk and row: s * (d * (H + L / 254) - dmin * M / 254).
//
// Shared memory per chunk of the CTA (fits in the B-fragment space the MMA form reserves, 1 KB per Q4_K chunk):
// 64 uint2 items {h bytes, l bytes} per (k-step, lane c), 32 ints sum(254 h + l) per (scale block, lane c), and the
// chunk's scale s.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "tile_layout.h"

namespace imp::ggml::cuda {

// Layouts whose one-token GEMV takes the dp4a form by default (setting gemv_dp4a; dense and experts), and the
// layouts with a dp4a tile below: those and Q8_0 (dense only, setting gemv_q8_dp4a).
template <class L>
constexpr bool kDp4aLayout = std::is_same_v<L, LayoutQ4_K> || std::is_same_v<L, LayoutQ6_K>;
template <class L>
constexpr bool kDp4aTile = kDp4aLayout<L> || std::is_same_v<L, LayoutQ8_0>;

// a (4 unsigned bytes) . b (4 signed bytes) + c.
__device__ __forceinline__ int dp4a_us(uint32_t a, uint32_t b, int c) {
    int d;
    asm("dp4a.u32.s32 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
    return d;
}

// Indexed by the CTA's k-steps (16 columns each, from its first column): items [k-step][c 4], sums
// [k-step pair = 32-column scale block][c 4], scales [group of 16 k-steps = 256 columns].
struct Dp4aSmem {
    uint2* q;
    int* xs;
    float* sx;
};

__device__ __forceinline__ Dp4aSmem dp4a_smem(void* base, int n_ks) {
    const int n_pad = (n_ks + 15) / 16 * 16;  // staged in whole groups of 16 k-steps
    Dp4aSmem m;
    m.q = static_cast<uint2*>(base);
    m.xs = reinterpret_cast<int*>(m.q + n_pad * 4);
    m.sx = reinterpret_cast<float*>(m.xs + n_pad / 2 * 4);
    return m;
}
// Bytes of Dp4aSmem for n_ks k-steps (staged in groups of 16).
__host__ __device__ constexpr size_t dp4a_smem_bytes(int64_t n_ks) {
    const int64_t g = (n_ks + 15) / 16;
    return size_t(g * 16 * 4 * 8 + g * 8 * 4 * 4 + g * 4);
}

// Quantizes x's columns [col0, col0 + 16 n_ks) into m, in groups of 256 columns (one scale each; the last group
// may read columns past the CTA's, up to cols, and zeros past cols); one warp per group, lane l takes columns
// 8 l .. 8 l + 7 = items (k-step l / 2, c = 2 (l % 2)) and (l / 2, c + 1). norm (optional): x[c] * rs * norm[c]
// is quantized instead (the RMSNorm of a fused matmul, rs = 1 / rms of the row). Returns this thread's sum of x[c]^2
// over the columns it loaded (before norm; with col0 = 0 and all chunks staged, the CTA's threads together cover
// every column once, so the caller can pass rs = 1 and apply the row's 1 / rms to the result; unused, it costs
// nothing).
// GLU (the MoE experts' x_swiglu): x holds [gate | up] (2 cols floats) and the staged value is silu(gate) * up.
template <bool GLU = false>
__device__ __forceinline__ float dp4a_stage(const float* x, int cols, int x_vec, int col0, int n_ks,
                                            const Dp4aSmem& m, const float* norm = nullptr, float rs = 1.f) {
    float ssq = 0.f;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, n_warps = blockDim.x >> 5;
    const int n_groups = (n_ks + 15) / 16;
    const auto load8 = [&](const float* xp, int col, float (&v)[8]) {
        if (x_vec && col + 8 <= cols) {
            const float4 a = __ldg(reinterpret_cast<const float4*>(xp + col));
            const float4 b = __ldg(reinterpret_cast<const float4*>(xp + col) + 1);
            v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
        } else {
#pragma unroll
            for (int i = 0; i < 8; ++i) v[i] = col + i < cols ? __ldg(xp + col + i) : 0.f;
        }
    };
    for (int ch = warp; ch < n_groups; ch += n_warps) {
        const int col = col0 + ch * 256 + 8 * lane;
        float v[8];
        load8(x, col, v);
        if constexpr (GLU) {
            float u[8];
            load8(x + cols, col, u);
#pragma unroll
            for (int i = 0; i < 8; ++i) v[i] = v[i] / (1.f + expf(-v[i])) * u[i];
        }
#pragma unroll
        for (int i = 0; i < 8; ++i) ssq = fmaf(v[i], v[i], ssq);
        if (norm) {
#pragma unroll
            for (int i = 0; i < 8; ++i) v[i] = col + i < cols ? v[i] * rs * __ldg(norm + col + i) : 0.f;
        }
        float mx = 0.f;
#pragma unroll
        for (int i = 0; i < 8; ++i) mx = fmaxf(mx, fabsf(v[i]));
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xFFFFFFFFu, mx, o));
        const float s = mx > 0.f ? mx / 127.f : 1.f, inv = mx > 0.f ? 127.f / mx : 0.f;
        int h[8], l[8];
#pragma unroll
        for (int i = 0; i < 8; ++i) {
            // |t| <= 127 and |t - h| <= 1/2 (up to rounding of inv, which rounds back to 127), so no clamps.
            const float t = v[i] * inv;
            h[i] = __float2int_rn(t);
            l[i] = __float2int_rn((t - float(h[i])) * 254.f);
        }
        int sum[2];
#pragma unroll
        for (int half = 0; half < 2; ++half) {
            const int* hh = h + 4 * half;
            const int* ll = l + 4 * half;
            // Column order in a word: 0, 2, 1, 3.
            const uint32_t hw = uint32_t(hh[0] & 0xFF) | uint32_t(hh[2] & 0xFF) << 8 | uint32_t(hh[1] & 0xFF) << 16 |
                                uint32_t(hh[3] & 0xFF) << 24;
            const uint32_t lw = uint32_t(ll[0] & 0xFF) | uint32_t(ll[2] & 0xFF) << 8 | uint32_t(ll[1] & 0xFF) << 16 |
                                uint32_t(ll[3] & 0xFF) << 24;
            m.q[ch * 64 + (lane >> 1) * 4 + 2 * (lane & 1) + half] = make_uint2(hw, lw);
            sum[half] = 254 * (hh[0] + hh[1] + hh[2] + hh[3]) + (ll[0] + ll[1] + ll[2] + ll[3]);
        }
        // Scale block j = k-steps 2 j, 2 j + 1 = lanes 4 j .. 4 j + 3: lane 4 j + i (i < 2) adds lane 4 j + i + 2.
#pragma unroll
        for (int half = 0; half < 2; ++half) {
            const int other = __shfl_down_sync(0xFFFFFFFFu, sum[half], 2);
            if ((lane & 3) < 2) m.xs[ch * 32 + (lane >> 2) * 4 + 2 * (lane & 1) + half] = sum[half] + other;
        }
        if (lane == 0) m.sx[ch] = s;
    }
    return ssq;
}

// One Q6_K tile (one 256-column super-block of rows g and g + 8, 16-column scale blocks = k-steps) for lane (g, c):
// codes are 6 bits, low nibble as Q4_K and the high pair from qh (bits 16 h + 8 (s % 2) + 2 k of word s / 2), moved
// to bits 4-5 of each byte; value = d * sc * (code - 32), so each k-step's dot starts at -32 * sum x.
__device__ __forceinline__ void dp4a_tile(const LayoutQ6_K::Frag& f, const Dp4aSmem& m, int ch, int lane,
                                          float (&y)[2]) {
    const int c = lane & 3;
    const uint2* xq = m.q + ch * 64 + c;
    int H[2] = {0, 0}, Lo[2] = {0, 0};
#pragma unroll
    for (int s = 0; s < 16; ++s) {
        const uint2 xv = xq[4 * s];
        const int nh = -32 * dp4a_us(0x01010101u, xv.x, 0), nl = -32 * dp4a_us(0x01010101u, xv.y, 0);
        const uint32_t qh = f.qh[s >> 1] >> (8 * (s & 1));
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            // Row g: pairs of columns 0, 2, 1, 3 at bits 0, 4, 16, 20 (row g + 8: 2 bits higher) -> bits 4, 12, 20, 28.
            const uint32_t hp = qh >> (2 * r);
            const uint32_t hb = ((hp << 4) & 0x00300030u) | ((hp << 8) & 0x30003000u);
            const uint32_t code = ((f.q[s] >> (4 * r)) & 0x0F0F0F0Fu) | hb;
            const int sc = int(int8_t(uint8_t(f.sc[r][s >> 2] >> (8 * (s & 3)))));
            H[r] += sc * dp4a_us(code, xv.x, nh);
            Lo[r] += sc * dp4a_us(code, xv.y, nl);
        }
    }
    const float s = m.sx[ch];
#pragma unroll
    for (int r = 0; r < 2; ++r)
        y[r] = fmaf(s * f16_to_float(f.d >> (16 * r)), float(H[r]) + float(Lo[r]) * (1.f / 254.f), y[r]);
}

// One Q4_K tile (one 256-column super-block of rows g and g + 8) for lane (g, c): y[0] (row g) and y[1] (row g + 8)
// += this lane's 64 columns' share.
__device__ __forceinline__ void dp4a_tile(const LayoutQ4_K::Frag& f, const Dp4aSmem& m, int ch, int lane,
                                          float (&y)[2]) {
    const int c = lane & 3;
    const uint2* xq = m.q + ch * 64 + c;
    const int* xs = m.xs + ch * 32 + c;
    const K4Meta mt[2] = {k4_meta(f.m[0]), k4_meta(f.m[1])};
    int H[2] = {0, 0}, Lo[2] = {0, 0}, M[2] = {0, 0};
#pragma unroll
    for (int j = 0; j < 8; ++j) {
        int dh[2] = {0, 0}, dl[2] = {0, 0};
#pragma unroll
        for (int ss = 0; ss < 2; ++ss) {
            const int s = 2 * j + ss;
            const uint2 xv = xq[4 * s];
            const uint32_t w0 = f.q[s] & 0x0F0F0F0Fu, w1 = (f.q[s] >> 4) & 0x0F0F0F0Fu;
            dh[0] = dp4a_us(w0, xv.x, dh[0]);
            dl[0] = dp4a_us(w0, xv.y, dl[0]);
            dh[1] = dp4a_us(w1, xv.x, dh[1]);
            dl[1] = dp4a_us(w1, xv.y, dl[1]);
        }
        const int xsum = xs[4 * j];
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            const int sc = int((mt[r].p[1 + (j >> 2)] >> (8 * (j & 3))) & 0xFF);
            const int mn = int((mt[r].p[3 + (j >> 2)] >> (8 * (j & 3))) & 0xFF);
            H[r] += sc * dh[r];
            Lo[r] += sc * dl[r];
            M[r] += mn * xsum;
        }
    }
    const float s = m.sx[ch];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        const float d = f16_to_float(mt[r].p[0]), dmin = f16_to_float(mt[r].p[0] >> 16);
        const float v = d * (float(H[r]) + float(Lo[r]) * (1.f / 254.f)) - dmin * float(M[r]) * (1.f / 254.f);
        y[r] = fmaf(s, v, y[r]);
    }
}

// One Q8_0 tile (32 columns = one block = the staged scale block ch, k-steps 2 ch and 2 ch + 1, of rows g and g + 8)
// for lane (g, c). Word 2 s + i of the lane holds columns 4 c + 2 i + {0, 1} of row g (bytes 0, 1) and row g + 8
// (bytes 2, 3) in k-step s, as codes q + 128; one byte_perm per row and k-step (LayoutQ8_0::dp4a_codes, checked on
// the CPU by cuda_layout_test) gives the four codes in the staged column order 0, 2, 1, 3. The offset 128 comes off through the staged sum: sum (u - 128)(254 h + l) =
// 254 sum u h + sum u l - 128 xs (|.| < 2^27, exact in int32).
__device__ __forceinline__ void dp4a_tile(const LayoutQ8_0::Frag& f, const Dp4aSmem& m, int ch, int lane,
                                          float (&y)[2]) {
    const int c = lane & 3;
    const uint2 x0 = m.q[(2 * ch) * 4 + c], x1 = m.q[(2 * ch + 1) * 4 + c];
    const int xo = 128 * m.xs[ch * 4 + c];
    const float s = m.sx[ch >> 3] * (1.f / 254.f);
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        const uint32_t u0 = LayoutQ8_0::dp4a_codes(f, 0, r), u1 = LayoutQ8_0::dp4a_codes(f, 1, r);
        const int h = dp4a_us(u1, x1.x, dp4a_us(u0, x0.x, 0));
        const int l = dp4a_us(u1, x1.y, dp4a_us(u0, x0.y, 0));
        const int v = 254 * h + l - xo;
        y[r] = fmaf(s * f16_to_float(f.d >> (16 * r)), float(v), y[r]);
    }
}

}  // namespace imp::ggml::cuda
