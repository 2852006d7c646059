// quant_ggml CUDA: dequantization on the device: to bf16 for the GEMM path, to fp32 (exact) for get_rows, and the
// activations to bf16 (plain, or with the RMSNorm or the SwiGLU before the GEMM fused in).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <string>

#include "imp/cuda/check.h"
#include "imp/cuda/launch.cuh"
#include "imp/cuda/row_ops.cuh"
#include "imp/error.h"
#include "kernels.h"
#include "mma_bf16.cuh"

namespace imp::ggml::cuda {
namespace {

// One warp per (row group, chunk) tile of rows [rg_begin * 16, ...): lane (g, c) writes, per k-step and row, its 4
// consecutive columns (A-registers k and k + 2) as one 8-byte store; a warp's store covers 8 rows x 32 bytes.
template <class L>
__global__ void __launch_bounds__(256)
    dequant_tiled_kernel(const uint8_t* __restrict__ w, int64_t rg_bytes, int chunks, int rg_begin, int n_rg, int rows,
                         int cols, int row0, uint2* __restrict__ out, int64_t ldo) {
    const int64_t gw = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
    if (gw >= int64_t(n_rg) * chunks) return;
    const int lane = threadIdx.x & 31;
    const int rg = rg_begin + int(gw / chunks), ch = int(gw % chunks);
    typename L::Frag f;
    L::load(w + int64_t(rg) * rg_bytes + int64_t(ch) * L::kTileBytes, lane, f);
#pragma unroll
    for (int sb = 0; sb < L::kSteps / L::kSubSteps; ++sb) {
        const RowScale sc[2] = {L::scale(f, sb, 0), L::scale(f, sb, 1)};
#pragma unroll
        for (int ss = 0; ss < L::kSubSteps; ++ss) {
            const int s = sb * L::kSubSteps + ss;
#pragma unroll
            for (int k = 0; k < 2; ++k) {  // k: row g (0) or g + 8 (1); registers k and k + 2
                const int row = rg * kTileRows + elem_row(lane, k);
                const int col = ch * L::kChunkCols + elem_col(lane, s, k, 0);
                if (row >= rows || col >= cols) continue;
                int q0, q1, q2, q3;
                codes<L>(f, s, k, q0, q1);
                codes<L>(f, s, k + 2, q2, q3);
                const uint2 v = make_uint2(pack_bf16x2(dq_value<L>(sc[k], q0), dq_value<L>(sc[k], q1)),
                                           pack_bf16x2(dq_value<L>(sc[k], q2), dq_value<L>(sc[k], q3)));
                out[(int64_t(row - row0) * ldo + col) >> 2] = v;
            }
        }
    }
}

// Block (chunk group, id): warp w of the block takes chunk 8 blockIdx.y + w of row ids[blockIdx.x].
template <class L>
__global__ void __launch_bounds__(256)
    get_rows_tiled_kernel(const uint8_t* __restrict__ w, int64_t rg_bytes, int chunks, int rows, int cols,
                          const int32_t* __restrict__ ids, float* __restrict__ out) {
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int ch = blockIdx.y * 8 + warp;
    if (ch >= chunks) return;
    const int id = ids[blockIdx.x];
    float* o = out + int64_t(blockIdx.x) * cols + int64_t(ch) * L::kChunkCols;
    const int ncol = min(L::kChunkCols, cols - ch * L::kChunkCols);
    if (id < 0 || id >= rows) {
        for (int i = lane; i < ncol; i += 32) o[i] = __uint_as_float(0x7FC00000u);
        return;
    }
    const int r16 = id % kTileRows, half = r16 >> 3;
    if ((lane >> 2) != (r16 & 7)) return;
    typename L::Frag f;
    L::load(w + int64_t(id / kTileRows) * rg_bytes + int64_t(ch) * L::kTileBytes, lane, f);
#pragma unroll
    for (int sb = 0; sb < L::kSteps / L::kSubSteps; ++sb) {
        const RowScale sc = L::scale(f, sb, half);
#pragma unroll
        for (int ss = 0; ss < L::kSubSteps; ++ss) {
            const int s = sb * L::kSubSteps + ss;
#pragma unroll
            for (int k = 0; k < 4; ++k) {
                if ((k & 1) != half) continue;
                const int col = elem_col(lane, s, k, 0);
                if (col >= ncol) continue;
                int q0, q1;
                codes<L>(f, s, k, q0, q1);
                o[col] = dq_value<L>(sc, q0);
                o[col + 1] = dq_value<L>(sc, q1);
            }
        }
    }
}

template <Type TY>
__device__ __forceinline__ float plain_value(const uint8_t* row, int64_t c) {
    if constexpr (TY == Type::F32)
        return reinterpret_cast<const float*>(row)[c];
    else if constexpr (TY == Type::F16)
        return __half2float(reinterpret_cast<const __half*>(row)[c]);
    else
        return __uint_as_float(uint32_t(reinterpret_cast<const uint16_t*>(row)[c]) << 16);
}

template <Type TY>
__global__ void get_rows_plain_kernel(const uint8_t* __restrict__ w, int64_t ld_bytes, int rows, int cols,
                                      const int32_t* __restrict__ ids, float* __restrict__ out) {
    const int id = ids[blockIdx.y];
    float* o = out + int64_t(blockIdx.y) * cols;
    for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < cols; c += gridDim.x * blockDim.x)
        o[c] = (id < 0 || id >= rows) ? __uint_as_float(0x7FC00000u) : plain_value<TY>(w + int64_t(id) * ld_bytes, c);
}

// Block r converts row r (8 halves per 16-byte load: ld and ldo are multiples of 8).
__global__ void f16_to_bf16_kernel(const uint4* __restrict__ w, int64_t ld8, int cols, uint4* __restrict__ out,
                                   int64_t ldo8) {
    const uint4* wr = w + int64_t(blockIdx.x) * ld8;
    uint4* o = out + int64_t(blockIdx.x) * ldo8;
    for (int i = threadIdx.x; i < (cols + 7) / 8; i += blockDim.x) {
        const uint4 v = __ldg(wr + i);
        const uint32_t in[4] = {v.x, v.y, v.z, v.w};
        uint32_t r[4];
#pragma unroll
        for (int k = 0; k < 4; ++k) {
            const float2 f = __half22float2(*reinterpret_cast<const __half2*>(&in[k]));
            r[k] = pack_bf16x2(f.x, f.y);
        }
        o[i] = make_uint4(r[0], r[1], r[2], r[3]);
    }
}

// Block t converts token t (4 floats per load when aligned; ldo is a multiple of 8).
__global__ void to_bf16_kernel(const float* __restrict__ x, int64_t xs, int cols, uint32_t* __restrict__ out,
                               int64_t ldo, int vec) {
    const float* xr = x + int64_t(blockIdx.x) * xs;
    uint32_t* o = out + int64_t(blockIdx.x) * (ldo / 2);
    if (vec) {
        for (int i = threadIdx.x; i < cols / 4; i += blockDim.x) {
            const float4 v = __ldg(reinterpret_cast<const float4*>(xr) + i);
            *reinterpret_cast<uint2*>(o + 2 * i) = make_uint2(pack_bf16x2(v.x, v.y), pack_bf16x2(v.z, v.w));
        }
        for (int c = cols / 4 * 4 + threadIdx.x; c < cols; c += blockDim.x)
            reinterpret_cast<__nv_bfloat16*>(o)[c] = __float2bfloat16_rn(xr[c]);
    } else {
        for (int c = threadIdx.x; c < cols; c += blockDim.x)
            reinterpret_cast<__nv_bfloat16*>(o)[c] = __float2bfloat16_rn(__ldg(xr + c));
    }
}

// The executor's rms_norm (exec/cuda/norm.cu) with its output in bf16: the same block size and scale
// (imp/cuda/row_ops.cuh, shared with it) and the same products, so every value is its bits before the rounding.
template <bool kVec>
__global__ void to_bf16_norm_kernel(const float* __restrict__ x, int64_t xs, const float* __restrict__ w, int cols,
                                    float eps, uint32_t* __restrict__ out, int64_t ldo) {
    ::imp::cuda::pdl_launch_dependents();
    ::imp::cuda::pdl_wait();
    __shared__ float red[32];
    const float* xr = x + int64_t(blockIdx.x) * xs;
    uint32_t* o = out + int64_t(blockIdx.x) * (ldo / 2);
    const int64_t n = cols;
    const float scale = ::imp::cuda::rms_norm_scale<kVec>(xr, n, eps, red);
    if constexpr (kVec) {
        const int64_t n4 = n / 4;
        const float4* x4 = reinterpret_cast<const float4*>(xr);
        const float4* w4 = reinterpret_cast<const float4*>(w);
        for (int64_t i = threadIdx.x; i < n4; i += blockDim.x) {
            float4 v = x4[i];
            v.x *= scale, v.y *= scale, v.z *= scale, v.w *= scale;
            const float4 g = w4[i];
            v.x *= g.x, v.y *= g.y, v.z *= g.z, v.w *= g.w;
            *reinterpret_cast<uint2*>(o + 2 * i) = make_uint2(pack_bf16x2(v.x, v.y), pack_bf16x2(v.z, v.w));
        }
    } else {
        for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
            reinterpret_cast<__nv_bfloat16*>(o)[i] = __float2bfloat16_rn(xr[i] * scale * w[i]);
    }
}

// The executor's swiglu (exec/cuda/elementwise.cu; silu_mul of imp/cuda/row_ops.cuh) with its output in bf16; block t
// takes row t.
using ::imp::cuda::silu_mul;

template <bool kVec>
__global__ void to_bf16_swiglu_kernel(const float* __restrict__ x, const float* __restrict__ up, int64_t xs, int cols,
                                      uint32_t* __restrict__ out, int64_t ldo) {
    ::imp::cuda::pdl_launch_dependents();
    ::imp::cuda::pdl_wait();
    const float* gr = x + int64_t(blockIdx.x) * xs;
    const float* ur = up + int64_t(blockIdx.x) * xs;
    uint32_t* o = out + int64_t(blockIdx.x) * (ldo / 2);
    if constexpr (kVec) {
        for (int i = threadIdx.x; i < cols / 4; i += blockDim.x) {
            const float4 g = reinterpret_cast<const float4*>(gr)[i];
            const float4 u = reinterpret_cast<const float4*>(ur)[i];
            *reinterpret_cast<uint2*>(o + 2 * i) = make_uint2(pack_bf16x2(silu_mul(g.x, u.x), silu_mul(g.y, u.y)),
                                                              pack_bf16x2(silu_mul(g.z, u.z), silu_mul(g.w, u.w)));
        }
    } else {
        for (int c = threadIdx.x; c < cols; c += blockDim.x)
            reinterpret_cast<__nv_bfloat16*>(o)[c] = __float2bfloat16_rn(silu_mul(gr[c], ur[c]));
    }
}

using ::imp::cuda::aligned16;

template <class L>
void dequant_tiled(const DeviceLayout& l, const void* w, int64_t row0, int64_t nrows, uint16_t* out, int64_t ldo,
                   cudaStream_t st) {
    const int64_t rg_begin = row0 / kTileRows, rg_end = (row0 + nrows + kTileRows - 1) / kTileRows;
    const int64_t warps = (rg_end - rg_begin) * l.chunks;
    dequant_tiled_kernel<L><<<unsigned((warps + 7) / 8), 256, 0, st>>>(
        static_cast<const uint8_t*>(w), l.rg_bytes, int(l.chunks), int(rg_begin), int(rg_end - rg_begin),
        int(std::min<int64_t>(l.rows, row0 + nrows)), int(l.cols), int(row0), reinterpret_cast<uint2*>(out), ldo);
    IMP_CUDA_CHECK_LAUNCH();
}

template <class L>
void get_rows_tiled(const DeviceLayout& l, const void* w, const int32_t* ids, int64_t n, float* out, cudaStream_t st) {
    const dim3 grid(unsigned(n), unsigned((l.chunks + 7) / 8));
    get_rows_tiled_kernel<L><<<grid, 256, 0, st>>>(static_cast<const uint8_t*>(w), l.rg_bytes, int(l.chunks),
                                                   int(l.rows), int(l.cols), ids, out);
    IMP_CUDA_CHECK_LAUNCH();
}

template <Type TY>
void get_rows_plain(const DeviceLayout& l, const void* w, const int32_t* ids, int64_t n, float* out, cudaStream_t st) {
    const dim3 grid(unsigned(std::min<int64_t>((l.cols + 255) / 256, 64)), unsigned(n));
    get_rows_plain_kernel<TY><<<grid, 256, 0, st>>>(static_cast<const uint8_t*>(w), l.ld * (TY == Type::F32 ? 4 : 2),
                                                    int(l.rows), int(l.cols), ids, out);
    IMP_CUDA_CHECK_LAUNCH();
}

}  // namespace

