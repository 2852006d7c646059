// Weight-only CUDA kernels: the grouped expert GEMM of prefill on the tensor cores, for NVFP4 and FP8 E4M3 experts
// (wo_kernels.h: experts_gemm). One launch covers every work item (row block of 256 rows of one expert) x (group of
// up to 8 * NT pairs routed to that expert, built on the device by experts_group with that group size): grid (row
// blocks, 1, items); items past the device's group count exit.
//
// A CTA stages its pairs' activation rows (gathered through the group's pair order, all columns; silu(gate) * up of
// [gate | up] rows with ExpertsGemmArgs::swiglu) as bf16 in shared memory once, then each of its 8 warps streams two
// 16-row groups of the expert's codes straight from global memory into MMA A fragments (16-byte streaming loads;
// the next chunk's loads in flight while the current one is computed), dequantizes them in registers to bf16 and
// multiplies them by 8-token B fragments of the staged activations (m16n8k16, fp32 accumulation, imp/cuda/mma.cuh);
// n-tiles past the group's pairs are skipped. Each output (row, pair) is written once by one thread: deterministic,
// no atomics.
//
// The A operand (the k order, the exact dequantization to bf16) is wo_mma_a.cuh's. B's four columns of a token in
// a k-step are one 8-byte word of shared memory: the staging stores 4-column unit u = c * S + s of a chunk (S = steps
// per chunk) at unit 4 s + c, so the 4 lanes of a row read 32 contiguous bytes and, with the row stride 32 bytes past
// a multiple of 128, the 16 lanes of a half warp hit distinct banks.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <algorithm>
#include <mutex>
#include <string>

#include "imp/cuda/check.h"
#include "imp/cuda/launch.cuh"
#include "imp/cuda/mma.cuh"
#include "imp/error.h"
#include "wo_kernels.h"
#include "wo_mma_a.cuh"

