// quant_ggml CUDA: the grouped expert GEMM of prefill, on the tensor cores. One launch covers every work item
// (row block of 256 rows of one expert) x (group of up to 8 NT pairs routed to that expert, built on the device by
// experts_group with that group size): grid (row blocks, 1, groups); items past the device's group count exit.
//
// A CTA stages its pairs' activation rows (gathered through the group's pair order, all columns) as bf16 in shared
// memory once (with route.glu the staged value is silu(gate) * up of a [gate | up] row), then each of its 8 warps
// streams two 16-row groups of the expert's weights straight from global memory into MMA A fragments (the tiled
// layout of tile_layout.h keeps each lane's elements together; plain BF16 rows are read 8 bytes per lane and row),
// next chunk's loads in flight while the current one is computed. The codes are dequantized in registers to bf16
// (fp32 mul * q + add, rounded once to nearest even: within one bf16 rounding of the reference value) and
// multiplied by 8-token B fragments of the staged activations (m16n8k16, fp32 accumulation); n-tiles past the
// group's pairs are skipped. Each output (row, pair) is written once by one thread: deterministic, no atomics.
#pragma once
#include <algorithm>

#include "gemv_experts.cuh"

namespace imp::ggml::cuda {

constexpr int kGemmWarps = 8;
constexpr int kGemmRowGroups = 2 * kGemmWarps;  // row groups (16 rows) per CTA: two per warp
// Bytes of one staged activation row of kp bf16 columns: a multiple of 128 plus 32, so that the 8 rows an MMA's
// B fragment reads (8 bytes per lane, 4 lanes per row) fall on distinct banks.
__host__ __device__ constexpr int64_t gemm_b_stride(int64_t kp) {
    return (kp * 2 + 127) / 128 * 128 + 32;
}

// A operand of a tiled block type L: tile (rg, ch) of one expert.
template <class L>
struct GemmTiledA {
    using Frag = typename L::Frag;
    static constexpr int kChunkCols = L::kChunkCols, kSteps = L::kSteps;
    const uint8_t* w;
    int64_t rg_bytes;
    __device__ __forceinline__ void load(int rg, int ch, int lane, Frag& f) const {
        L::load(w + int64_t(rg) * rg_bytes + int64_t(ch) * L::kTileBytes, lane, f);
    }
    // Signed codes (code - kOffset) of A-register k as floats, exact.
    __device__ __forceinline__ static void codes_f(const Frag& f, int s, int k, float& v0, float& v1) {
        if constexpr (L::kNibbles) {  // bf16 pair 128 + code
            const uint32_t b = L::bits(f, s, k);
            v0 = __uint_as_float(b << 16) - float(128 + L::kOffset);
            v1 = __uint_as_float(b & 0xFFFF0000u) - float(128 + L::kOffset);
        } else {
            const uint32_t w = L::word(f, s, k);
            const int i = L::byte_index(k);
            v0 = __uint_as_float(__byte_perm(w, 0x4B, 0x4550 | i)) - float(8388608 + L::kOffset);
            v1 = __uint_as_float(__byte_perm(w, 0x4B, 0x4550 | (i + 1))) - float(8388608 + L::kOffset);
        }
    }
    // The four A registers of k-step s: bf16(mul * q + add) per element.
    __device__ __forceinline__ void regs(const Frag& f, int s, uint32_t (&a)[4]) const {
        const int sb = s / L::kSubSteps;
        const RowScale sc[2] = {L::scale(f, sb, 0), L::scale(f, sb, 1)};
#pragma unroll
        for (int k = 0; k < 4; ++k) {
            float v0, v1;
            codes_f(f, s, k, v0, v1);
            const RowScale& r = sc[k & 1];
            if constexpr (L::kHasMin)
                a[k] = pack_bf16x2(fmaf(r.mul, v0, r.add), fmaf(r.mul, v1, r.add));
            else
                a[k] = pack_bf16x2(r.mul * v0, r.mul * v1);
        }
    }
};

// A operand of a tiled nibble-code type L (experts_gemm_dequant = "bf16x2"): the A registers from bf16x2 arithmetic,
// 2 values an instruction pair instead of the fp32 path's ~9 instructions: the codes as bf16 (128 + code, exact)
// minus 128 + kOffset (exact: codes < 64), then code * mul + add in one bf16x2 FMA with mul and add rounded to bf16.
// Not the reference's bits: a value is within ~2^-8 of |mul * code| + |add| of the fp32 one (about a hundredth of a
// 4-bit step), where the fp32 path is within one bf16 rounding of the value.
template <class L>
struct GemmTiledA2 : GemmTiledA<L> {
    static_assert(L::kNibbles, "bf16x2 dequantization: codes as bf16 128 + code");
    using Frag = typename L::Frag;
    __device__ __forceinline__ void regs(const Frag& f, int s, uint32_t (&a)[4]) const {
        const int sb = s / L::kSubSteps;
        const RowScale sc[2] = {L::scale(f, sb, 0), L::scale(f, sb, 1)};
        const uint32_t mul[2] = {pack_bf16x2(sc[0].mul, sc[0].mul), pack_bf16x2(sc[1].mul, sc[1].mul)};
        const uint32_t add[2] = {pack_bf16x2(sc[0].add, sc[0].add), pack_bf16x2(sc[1].add, sc[1].add)};
        // -(128 + kOffset) as bf16 (0x4300 | v is 128 + v for v < 128), in both halves
        constexpr uint32_t kMinusBase = 0xC300C300u | uint32_t(L::kOffset) << 16 | uint32_t(L::kOffset);
#pragma unroll
        for (int k = 0; k < 4; ++k) {
            const uint32_t code = bf16x2_fma(L::bits(f, s, k), 0x3F803F80u, kMinusBase);  // (128 + q) - (128 + off)
            a[k] = bf16x2_fma(code, mul[k & 1], L::kHasMin ? add[k & 1] : 0x80008000u);
        }
    }
};

// A operand of BF16 rows (ld elements each, zero padded to a multiple of 8): 64-column chunks; lane (g, c) of
// k-step s holds 8 bytes of rows g and g + 8 at column 16 s + 4 c (the column order of the tiled layout).
struct GemmBf16A {
    struct Frag {
        uint32_t q[2][8];
    };
    static constexpr int kChunkCols = 64, kSteps = 4;
    const uint8_t* w;
    int64_t ld;
    int rows;
    __device__ __forceinline__ void load(int rg, int ch, int lane, Frag& f) const {
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            const int row = rg * kTileRows + (lane >> 2) + 8 * h;
#pragma unroll
            for (int s = 0; s < kSteps; ++s) {
                const int64_t col = int64_t(ch) * kChunkCols + 16 * s + 4 * (lane & 3);
                uint2 v = make_uint2(0u, 0u);
                if (row < rows && col < ld)
                    v = __ldg(reinterpret_cast<const uint2*>(w + (int64_t(row) * ld + col) * 2));
                f.q[h][2 * s] = v.x;
                f.q[h][2 * s + 1] = v.y;
            }
        }
    }
    __device__ __forceinline__ void regs(const Frag& f, int s, uint32_t (&a)[4]) const {
        a[0] = f.q[0][2 * s];
        a[1] = f.q[1][2 * s];
        a[2] = f.q[0][2 * s + 1];
        a[3] = f.q[1][2 * s + 1];
    }
};