void dequant_bf16(const DeviceLayout& l, const void* w, int64_t row0, int64_t nrows, uint16_t* out, int64_t ldo,
                  cudaStream_t st) {
    if (nrows <= 0) return;
    if (l.tiled && row0 % kTileRows != 0) throw Error("quant_ggml: dequant_bf16: row0 is not a multiple of 16");
    if (ldo % 8 != 0) throw Error("quant_ggml: dequant_bf16: output stride is not a multiple of 8");
    switch (l.type) {
        case Type::Q4_0: dequant_tiled<LayoutQ4_0>(l, w, row0, nrows, out, ldo, st); break;
        case Type::Q4_1: dequant_tiled<LayoutQ4_1>(l, w, row0, nrows, out, ldo, st); break;
        case Type::Q8_0: dequant_tiled<LayoutQ8_0>(l, w, row0, nrows, out, ldo, st); break;
        case Type::Q4_K: dequant_tiled<LayoutQ4_K>(l, w, row0, nrows, out, ldo, st); break;
        case Type::Q5_K: dequant_tiled<LayoutQ5_K>(l, w, row0, nrows, out, ldo, st); break;
        case Type::Q6_K: dequant_tiled<LayoutQ6_K>(l, w, row0, nrows, out, ldo, st); break;
        case Type::F16:
            f16_to_bf16_kernel<<<unsigned(nrows), 256, 0, st>>>(
                reinterpret_cast<const uint4*>(static_cast<const __half*>(w) + row0 * l.ld), l.ld / 8, int(l.cols),
                reinterpret_cast<uint4*>(out), ldo / 8);
            IMP_CUDA_CHECK_LAUNCH();
            break;
        default: throw Error(std::string("quant_ggml: no bf16 dequantization for type ") + type_info(l.type).name);
    }
}

