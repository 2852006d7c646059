// quant_ggml CUDA: dequantization on the device: to bf16 for the GEMM path, to fp32 (exact) for get_rows, and the
// activations to bf16.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <string>

#include "cuda_check.h"
#include "device_common.cuh"
#include "imp/error.h"
#include "kernels.h"

namespace imp::ggml::cuda {
namespace {

// One warp per (row group, chunk) tile of rows [rg_begin * 16, ...): each lane writes its fragment's elements as
// bf16 pairs.
template <class L>
__global__ void __launch_bounds__(256) dequant_tiled_kernel(const uint8_t* __restrict__ w, int64_t rg_bytes, int chunks,
                                                            int rg_begin, int n_rg, int rows, int cols, int row0,
                                                            uint32_t* __restrict__ out, int64_t ldo) {
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
            for (int k = 0; k < 4; ++k) {
                const int row = rg * kTileRows + elem_row(lane, k);
                const int col = ch * L::kChunkCols + elem_col(lane, s, k, 0);
                if (row >= rows || col >= cols) continue;
                int q0, q1;
                codes<L>(f, s, k, q0, q1);
                const uint32_t v = pack_bf16x2(dq_value<L>(sc[k & 1], q0), dq_value<L>(sc[k & 1], q1));
                out[(int64_t(row - row0) * ldo + col) >> 1] = v;
            }
        }
    }
}

// Block (chunk group, id): warp w of the block takes chunk 8 blockIdx.y + w of row ids[blockIdx.x].
template <class L>
__global__ void __launch_bounds__(256) get_rows_tiled_kernel(const uint8_t* __restrict__ w, int64_t rg_bytes, int chunks,
                                                             int rows, int cols, const int32_t* __restrict__ ids,
                                                             float* __restrict__ out) {
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

__global__ void f16_to_bf16_kernel(const __half* __restrict__ w, int64_t ld, int64_t nrows, int cols,
                                   __nv_bfloat16* __restrict__ out, int64_t ldo) {
    const int64_t n = nrows * cols;
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        const int64_t r = i / cols, c = i % cols;
        out[r * ldo + c] = __float2bfloat16_rn(__half2float(w[r * ld + c]));
    }
}

__global__ void to_bf16_kernel(const float* __restrict__ x, int64_t xs, int64_t n_tokens, int cols,
                               __nv_bfloat16* __restrict__ out, int64_t ldo) {
    const int64_t n = n_tokens * cols;
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        const int64_t t = i / cols, c = i % cols;
        out[t * ldo + c] = __float2bfloat16_rn(x[t * xs + c]);
    }
}

unsigned grid_for(int64_t n, int threads) {
    const int64_t b = (n + threads - 1) / threads;
    return unsigned(b < 1 ? 1 : (b > 65536 * 8 ? 65536 * 8 : b));
}

template <class L>
void dequant_tiled(const DeviceLayout& l, const void* w, int64_t row0, int64_t nrows, uint16_t* out, int64_t ldo,
                   cudaStream_t st) {
    const int64_t rg_begin = row0 / kTileRows, rg_end = (row0 + nrows + kTileRows - 1) / kTileRows;
    const int64_t warps = (rg_end - rg_begin) * l.chunks;
    dequant_tiled_kernel<L><<<unsigned((warps + 7) / 8), 256, 0, st>>>(
        static_cast<const uint8_t*>(w), l.rg_bytes, int(l.chunks), int(rg_begin), int(rg_end - rg_begin),
        int(std::min<int64_t>(l.rows, row0 + nrows)), int(l.cols), int(row0), reinterpret_cast<uint32_t*>(out), ldo);
    QG_LAUNCHED();
}

template <class L>
void get_rows_tiled(const DeviceLayout& l, const void* w, const int32_t* ids, int64_t n, float* out, cudaStream_t st) {
    const dim3 grid(unsigned(n), unsigned((l.chunks + 7) / 8));
    get_rows_tiled_kernel<L><<<grid, 256, 0, st>>>(static_cast<const uint8_t*>(w), l.rg_bytes, int(l.chunks),
                                                   int(l.rows), int(l.cols), ids, out);
    QG_LAUNCHED();
}

template <Type TY>
void get_rows_plain(const DeviceLayout& l, const void* w, const int32_t* ids, int64_t n, float* out, cudaStream_t st) {
    const dim3 grid(unsigned(std::min<int64_t>((l.cols + 255) / 256, 64)), unsigned(n));
    get_rows_plain_kernel<TY><<<grid, 256, 0, st>>>(static_cast<const uint8_t*>(w), l.ld * (TY == Type::F32 ? 4 : 2),
                                                    int(l.rows), int(l.cols), ids, out);
    QG_LAUNCHED();
}

}  // namespace

void dequant_bf16(const DeviceLayout& l, const void* w, int64_t row0, int64_t nrows, uint16_t* out, int64_t ldo,
                  cudaStream_t st) {
    if (nrows <= 0) return;
    if (l.tiled && row0 % kTileRows != 0) throw Error("quant_ggml: dequant_bf16: row0 is not a multiple of 16");
    if (ldo % 2 != 0) throw Error("quant_ggml: dequant_bf16: odd output stride");
    switch (l.type) {
        case Type::Q4_0: dequant_tiled<LayoutQ4_0>(l, w, row0, nrows, out, ldo, st); break;
        case Type::Q4_1: dequant_tiled<LayoutQ4_1>(l, w, row0, nrows, out, ldo, st); break;
        case Type::Q8_0: dequant_tiled<LayoutQ8_0>(l, w, row0, nrows, out, ldo, st); break;
        case Type::Q4_K: dequant_tiled<LayoutQ4_K>(l, w, row0, nrows, out, ldo, st); break;
        case Type::Q5_K: dequant_tiled<LayoutQ5_K>(l, w, row0, nrows, out, ldo, st); break;
        case Type::Q6_K: dequant_tiled<LayoutQ6_K>(l, w, row0, nrows, out, ldo, st); break;
        case Type::F16:
            f16_to_bf16_kernel<<<grid_for(nrows * l.cols, 256), 256, 0, st>>>(
                static_cast<const __half*>(w) + row0 * l.ld, l.ld, nrows, int(l.cols),
                reinterpret_cast<__nv_bfloat16*>(out), ldo);
            QG_LAUNCHED();
            break;
        default: throw Error(std::string("quant_ggml: no bf16 dequantization for type ") + type_info(l.type).name);
    }
}

void to_bf16(const float* x, int64_t xs, int64_t n_tokens, int64_t cols, uint16_t* out, int64_t ldo, cudaStream_t st) {
    if (n_tokens <= 0) return;
    to_bf16_kernel<<<grid_for(n_tokens * cols, 256), 256, 0, st>>>(x, xs, n_tokens, int(cols),
                                                                    reinterpret_cast<__nv_bfloat16*>(out), ldo);
    QG_LAUNCHED();
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
