// quant_ggml CUDA: host-side launchers of the kernels (each checks its launch and throws imp::Error on failure).
// All work goes to `stream`; none of them allocates.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "repack.h"

namespace imp::ggml::cuda {

// Tokens up to which matmul takes the GEMV kernels (the GEMM path above: dequantize to bf16 + cuBLASLt).
constexpr int kMaxGemvTokens = 8;

struct GemvArgs {
    const void* w = nullptr;  // weight in its DeviceLayout
    const float* x = nullptr;
    int64_t xs = 0;  // x row stride (floats)
    float* y = nullptr;
    int64_t ys = 0;    // y row stride (floats)
    int n_tokens = 0;  // 1..kMaxGemvTokens
    int splits = 0;    // tiled types: column splits over a cluster of CTAs (0 = from the shape; a test/bench knob)
    int kw = 0;        // tiled types: warps per row group, 1/2/4/8 (0 = from the shape; a test/bench knob)
    bool accumulate = false;  // y += W x instead of y = W x (each output read and written once)
    bool pdl = false;  // tiled types: launch with programmatic dependent launch (CudaHandles::pdl of the executor)
    bool dp4a = true;  // one token, Q4_K / Q6_K: the dp4a form (false: the tensor-core form)
    bool q8_dp4a = false;   // one token, Q8_0: the dp4a form (false: the tensor-core form)
    bool prefetch = false;  // tiled types: both weight buffers in flight before the input is ready (else one)
    bool plain_pdl = false;  // F32 / F16 / BF16: launched with PDL too (when pdl), weights loaded before the wait
    int l2_prefetch = 0;     // tiled types: bytes per CTA of its weights prefetched into L2 before the wait
    // Weight::matmul_fused: x -> rms_norm(x) * norm per token before the product (norm: cols floats; tiled types,
    // and plain types where gemv_fusable), and / or (tiled types only) y[t, r] = silu(Wx[t, r]) * Wx[t, rows / 2 + r]
    // for r < rows / 2 (rows a multiple of 32, not accumulating).
    const float* norm = nullptr;
    float norm_eps = 0.f;
    bool swiglu = false;
};
// Shared memory a plain-type norm-fused GEMV stages its rows in (T x cols floats, T the token bucket 1, 2, 4 or 8).
constexpr int64_t kMaxPlainNormSmem = 40 * 1024;
// Whether gemv() can take a.norm / a.swiglu for layout l (the tiled types; SwiGLU: rows a multiple of 32; the plain
// types the norm alone, cols a multiple of 4, x and norm 16-byte aligned, the staged rows within kMaxPlainNormSmem).
bool gemv_fusable(const DeviceLayout& l, const GemvArgs& a);

// y[t, r] = sum_c x[t, c] W[r, c] (a.accumulate: y[t, r] += that sum), fp32 accumulation; a.norm / a.swiglu as
// above (gemv_fusable must hold, else imp::Error). Tiled types: tensor-core
// kernel (gemv_tiled.cuh), activations split into two bf16 parts (hi + lo, ~16 significant bits), codes exact in
// bf16, scales applied in fp32 per scale block. Plain types: CUDA-core fp32 FMA. sm_count and cc (major * 10 + minor) come from the executor's handles.
void gemv(const DeviceLayout& l, const GemvArgs& a, int sm_count, int cc, cudaStream_t stream);
// Per-process kernel setup of type t (the shared-memory limit of its GEMV kernels); call before the first launch,
// outside any stream capture (load does).
void prepare_kernels(Type t);

// Dequantizes rows [row0, row0 + nrows) to bf16 (round to nearest even) into out[(r - row0) * ldo + c].
// Tiled types: row0 a multiple of 16. Not for BF16 (used in place) or F32 (fp32 GEMM).
void dequant_bf16(const DeviceLayout& l, const void* w, int64_t row0, int64_t nrows, uint16_t* out, int64_t ldo,
                  cudaStream_t stream);

// out[t * ldo + c] = bf16(x[t * xs + c]) for t < n_tokens, c < cols.
void to_bf16(const float* x, int64_t xs, int64_t n_tokens, int64_t cols, uint16_t* out, int64_t ldo,
             cudaStream_t stream);
// The GEMM input with the op before it fused in (Weight::matmul_fused), in bf16, bit for bit the executor's op
// followed by to_bf16 (same block size and summation order as its rms_norm kernel, same silu formula as its swiglu):
//   to_bf16_norm:   out[t, c] = bf16(x[t, c] * rsqrt(mean_c x[t, :]^2 + eps) * norm[c])
//   to_bf16_swiglu: out[t, c] = bf16(x[t, c] / (1 + exp(-x[t, c])) * up[t, c])   (x: the gate; up: row stride xs)
// ldo is a multiple of 8. pdl: launched as a programmatic dependent of the kernel before it.
void to_bf16_norm(const float* x, int64_t xs, const float* norm, float eps, int64_t n_tokens, int64_t cols,
                  uint16_t* out, int64_t ldo, bool pdl, cudaStream_t stream);
void to_bf16_swiglu(const float* x, const float* up, int64_t xs, int64_t n_tokens, int64_t cols, uint16_t* out,
                    int64_t ldo, bool pdl, cudaStream_t stream);

// out[i, :] = W[ids[i], :] in fp32, exactly the reference dequantization; an id outside [0, rows) gives a row of
// NaN.
void get_rows(const DeviceLayout& l, const void* w, const int32_t* ids, int64_t n, float* out, cudaStream_t stream);

}  // namespace imp::ggml::cuda