void to_bf16(const float* x, int64_t xs, int64_t n_tokens, int64_t cols, uint16_t* out, int64_t ldo, cudaStream_t st) {
    if (n_tokens <= 0) return;
    if (ldo % 8 != 0) throw Error("quant_ggml: to_bf16: output stride is not a multiple of 8");
    const int vec = (reinterpret_cast<uintptr_t>(x) % 16 == 0) && (xs % 4 == 0);
    to_bf16_kernel<<<unsigned(n_tokens), 256, 0, st>>>(x, xs, int(cols), reinterpret_cast<uint32_t*>(out), ldo, vec);
    IMP_CUDA_CHECK_LAUNCH();
}

void to_bf16_norm(const float* x, int64_t xs, const float* norm, float eps, int64_t n_tokens, int64_t cols,
                  uint16_t* out, int64_t ldo, bool pdl, cudaStream_t st) {
    if (n_tokens <= 0) return;
    if (ldo % 8 != 0) throw Error("quant_ggml: to_bf16_norm: output stride is not a multiple of 8");
    // The executor's rms_norm: 16-byte loads when the row allows them; 512 / 256 / 128 threads as it picks them.
    const bool vec = cols % 4 == 0 && xs % 4 == 0 && aligned16(x) && aligned16(norm);
    ::imp::cuda::LaunchConfig c;
    c.grid = dim3(unsigned(n_tokens));
    c.block = dim3(::imp::cuda::rms_norm_threads(cols, vec));
    c.stream = st;
    c.pdl = pdl;
    IMP_CUDA_CHECK(::imp::cuda::launch(c, vec ? to_bf16_norm_kernel<true> : to_bf16_norm_kernel<false>, x, xs, norm,
                                       int(cols), eps, reinterpret_cast<uint32_t*>(out), ldo));
}