struct GemmArgs {
    int64_t expert_bytes, b_stride;
    int chunks, kp, rows, cols, n_rg;
    ExpertsRoute route;
    int x_vec, accumulate, zero_invalid;
};

// Stages the activations of the CTA's n pairs into sb, rows up to the next multiple of 8 (rows t >= n and
// columns >= cols as zeros: the MMAs of the last 8-token tile read them).
__device__ __forceinline__ void gemm_stage_b(const GemmArgs& a, const float* const* xrow, int n, uint8_t* sb) {
    constexpr int kBatch = 4;
    const int q = a.kp / 4, total = (n + 7) / 8 * 8 * q;
    for (int i0 = threadIdx.x; i0 < total; i0 += kBatch * blockDim.x) {
        float4 v[kBatch];
#pragma unroll
        for (int b = 0; b < kBatch; ++b) {
            const int i = i0 + b * blockDim.x, t = i / q, col = 4 * (i % q);
            v[b] = make_float4(0.f, 0.f, 0.f, 0.f);
            if (i >= total || t >= n || col >= a.cols) continue;
            const float* xp = xrow[t] + col;
            if (col + 4 <= a.cols) {
                v[b] = load_x4(xp, a.x_vec);
                if (a.route.glu) v[b] = silu_mul4(v[b], load_x4(xp + a.cols, a.x_vec));
            } else {
                float e[4];
#pragma unroll
                for (int j = 0; j < 4; ++j) {
                    e[j] = col + j < a.cols ? __ldg(xp + j) : 0.f;
                    if (a.route.glu && col + j < a.cols) e[j] = silu_mul(e[j], __ldg(xp + a.cols + j));
                }
                v[b] = make_float4(e[0], e[1], e[2], e[3]);
            }
        }
#pragma unroll
        for (int b = 0; b < kBatch; ++b) {
            const int i = i0 + b * blockDim.x;
            if (i >= total) break;
            const int t = i / q, col = 4 * (i % q);
            *reinterpret_cast<uint2*>(sb + int64_t(t) * a.b_stride + 2 * col) =
                make_uint2(pack_bf16x2(v[b].x, v[b].y), pack_bf16x2(v[b].z, v[b].w));
        }
    }
}

