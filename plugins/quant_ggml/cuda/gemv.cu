// quant_ggml CUDA: the GEMV entry point, and the GEMV of the plain float types (F32, F16, BF16) on the CUDA cores.
//
// Plain types: a warp owns R rows; each lane takes 8 consecutive columns per step (one 16-byte load per row for
// 16-bit weights, two for F32), U = 4 / R steps loaded before use, x read once per step for all R rows, fp32 FMA,
// then a warp shuffle reduction. Rows are padded to a multiple of 8 elements, so the weight loads are aligned.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <string>

#include "gemv_tiled.cuh"
#include "imp/error.h"

namespace imp::ggml::cuda {

extern template void launch_gemv_tiled<LayoutQ4_0>(const DeviceLayout&, const GemvArgs&, int, cudaStream_t);
extern template void launch_gemv_tiled<LayoutQ4_1>(const DeviceLayout&, const GemvArgs&, int, cudaStream_t);
extern template void launch_gemv_tiled<LayoutQ8_0>(const DeviceLayout&, const GemvArgs&, int, cudaStream_t);
extern template void launch_gemv_tiled<LayoutQ4_K>(const DeviceLayout&, const GemvArgs&, int, cudaStream_t);
extern template void launch_gemv_tiled<LayoutQ5_K>(const DeviceLayout&, const GemvArgs&, int, cudaStream_t);
extern template void launch_gemv_tiled<LayoutQ6_K>(const DeviceLayout&, const GemvArgs&, int, cudaStream_t);

namespace {

constexpr int kPlainWarps = 8;

// 8 consecutive weights of a row as floats.
template <Type TY>
__device__ __forceinline__ void load8(const uint8_t* p, float (&v)[8]) {
    if constexpr (TY == Type::F32) {
        const float4 a = __ldg(reinterpret_cast<const float4*>(p)), b = __ldg(reinterpret_cast<const float4*>(p) + 1);
        v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
    } else {
        uint32_t q[4];
        load_stream(p, q, 4);
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            if constexpr (TY == Type::F16) {
                const float2 f = __half22float2(*reinterpret_cast<const __half2*>(&q[i]));
                v[2 * i] = f.x, v[2 * i + 1] = f.y;
            } else {
                v[2 * i] = __uint_as_float(q[i] << 16);
                v[2 * i + 1] = __uint_as_float(q[i] & 0xFFFF0000u);
            }
        }
    }
}

template <Type TY, int T, int R>
__global__ void __launch_bounds__(kPlainWarps * 32)
    gemv_plain_kernel(const uint8_t* __restrict__ w, int64_t ld_bytes, int rows, int cols,
                      const float* __restrict__ x, int64_t xs, float* __restrict__ y, int64_t ys, int n_tokens,
                      int x_vec) {
    constexpr int U = 4 / R;
    constexpr int kElem = TY == Type::F32 ? 4 : 2;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int r0 = (blockIdx.x * kPlainWarps + warp) * R;
    if (r0 >= rows) return;
    float acc[R][T];
#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
        for (int t = 0; t < T; ++t) acc[r][t] = 0.f;
    const int nch = (cols + 7) / 8;
    for (int ch0 = lane; ch0 < nch; ch0 += 32 * U) {
        float wv[U][R][8];
#pragma unroll
        for (int u = 0; u < U; ++u) {
            const int ch = ch0 + 32 * u;
#pragma unroll
            for (int r = 0; r < R; ++r) {
                if (ch < nch && r0 + r < rows) {
                    load8<TY>(w + int64_t(r0 + r) * ld_bytes + int64_t(ch) * 8 * kElem, wv[u][r]);
                } else {
#pragma unroll
                    for (int e = 0; e < 8; ++e) wv[u][r][e] = 0.f;
                }
            }
        }
#pragma unroll
        for (int u = 0; u < U; ++u) {
            const int ch = ch0 + 32 * u;
            if (ch >= nch) continue;
            const int col = ch * 8;
#pragma unroll
            for (int t = 0; t < T; ++t) {
                if (t >= n_tokens) continue;
                const float* xt = x + int64_t(t) * xs + col;
                float xv[8];
                if (x_vec && col + 8 <= cols) {
                    const float4 a = __ldg(reinterpret_cast<const float4*>(xt));
                    const float4 b = __ldg(reinterpret_cast<const float4*>(xt) + 1);
                    xv[0] = a.x, xv[1] = a.y, xv[2] = a.z, xv[3] = a.w, xv[4] = b.x, xv[5] = b.y, xv[6] = b.z,
                    xv[7] = b.w;
                } else {
#pragma unroll
                    for (int e = 0; e < 8; ++e) xv[e] = col + e < cols ? __ldg(xt + e) : 0.f;
                }
#pragma unroll
                for (int r = 0; r < R; ++r)
#pragma unroll
                    for (int e = 0; e < 8; ++e) acc[r][t] = fmaf(wv[u][r][e], xv[e], acc[r][t]);
            }
        }
    }
#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
        for (int t = 0; t < T; ++t) {
            float v = acc[r][t];
#pragma unroll
            for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xFFFFFFFFu, v, o);
            if (lane == 0 && r0 + r < rows && t < n_tokens) y[int64_t(t) * ys + r0 + r] = v;
        }
}

