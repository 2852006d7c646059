// Weight-only CUDA kernels: the fused MoE down projection of decode (wo_kernels.h: experts_down_fused): for each
// token t, y[t, r] (+)= sum over its slots j of w[t, j] * (W_{ids[t, j]} row r . a_{t, j}), with a_{t, j} the pair's
// activation row or silu(gate) * up of its [gate | up] row; one launch instead of a SwiGLU kernel, a GEMV writing
// pair rows and a kernel summing them.
//
// Grid (row blocks of 8 rows, tokens); a CTA of 8 warps stages its token's k activation rows (k + 1 with the extra
// slot: the shared expert, MoeDownArgs::extra) in shared memory (SwiGLU applied once here; each thread's loads of
// kStageLoads elements issued before any is used), then warp w owns row r = 8 blockIdx.x + w: its lanes stride over
// the k x nch 16-byte chunks of row r of the token's k experts (kLoadsPerLane chunks a lane issued before any is used:
// one round for Qwen3.6-35B-A3B's 8 + 1 slots of 16 chunks), each chunk's dot product
// scaled by its pair's routing weight times the expert's per-tensor / per-row factor; a warp shuffle sums the lanes
// and lane 0 writes the row once. Deterministic (fixed order per lane and in the shuffle tree), no atomics. Ids out
// of range contribute nothing. The staged rows are skewed (chunk stride = chunk columns + 4 floats) so that 8 lanes
// reading their chunks' activations as float4 hit distinct banks.
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <algorithm>

#include "imp/cuda/check.h"
#include "imp/cuda/launch.cuh"
#include "wo_decode.cuh"
#include "wo_kernels.h"