// MINB: CTAs per SM the registers must allow (1, or 2: at most 128 registers a thread, [plugin.quant_ggml]
// experts_gemm_ctas; spills where the operands need more). The same arithmetic in the same order either way:
// the outputs are the same bits.
template <class A, int NT, int MINB>
__global__ void __launch_bounds__(kGemmWarps * 32, MINB) experts_gemm_kernel(A wa, GemmArgs a) {
    constexpr int BN = 8 * NT;
    extern __shared__ __align__(16) uint8_t smem_gemm[];
    __shared__ const float* xrow[BN];
    __shared__ float* orow[BN];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    ::imp::cuda::pdl_wait();  // groups, order and x come from earlier kernels
    const int2 item = resolve_item<BN>(a.route, xrow, orow);
    const int n = item.y;
    if (n == 0) return;
    __syncthreads();
    const int row0 = int(blockIdx.x) * kGemmRowGroups * kTileRows;
    if (item.x < 0 || item.x >= a.route.n_expert) {
        const int nr = min(kGemmRowGroups * kTileRows, a.rows - row0);
        if (a.zero_invalid)
            for (int i = threadIdx.x; i < n * nr; i += blockDim.x) orow[i / nr][row0 + i % nr] = 0.f;
        return;
    }
    wa.w += int64_t(item.x) * a.expert_bytes;
    const int rg0 = int(blockIdx.x) * kGemmRowGroups + 2 * warp;
    const bool has0 = rg0 < a.n_rg, has1 = rg0 + 1 < a.n_rg;
    typename A::Frag fa0, fa1, fb0, fb1;
    if (has0) {  // the first chunk's weights are in flight while the activations are staged
        wa.load(rg0, 0, lane, fa0);
        if (has1) wa.load(rg0 + 1, 0, lane, fa1);
    }
    gemm_stage_b(a, xrow, n, smem_gemm);
    __syncthreads();
    const int ntn = (n + 7) / 8;
    float acc[2][NT][4];
#pragma unroll
    for (int r = 0; r < 2; ++r)
#pragma unroll
        for (int j = 0; j < NT; ++j)
#pragma unroll
            for (int e = 0; e < 4; ++e) acc[r][j][e] = 0.f;
    const uint8_t* bl = smem_gemm + int64_t(lane >> 2) * a.b_stride + 8 * (lane & 3);
    const auto compute = [&](const typename A::Frag& f0, const typename A::Frag& f1, int ch) {
        const uint8_t* bc = bl + int64_t(ch) * A::kChunkCols * 2;
#pragma unroll
        for (int s = 0; s < A::kSteps; ++s) {
            uint32_t a0[4], a1[4];
            wa.regs(f0, s, a0);
            if (has1) wa.regs(f1, s, a1);
#pragma unroll
            for (int j = 0; j < NT; ++j) {
                if (j >= ntn) break;
                const uint2 b = *reinterpret_cast<const uint2*>(bc + int64_t(8 * j) * a.b_stride + 32 * s);
                mma_bf16(acc[0][j], a0[0], a0[1], a0[2], a0[3], b.x, b.y);
                if (has1) mma_bf16(acc[1][j], a1[0], a1[1], a1[2], a1[3], b.x, b.y);
            }
        }
    };
    if (has0) {
        for (int ch = 0; ch < a.chunks; ch += 2) {
            if (ch + 1 < a.chunks) {
                wa.load(rg0, ch + 1, lane, fb0);
                if (has1) wa.load(rg0 + 1, ch + 1, lane, fb1);
            }
            compute(fa0, fa1, ch);
            if (ch + 2 < a.chunks) {
                wa.load(rg0, ch + 2, lane, fa0);
                if (has1) wa.load(rg0 + 1, ch + 2, lane, fa1);
            }
            if (ch + 1 < a.chunks) compute(fb0, fb1, ch + 1);
        }
    }
    ::imp::cuda::pdl_launch_dependents();
    if (!has0) return;
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        if (r == 1 && !has1) break;
        const int row = (rg0 + r) * kTileRows + (lane >> 2);
#pragma unroll
        for (int j = 0; j < NT; ++j) {
            if (j >= ntn) break;
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                const int rr = row + 8 * (e >> 1), t = 8 * j + 2 * (lane & 3) + (e & 1);
                if (rr < a.rows && t < n) {
                    float* yp = orow[t] + rr;
                    *yp = a.accumulate ? *yp + acc[r][j][e] : acc[r][j][e];
                }
            }
        }
    }
}