template <Type TY, int T, int R>
void launch_plain(const DeviceLayout& l, const GemvArgs& a, cudaStream_t st) {
    const int x_vec = (reinterpret_cast<uintptr_t>(a.x) % 16 == 0) && (a.xs % 4 == 0);
    const int64_t rows_per_cta = int64_t(kPlainWarps) * R;
    const unsigned grid = unsigned((l.rows + rows_per_cta - 1) / rows_per_cta);
    gemv_plain_kernel<TY, T, R><<<grid, kPlainWarps * 32, 0, st>>>(
        static_cast<const uint8_t*>(a.w), l.ld * (TY == Type::F32 ? 4 : 2), int(l.rows), int(l.cols), a.x, a.xs, a.y,
        a.ys, a.n_tokens, x_vec);
    QG_LAUNCHED();
}

template <Type TY>
void gemv_plain(const DeviceLayout& l, const GemvArgs& a, cudaStream_t st) {
    if (a.n_tokens <= 1)
        launch_plain<TY, 1, 1>(l, a, st);
    else if (a.n_tokens <= 2)
        launch_plain<TY, 2, 2>(l, a, st);
    else if (a.n_tokens <= 4)
        launch_plain<TY, 4, 4>(l, a, st);
    else
        launch_plain<TY, 8, 4>(l, a, st);
}

}  // namespace

void gemv(const DeviceLayout& l, const GemvArgs& a, int sm_count, cudaStream_t st, int row_groups_per_cta) {
    if (a.n_tokens <= 0) return;
    if (a.n_tokens > kMaxGemvTokens)
        throw Error("quant_ggml: GEMV called with " + std::to_string(a.n_tokens) + " tokens, at most " +
                    std::to_string(kMaxGemvTokens));
    // Two row groups per CTA halve the activation conversions per weight byte; one keeps enough CTAs for the
    // machine when the matrix has few rows.
    int R = row_groups_per_cta;
    if (R <= 0) R = l.n_rg >= 4 * int64_t(sm_count > 0 ? sm_count : 132) ? 2 : 1;
    switch (l.type) {
        case Type::Q4_0: launch_gemv_tiled<LayoutQ4_0>(l, a, R, st); break;
        case Type::Q4_1: launch_gemv_tiled<LayoutQ4_1>(l, a, R, st); break;
        case Type::Q8_0: launch_gemv_tiled<LayoutQ8_0>(l, a, R, st); break;
        case Type::Q4_K: launch_gemv_tiled<LayoutQ4_K>(l, a, R, st); break;
        case Type::Q5_K: launch_gemv_tiled<LayoutQ5_K>(l, a, R, st); break;
        case Type::Q6_K: launch_gemv_tiled<LayoutQ6_K>(l, a, R, st); break;
        case Type::F32: gemv_plain<Type::F32>(l, a, st); break;
        case Type::F16: gemv_plain<Type::F16>(l, a, st); break;
        case Type::BF16: gemv_plain<Type::BF16>(l, a, st); break;
        default: throw Error(std::string("quant_ggml: no CUDA GEMV for type ") + type_info(l.type).name);
    }
}

}  // namespace imp::ggml::cuda