namespace imp::wo {
namespace {

constexpr int kRowsPerCta = 8;  // one row per warp
constexpr int kLoadsPerLane = 8;  // chunks in flight per lane
constexpr int kStageLoads = 8;    // activation elements in flight per thread while staging

__device__ __forceinline__ float silu_mul(float g, float u) { return g / (1.f + expf(-g)) * u; }

template <Codec C>
__host__ __device__ constexpr int chunk_cols() {
    return C == Codec::NVFP4 ? 32 : 16;
}
template <Codec C>
__host__ __device__ constexpr int chunk_stride() {
    return chunk_cols<C>() + 4;
}

struct DownK {
    Layout l;
    MoeDownArgs a;
    int nch;  // 16-byte chunks per row
};

template <Codec C>
__global__ void __launch_bounds__(kRowsPerCta * 32) experts_down_fused_kernel(DownK k) {
    constexpr int E = chunk_cols<C>(), CS = chunk_stride<C>();
    extern __shared__ __align__(16) float act[];  // [top_k][nch][CS]
    __shared__ float wgt[kMaxFusedTopK + 1];
    __shared__ const uint8_t* mat[kMaxFusedTopK + 1];
    const MoeDownArgs& a = k.a;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, t = int(blockIdx.y), nk = a.top_k;
    const int nke = nk + (a.extra ? 1 : 0);  // slots: the routed ones, then the extra
    const int cols = int(k.l.cols), nch = k.nch;
    ::imp::cuda::pdl_wait();  // ids, weights and x come from earlier kernels
    if (int(threadIdx.x) < nk) {
        const int j = threadIdx.x, e = a.ids[int64_t(t) * nk + j];
        const bool ok = e >= 0 && e < a.n_expert;
        wgt[j] = ok ? a.weights[int64_t(t) * nk + j] : 0.f;
        mat[j] = ok ? a.w + int64_t(e) * int64_t(k.l.bytes) : nullptr;
    } else if (int(threadIdx.x) == nk && a.extra) {
        wgt[nk] = a.extra_weights ? a.extra_weights[t] : 1.f;
        mat[nk] = a.extra;
    }
    const int per_row = nch * E, n_el = nke * per_row;
    for (int i0 = threadIdx.x; i0 < n_el; i0 += kRowsPerCta * 32 * kStageLoads) {
        float g[kStageLoads], u[kStageLoads];
#pragma unroll
        for (int q = 0; q < kStageLoads; ++q) {  // every load first
            const int i = i0 + q * kRowsPerCta * 32, j = i / per_row, c = i - j * per_row;
            g[q] = u[q] = 0.f;
            if (i < n_el && c < cols) {
                const float* xr = j < nk ? a.x + (int64_t(t) * nk + j) * a.xs : a.extra_x + int64_t(t) * a.xs;
                g[q] = __ldg(xr + c);
                if (a.swiglu) u[q] = __ldg(xr + cols + c);
            }
        }
#pragma unroll
        for (int q = 0; q < kStageLoads; ++q) {
            const int i = i0 + q * kRowsPerCta * 32, j = i / per_row, c = i - j * per_row;
            if (i < n_el) act[(j * nch + c / E) * CS + c % E] = a.swiglu ? silu_mul(g[q], u[q]) : g[q];
        }
    }
    __syncthreads();
    ::imp::cuda::pdl_launch_dependents();
    const int r = int(blockIdx.x) * kRowsPerCta + warp;
    if (r >= k.l.rows) return;
    float acc = 0.f;
    const int total = nke * nch;
    for (int q0 = lane; q0 < total; q0 += 32 * kLoadsPerLane) {
        uint4 w[kLoadsPerLane];
        uint32_t sc[kLoadsPerLane];
#pragma unroll
        for (int u = 0; u < kLoadsPerLane; ++u) {  // every load first
            const int q = q0 + 32 * u, j = q / nch, ch = q % nch;
            w[u] = make_uint4(0u, 0u, 0u, 0u);
            sc[u] = 0u;
            if (q < total && mat[j]) {
                const uint8_t* m = mat[j];
                w[u] = ld_stream(m + int64_t(r) * k.l.ld + int64_t(ch) * 16);
                if constexpr (C == Codec::NVFP4)
                    sc[u] = __ldg(reinterpret_cast<const unsigned short*>(m + k.l.scale_off + int64_t(r) * k.l.scale_ld +
                                                                         int64_t(ch) * 2));
            }
        }
#pragma unroll
        for (int u = 0; u < kLoadsPerLane; ++u) {
            const int q = q0 + 32 * u, j = q / nch, ch = q % nch;
            if (q >= total || !mat[j]) continue;
            const float* x = act + (j * nch + ch) * CS;
            float dot = 0.f;
            if constexpr (C == Codec::NVFP4) {
#pragma unroll
                for (int b = 0; b < 2; ++b) {  // two 16-element blocks, one scale each
                    float part = 0.f;
#pragma unroll
                    for (int h = 0; h < 2; ++h) {
                        float v[8];
                        dec_nvfp4(word(w[u], 2 * b + h), v);
                        const float4 x0 = *reinterpret_cast<const float4*>(x + 16 * b + 8 * h);
                        const float4 x1 = *reinterpret_cast<const float4*>(x + 16 * b + 8 * h + 4);
                        part = fmaf(v[0], x0.x, part);
                        part = fmaf(v[1], x0.y, part);
                        part = fmaf(v[2], x0.z, part);
                        part = fmaf(v[3], x0.w, part);
                        part = fmaf(v[4], x1.x, part);
                        part = fmaf(v[5], x1.y, part);
                        part = fmaf(v[6], x1.z, part);
                        part = fmaf(v[7], x1.w, part);
                    }
                    dot = fmaf(part, e4m3(sc[u] >> (8 * b)) * 16384.f, dot);
                }
                dot *= __ldg(reinterpret_cast<const float*>(mat[j] + k.l.post_off));
            } else {
#pragma unroll
                for (int i = 0; i < 4; ++i) {
                    float v[4];
                    dec_fp8(word(w[u], i), v);
                    const float4 xv = *reinterpret_cast<const float4*>(x + 4 * i);
                    dot = fmaf(v[0], xv.x, dot);
                    dot = fmaf(v[1], xv.y, dot);
                    dot = fmaf(v[2], xv.z, dot);
                    dot = fmaf(v[3], xv.w, dot);
                }
                dot *= __ldg(reinterpret_cast<const float*>(mat[j] + k.l.post_off) + (k.l.n_post == 1 ? 0 : r));
            }
            acc = fmaf(wgt[j], dot, acc);
        }
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(0xFFFFFFFFu, acc, o);
    if (lane == 0) {
        float* yp = a.y + int64_t(t) * a.ys + r;
        *yp = a.accumulate ? *yp + acc : acc;
    }
}

template <Codec C>
int64_t smem_bytes(const Layout& l, int top_k) {
    const int64_t nch = l.ld / 16;
    return int64_t(top_k) * nch * chunk_stride<C>() * 4;
}

}  // namespace

int64_t experts_down_fused_smem(const Layout& l, int top_k) {
    return l.codec == Codec::NVFP4 ? smem_bytes<Codec::NVFP4>(l, top_k) : smem_bytes<Codec::FP8>(l, top_k);
}

bool experts_down_fused_fits(const Layout& l, int top_k) {
    return top_k >= 1 && top_k <= kMaxFusedTopK && l.rows <= INT32_MAX / 2 && l.cols <= INT32_MAX / 2 &&
           experts_down_fused_smem(l, top_k) <= kMaxFusedSmem;
}

void experts_down_fused(const Layout& l, const MoeDownArgs& a, cudaStream_t st) {
    if (a.n_tokens <= 0) return;
    DownK k{};
    k.l = l;
    k.a = a;
    k.nch = int(l.ld / 16);
    const size_t smem = size_t(experts_down_fused_smem(l, a.top_k + (a.extra ? 1 : 0)));
    for (int64_t t0 = 0; t0 < a.n_tokens; t0 += 65535) {
        DownK kk = k;
        const int64_t nt = std::min<int64_t>(65535, a.n_tokens - t0);
        kk.a.ids = a.ids + t0 * a.top_k;
        kk.a.weights = a.weights + t0 * a.top_k;
        kk.a.x = a.x + t0 * a.top_k * a.xs;
        kk.a.y = a.y + t0 * a.ys;
        if (a.extra) {
            kk.a.extra_x = a.extra_x + t0 * a.xs;
            if (a.extra_weights) kk.a.extra_weights = a.extra_weights + t0;
        }
        const dim3 grid(unsigned(::imp::cuda::div_up(l.rows, kRowsPerCta)), unsigned(nt));
        if (l.codec == Codec::NVFP4)
            IMP_CUDA_CHECK(::imp::cuda::launch(experts_down_fused_kernel<Codec::NVFP4>, grid, dim3(kRowsPerCta * 32),
                                               smem, st, a.pdl, kk));
        else
            IMP_CUDA_CHECK(::imp::cuda::launch(experts_down_fused_kernel<Codec::FP8>, grid, dim3(kRowsPerCta * 32),
                                               smem, st, a.pdl, kk));
    }
}

}  // namespace imp::wo