template <class A, int NT, int MINB>
void launch_gemm_nt(const A& wa, const GemmArgs& ga, const ExpertsArgs& ea, cudaStream_t st) {
    cudaLaunchAttribute attr = pdl_attr();
    cudaLaunchConfig_t cfg{};
    cfg.blockDim = dim3(kGemmWarps * 32, 1, 1);
    cfg.dynamicSmemBytes = size_t(8 * NT) * size_t(ga.b_stride);
    cfg.stream = st;
    cfg.attrs = ea.pdl ? &attr : nullptr;
    cfg.numAttrs = ea.pdl ? 1 : 0;
    constexpr int kMaxZ = 65535;
    GemmArgs g = ga;
    for (int item0 = 0; item0 < ea.n_items; item0 += kMaxZ) {
        g.route.item0 = item0;
        cfg.gridDim = dim3(unsigned((ga.n_rg + kGemmRowGroups - 1) / kGemmRowGroups), 1,
                           unsigned(std::min(kMaxZ, ea.n_items - item0)));
        IMP_CUDA_CHECK(cudaLaunchKernelEx(&cfg, experts_gemm_kernel<A, NT, MINB>, wa, g));
    }
}

// One launch (per 65535 groups) of the GEMM with operand wa; nt: 8-token tiles per group (8, 4 or 2), as the
// groups were built; ctas: 1, or 2 (the register cap of two CTAs per SM; nt 2 and 4 only, else 1).
template <class A>
void launch_gemm(const A& wa, const DeviceLayout& l, const ExpertsArgs& ea, int nt, int ctas, int chunks,
                 cudaStream_t st) {
    const auto& r = ea.route;
    GemmArgs g{};
    g.expert_bytes = int64_t(ea.expert_bytes);
    g.chunks = chunks;
    g.kp = chunks * A::kChunkCols;
    g.b_stride = gemm_b_stride(g.kp);
    g.rows = int(l.rows);
    g.cols = int(l.cols);
    g.n_rg = int((l.rows + kTileRows - 1) / kTileRows);
    g.route = r;
    g.x_vec = (reinterpret_cast<uintptr_t>(r.x) % 16 == 0) && (r.xs % 4 == 0) && (!r.glu || l.cols % 4 == 0);
    g.accumulate = ea.accumulate;
    g.zero_invalid = ea.zero_invalid;
    const bool two = ctas == 2;
    switch (nt) {
        case 8: launch_gemm_nt<A, 8, 1>(wa, g, ea, st); break;
        case 4: two ? launch_gemm_nt<A, 4, 2>(wa, g, ea, st) : launch_gemm_nt<A, 4, 1>(wa, g, ea, st); break;
        case 2: two ? launch_gemm_nt<A, 2, 2>(wa, g, ea, st) : launch_gemm_nt<A, 2, 1>(wa, g, ea, st); break;
        default: throw Error("quant_ggml: experts GEMM: " + std::to_string(nt) + " token tiles per group");
    }
}

// The GEMM of a tiled type L: its A operand from fp32 dequantization, or with bf16x2 (the nibble-code types;
// experts_gemm_dequant) GemmTiledA2's.
template <class L>
void launch_tiled(const DeviceLayout& l, const ExpertsArgs& a, int nt, int ctas, bool bf16x2, cudaStream_t st) {
    const GemmTiledA<L> wa{static_cast<const uint8_t*>(a.w), l.rg_bytes};
    if constexpr (L::kNibbles)
        if (bf16x2) return launch_gemm(GemmTiledA2<L>{wa}, l, a, nt, ctas, int(l.chunks), st);
    launch_gemm(wa, l, a, nt, ctas, int(l.chunks), st);
}

// Raises the dynamic shared memory limit of the GEMM kernels of operand A to `bytes`.
template <class A, int NT, int MINB>
void prepare_gemm_nt(int bytes) {
    IMP_CUDA_CHECK(
        cudaFuncSetAttribute(experts_gemm_kernel<A, NT, MINB>, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
}
template <class A>
void prepare_gemm(int bytes) {
    prepare_gemm_nt<A, 8, 1>(bytes);
    prepare_gemm_nt<A, 4, 1>(bytes);
    prepare_gemm_nt<A, 2, 1>(bytes);
    prepare_gemm_nt<A, 4, 2>(bytes);
    prepare_gemm_nt<A, 2, 2>(bytes);
}
// prepare_gemm for both operands of a tiled type L (launch_tiled).
template <class L>
void prepare_tiled(int bytes) {
    prepare_gemm<GemmTiledA<L>>(bytes);
    if constexpr (L::kNibbles) prepare_gemm<GemmTiledA2<L>>(bytes);
}

}  // namespace imp::ggml::cuda