namespace imp::wo {
namespace {

using ::imp::cuda::mma_bf16;
using ::imp::cuda::pack_bf16x2;

template <Codec C>
using OpA = MmaA<C>;

constexpr int kWarpsG = 8;
constexpr int kRowGroups = 2 * kWarpsG;  // 16-row groups per CTA: two per warp
constexpr int kRowsPerCta = 16 * kRowGroups;

struct GemmK {
    Layout l;
    ExpertsGemmArgs a;
    int chunks, kp, n_rg, item0, x_vec;
    int64_t b_stride;
};

// Bytes of one staged activation row of kp bf16 columns: a multiple of 128 plus 32 (the bank rule above).
constexpr int64_t b_stride_of(int64_t kp) {
    return (kp * 2 + 127) / 128 * 128 + 32;
}

// silu(g) * u, as the executor's SwiGLU kernel.
__device__ __forceinline__ float silu_mul(float g, float u) { return g / (1.f + expf(-g)) * u; }

__device__ __forceinline__ float4 load_x4(const float* p, int vec) {
    return vec ? __ldg(reinterpret_cast<const float4*>(p))
               : make_float4(__ldg(p), __ldg(p + 1), __ldg(p + 2), __ldg(p + 3));
}

// Stages the activations of the CTA's n pairs into sb: rows up to the next multiple of 8 (rows t >= n and columns
// >= cols as zeros: the MMAs of the last 8-token tile read them), 4-column units permuted as above.
template <int K, int S>
__device__ __forceinline__ void stage_b(const GemmK& k, const float* const* xrow, int n, uint8_t* sb) {
    constexpr int kBatch = 4;
    const int q = k.kp / 4, total = (n + 7) / 8 * 8 * q;
    const int cols = int(k.l.cols);
    for (int i0 = threadIdx.x; i0 < total; i0 += kBatch * blockDim.x) {
        float4 v[kBatch];
#pragma unroll
        for (int b = 0; b < kBatch; ++b) {
            const int i = i0 + b * blockDim.x, t = i / q, col = 4 * (i % q);
            v[b] = make_float4(0.f, 0.f, 0.f, 0.f);
            if (i >= total || t >= n || col >= cols) continue;
            const float* xp = xrow[t] + col;
            if (col + 4 <= cols) {
                v[b] = load_x4(xp, k.x_vec);
                if (k.a.swiglu) {
                    const float4 u = load_x4(xp + cols, k.x_vec);
                    v[b] = make_float4(silu_mul(v[b].x, u.x), silu_mul(v[b].y, u.y), silu_mul(v[b].z, u.z),
                                       silu_mul(v[b].w, u.w));
                }
            } else {
                float e[4];
#pragma unroll
                for (int j = 0; j < 4; ++j) {
                    e[j] = col + j < cols ? __ldg(xp + j) : 0.f;
                    if (k.a.swiglu && col + j < cols) e[j] = silu_mul(e[j], __ldg(xp + cols + j));
                }
                v[b] = make_float4(e[0], e[1], e[2], e[3]);
            }
        }
#pragma unroll
        for (int b = 0; b < kBatch; ++b) {
            const int i = i0 + b * blockDim.x;
            if (i >= total) break;
            const int t = i / q, col = 4 * (i % q);
            const int u = (col % K) / 4, stored = (col / K) * K + 4 * (4 * (u % S) + u / S);
            *reinterpret_cast<uint2*>(sb + int64_t(t) * k.b_stride + 2 * stored) =
                make_uint2(pack_bf16x2(v[b].x, v[b].y), pack_bf16x2(v[b].z, v[b].w));
        }
    }
}

template <Codec C, int NT>
__global__ void __launch_bounds__(kWarpsG * 32, 2) experts_gemm_kernel(GemmK k) {
    using Op = OpA<C>;
    constexpr int BN = 8 * NT;
    extern __shared__ __align__(16) uint8_t smem_gemm[];
    __shared__ const float* xrow[BN];
    __shared__ float* orow[BN];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const ExpertsGemmArgs& a = k.a;
    ::imp::cuda::pdl_wait();  // groups, order and x come from earlier kernels
    const int item = k.item0 + int(blockIdx.z);
    if (item >= *a.n_groups) return;  // the whole CTA
    const int32_t* g = a.groups + 3 * int64_t(item);
    const int e = g[0], first = g[1], n = min(g[2], BN);
    if (int(threadIdx.x) < n) {
        const int p = a.order[first + threadIdx.x];
        xrow[threadIdx.x] = a.x + int64_t(a.x_per_slot ? p : p / a.top_k) * a.xs;
        orow[threadIdx.x] = a.y + int64_t(p) * a.ys;
    }
    __syncthreads();
    const int rows = int(k.l.rows);
    const int row0 = int(blockIdx.x) * kRowsPerCta;
    if (e < 0 || e >= a.n_expert) {
        const int nr = min(kRowsPerCta, rows - row0);
        if (a.zero_invalid)
            for (int i = threadIdx.x; i < n * nr; i += blockDim.x) orow[i / nr][row0 + i % nr] = 0.f;
        return;
    }
    const MatrixRef mr{a.w + int64_t(e) * int64_t(k.l.bytes), k.l.ld, k.l.scale_ld, k.l.rows, k.l.cp, k.l.scale_off,
                       k.l.post_off, k.l.n_post};
    const int rg0 = int(blockIdx.x) * kRowGroups + 2 * warp;
    const bool has0 = rg0 < k.n_rg, has1 = rg0 + 1 < k.n_rg;
    typename Op::Frag fa0, fa1, fb0, fb1;
    if (has0) {  // the first chunk's weights are in flight while the activations are staged
        Op::load(mr, int64_t(rg0) * 16, 0, lane, fa0);
        if (has1) Op::load(mr, int64_t(rg0 + 1) * 16, 0, lane, fa1);
    }
    stage_b<Op::kChunkCols, Op::kSteps>(k, xrow, n, smem_gemm);
    __syncthreads();
    const int ntn = (n + 7) / 8;
    float acc[2][NT][4];
#pragma unroll
    for (int r = 0; r < 2; ++r)
#pragma unroll
        for (int j = 0; j < NT; ++j)
#pragma unroll
            for (int x = 0; x < 4; ++x) acc[r][j][x] = 0.f;
    const uint8_t* bl = smem_gemm + int64_t(lane >> 2) * k.b_stride + 8 * (lane & 3);
    const auto compute = [&](const typename Op::Frag& f0, const typename Op::Frag& f1, int ch) {
        const uint8_t* bc = bl + int64_t(ch) * Op::kChunkCols * 2;
#pragma unroll
        for (int s = 0; s < Op::kSteps; ++s) {
            uint32_t a0[4], a1[4];
            Op::regs_bf16(f0, s, a0);
            if (has1) Op::regs_bf16(f1, s, a1);
#pragma unroll
            for (int j = 0; j < NT; ++j) {
                if (j >= ntn) break;
                const uint2 b = *reinterpret_cast<const uint2*>(bc + int64_t(8 * j) * k.b_stride + 32 * s);
                mma_bf16(acc[0][j], a0[0], a0[1], a0[2], a0[3], b.x, b.y);
                if (has1) mma_bf16(acc[1][j], a1[0], a1[1], a1[2], a1[3], b.x, b.y);
            }
        }
    };
    if (has0) {
        for (int ch = 0; ch < k.chunks; ch += 2) {
            if (ch + 1 < k.chunks) {
                Op::load(mr, int64_t(rg0) * 16, ch + 1, lane, fb0);
                if (has1) Op::load(mr, int64_t(rg0 + 1) * 16, ch + 1, lane, fb1);
            }
            compute(fa0, fa1, ch);
            if (ch + 2 < k.chunks) {
                Op::load(mr, int64_t(rg0) * 16, ch + 2, lane, fa0);
                if (has1) Op::load(mr, int64_t(rg0 + 1) * 16, ch + 2, lane, fa1);
            }
            if (ch + 1 < k.chunks) compute(fb0, fb1, ch + 1);
        }
    }
    ::imp::cuda::pdl_launch_dependents();
    if (!has0) return;
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        if (r == 1 && !has1) break;
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            const int rr = (rg0 + r) * 16 + (lane >> 2) + 8 * h;
            if (rr >= rows) continue;
            const float f = Op::factor(mr, rr) * Op::kBf16Unit;
#pragma unroll
            for (int j = 0; j < NT; ++j) {
                if (j >= ntn) break;
#pragma unroll
                for (int x = 0; x < 2; ++x) {
                    const int t = 8 * j + 2 * (lane & 3) + x;
                    if (t >= n) continue;
                    float* yp = orow[t] + rr;
                    const float v = acc[r][j][2 * h + x] * f;
                    *yp = a.accumulate ? *yp + v : v;
                }
            }
        }
    }
}