void to_bf16_swiglu(const float* x, const float* up, int64_t xs, int64_t n_tokens, int64_t cols, uint16_t* out,
                    int64_t ldo, bool pdl, cudaStream_t st) {
    if (n_tokens <= 0) return;
    if (ldo % 8 != 0) throw Error("quant_ggml: to_bf16_swiglu: output stride is not a multiple of 8");
    const bool vec = cols % 4 == 0 && xs % 4 == 0 && aligned16(x) && aligned16(up);
    ::imp::cuda::LaunchConfig c;
    c.grid = dim3(unsigned(n_tokens));
    c.block = dim3(256);
    c.stream = st;
    c.pdl = pdl;
    IMP_CUDA_CHECK(::imp::cuda::launch(c, vec ? to_bf16_swiglu_kernel<true> : to_bf16_swiglu_kernel<false>, x, up, xs,
                                       int(cols), reinterpret_cast<uint32_t*>(out), ldo));
}

void get_rows(const DeviceLayout& l, const void* w, const int32_t* ids, int64_t n, float* out, cudaStream_t st) {
    if (n <= 0) return;
    switch (l.type) {
        case Type::Q4_0: get_rows_tiled<LayoutQ4_0>(l, w, ids, n, out, st); break;
        case Type::Q4_1: get_rows_tiled<LayoutQ4_1>(l, w, ids, n, out, st); break;
        case Type::Q8_0: get_rows_tiled<LayoutQ8_0>(l, w, ids, n, out, st); break;
        case Type::Q4_K: get_rows_tiled<LayoutQ4_K>(l, w, ids, n, out, st); break;
        case Type::Q5_K: get_rows_tiled<LayoutQ5_K>(l, w, ids, n, out, st); break;
        case Type::Q6_K: get_rows_tiled<LayoutQ6_K>(l, w, ids, n, out, st); break;
        case Type::F32: get_rows_plain<Type::F32>(l, w, ids, n, out, st); break;
        case Type::F16: get_rows_plain<Type::F16>(l, w, ids, n, out, st); break;
        case Type::BF16: get_rows_plain<Type::BF16>(l, w, ids, n, out, st); break;
        default: throw Error(std::string("quant_ggml: no CUDA get_rows for type ") + type_info(l.type).name);
    }
}

}  // namespace imp::ggml::cuda