template <Codec C, int NT>
void launch_nt(const GemmK& base, int n_items, bool pdl, cudaStream_t st) {
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = 1;
    cudaLaunchConfig_t cfg{};
    cfg.blockDim = dim3(kWarpsG * 32, 1, 1);
    cfg.dynamicSmemBytes = size_t(8 * NT) * size_t(base.b_stride);
    cfg.stream = st;
    cfg.attrs = pdl ? attr : nullptr;
    cfg.numAttrs = pdl ? 1 : 0;
    constexpr int kMaxZ = 65535;
    GemmK k = base;
    for (int item0 = 0; item0 < n_items; item0 += kMaxZ) {
        k.item0 = item0;
        cfg.gridDim = dim3(unsigned((k.n_rg + kRowGroups - 1) / kRowGroups), 1, unsigned(std::min(kMaxZ, n_items - item0)));
        IMP_CUDA_CHECK(cudaLaunchKernelEx(&cfg, experts_gemm_kernel<C, NT>, k));
    }
}

template <Codec C>
int64_t padded_cols(const Layout& l) {
    constexpr int K = OpA<C>::kChunkCols;
    return (l.cols + K - 1) / K * K;
}

int64_t padded_cols(const Layout& l) {
    return l.codec == Codec::NVFP4 ? padded_cols<Codec::NVFP4>(l) : padded_cols<Codec::FP8>(l);
}

template <Codec C>
void set_smem(int bytes) {
    IMP_CUDA_CHECK(cudaFuncSetAttribute(experts_gemm_kernel<C, 8>, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
    IMP_CUDA_CHECK(cudaFuncSetAttribute(experts_gemm_kernel<C, 4>, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
    IMP_CUDA_CHECK(cudaFuncSetAttribute(experts_gemm_kernel<C, 2>, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
}

template <Codec C>
void launch(const GemmK& k, int n_items, int nt, bool pdl, cudaStream_t st) {
    switch (nt) {
        case 8: launch_nt<C, 8>(k, n_items, pdl, st); break;
        case 4: launch_nt<C, 4>(k, n_items, pdl, st); break;
        case 2: launch_nt<C, 2>(k, n_items, pdl, st); break;
        default: throw Error("weight-only experts GEMM: " + std::to_string(nt) + " token tiles per group");
    }
}

}  // namespace

int64_t experts_gemm_smem_need(const Layout& l, int nt) {
    return int64_t(8 * nt) * b_stride_of(padded_cols(l));
}

int experts_gemm_init(const Layout& l) {
    int dev = 0, optin = 0;
    IMP_CUDA_CHECK(cudaGetDevice(&dev));
    IMP_CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
    const int bytes = std::max(0, optin - 2048);  // the kernel's static shared memory (pair rows) stays below 2 KiB
    static std::once_flag once[2];
    std::call_once(once[l.codec == Codec::NVFP4 ? 1 : 0], [&] {
        if (l.codec == Codec::NVFP4)
            set_smem<Codec::NVFP4>(bytes);
        else
            set_smem<Codec::FP8>(bytes);
    });
    if (l.rows > INT32_MAX / 2 || l.cols > INT32_MAX / 2) return 0;
    for (const int nt : {8, 4, 2})
        if (experts_gemm_smem_need(l, nt) <= bytes) return nt;
    return 0;
}

void experts_gemm(const Layout& l, const ExpertsGemmArgs& a, int nt, cudaStream_t st) {
    if (a.n_items <= 0) return;
    GemmK k{};
    k.l = l;
    k.a = a;
    k.kp = int(padded_cols(l));
    k.chunks = k.kp / (l.codec == Codec::NVFP4 ? OpA<Codec::NVFP4>::kChunkCols : OpA<Codec::FP8>::kChunkCols);
    k.b_stride = b_stride_of(k.kp);
    k.n_rg = int((l.rows + 15) / 16);
    k.x_vec = (reinterpret_cast<uintptr_t>(a.x) % 16 == 0) && (a.xs % 4 == 0) && (!a.swiglu || l.cols % 4 == 0);
    if (l.codec == Codec::NVFP4)
        launch<Codec::NVFP4>(k, a.n_items, nt, a.pdl, st);
    else
        launch<Codec::FP8>(k, a.n_items, nt, a.pdl, st);
}

}  // namespace imp::wo
