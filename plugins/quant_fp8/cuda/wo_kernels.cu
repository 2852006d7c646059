// Weight-only CUDA kernels besides the GEMV (wo_kernels.h): embedding rows, bf16 tiles for the BF16 GEMM path,
// activation conversion to bf16, the weighted sum over expert slots, and the NVFP4 -> FP8 conversion at load.
// Elementwise, one thread per output; deterministic. The FP8 GEMM's activation quantization and epilogue are in
// wo_quant.cu.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <string>

#include "imp/cuda/check.h"
#include "imp/cuda/launch.cuh"
#include "imp/cuda/reduce.cuh"
#include "imp/error.h"
#include "wo_decode.cuh"
#include "wo_kernels.h"

namespace imp::wo {
namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ float e2m1(uint32_t code) {
    const float mag[8] = {0.f, 0.5f, 1.f, 1.5f, 2.f, 3.f, 4.f, 6.f};
    const float v = mag[code & 7u];
    return (code & 8u) ? -v : v;
}

// NVFP4 element c of row r of matrix m: its code and its scale byte.
__device__ __forceinline__ uint32_t nv_code(const Layout& l, const uint8_t* m, int64_t r, int64_t c) {
    const int i = int(c & 7);
    const int nib = (i & 1 ? 7 : 3) - (i >> 1);
    const uint32_t w = *reinterpret_cast<const uint32_t*>(m + r * l.ld + (c >> 5) * 16 + ((c >> 3) & 3) * 4);
    return (w >> (4 * nib)) & 0xFu;
}
__device__ __forceinline__ float nv_scale(const Layout& l, const uint8_t* m, int64_t r, int64_t c) {
    return e4m3(m[l.scale_off + r * l.scale_ld + (c >> 4)]);
}
__device__ __forceinline__ const float* post(const Layout& l, const uint8_t* m) {
    return reinterpret_cast<const float*>(m + l.post_off);
}

__global__ void get_rows_kernel(Layout l, const uint8_t* __restrict__ m, const int32_t* __restrict__ ids,
                                float* __restrict__ out) {
    const int64_t i = blockIdx.x;
    const int32_t id = ids[i];
    float* o = out + i * l.cols;
    const bool ok = id >= 0 && id < l.rows;
    for (int64_t c = threadIdx.x; c < l.cols; c += blockDim.x) {
        float v = 0.f;
        if (ok) {
            if (l.codec == Codec::NVFP4)
                v = __fmul_rn(e2m1(nv_code(l, m, id, c)), __fmul_rn(nv_scale(l, m, id, c), post(l, m)[0]));
            else
                v = __fmul_rn(e4m3(m[int64_t(id) * l.ld + c]), post(l, m)[l.n_post == 1 ? 0 : id]);
        }
        o[c] = v;
    }
}

// One thread per 8 elements (an NVFP4 word, or 8 FP8 bytes): one 16-byte store of 8 bf16. ldo % 8 == 0, ldo >= cp.
__global__ void dequant_bf16_kernel(Layout l, const uint8_t* __restrict__ m, int64_t r0, uint16_t* __restrict__ out,
                                    int64_t ldo) {
    const int64_t r = r0 + blockIdx.y;
    const int64_t c0 = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) * 8;
    if (c0 >= ldo) return;
    float v[8];
    if (c0 >= l.cols) {
#pragma unroll
        for (int i = 0; i < 8; ++i) v[i] = 0.f;
    } else if (l.codec == Codec::NVFP4) {
        const uint32_t w = *reinterpret_cast<const uint32_t*>(m + r * l.ld + (c0 >> 5) * 16 + ((c0 >> 3) & 3) * 4);
        const float sc = nv_scale(l, m, r, c0);  // 8 elements share one 16-element block
#pragma unroll
        for (int i = 0; i < 8; ++i) v[i] = __fmul_rn(e2m1((w >> (4 * ((i & 1 ? 7 : 3) - (i >> 1)))) & 0xFu), sc);
    } else {
        const uint2 q = *reinterpret_cast<const uint2*>(m + r * l.ld + c0);
        const float s = l.n_post == 1 ? 1.f : post(l, m)[r];
#pragma unroll
        for (int i = 0; i < 8; ++i) {
            const float e = e4m3((i < 4 ? q.x : q.y) >> (8 * (i & 3)));
            v[i] = c0 + i < l.cols ? (l.n_post == 1 ? e : __fmul_rn(e, s)) : 0.f;
        }
    }
    uint4 o;
    uint32_t* ow = &o.x;
#pragma unroll
    for (int i = 0; i < 4; ++i)
        ow[i] = uint32_t(__bfloat16_as_ushort(__float2bfloat16_rn(v[2 * i]))) |
                uint32_t(__bfloat16_as_ushort(__float2bfloat16_rn(v[2 * i + 1]))) << 16;
    *reinterpret_cast<uint4*>(out + int64_t(blockIdx.y) * ldo + c0) = o;
}

__global__ void to_bf16_kernel(const float* __restrict__ x, int64_t xs, int64_t cols, uint16_t* __restrict__ out,
                               int64_t ldo) {
    const float* xr = x + int64_t(blockIdx.x) * xs;
    uint16_t* o = out + int64_t(blockIdx.x) * ldo;
    for (int64_t c = threadIdx.x; c < ldo; c += blockDim.x)
        o[c] = __bfloat16_as_ushort(__float2bfloat16_rn(c < cols ? xr[c] : 0.f));
}

// extra_part: the extra slot's rows ([n_tokens, rows]), or null; extra_w: their weights, or null (1).
__global__ void experts_reduce_kernel(const float* __restrict__ part, int64_t rows, const int32_t* __restrict__ ids,
                                      const float* __restrict__ weights, int n_expert, int top_k, float* y, int64_t ys,
                                      int accumulate, const float* __restrict__ extra_part,
                                      const float* __restrict__ extra_w) {
    ::imp::cuda::pdl_launch_dependents();
    ::imp::cuda::pdl_wait();
    const int64_t r = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (r >= rows) return;
    const int64_t t = blockIdx.y;
    // The extra slot's value is requested first, then the routed slots a batch of 8 at a time (routed_slot_sum; 3.7
    // us a call on the H100 for the 35B's top 8 + 1 with one slot at a time); the sums keep their order.
    const float xw = extra_part ? (extra_w ? extra_w[t] : 1.f) : 0.f;
    const float xv = extra_part ? extra_part[t * rows + r] : 0.f;
    float v = ::imp::cuda::routed_slot_sum(part, rows, r, ids, weights, n_expert, top_k, t);
    if (extra_part) v = fmaf(xw, xv, v);
    float* yp = y + t * ys + r;
    *yp = accumulate ? *yp + v : v;
}

// One CTA: counts per bucket (n_expert experts + the out-of-range bucket) in shared memory, a serial scan lays the
// buckets' items out in expert order, then each pair takes a place in its bucket with an atomic cursor.
__global__ void __launch_bounds__(1024)
    experts_group_kernel(const int32_t* __restrict__ ids, int n_pairs, int n_expert, int G,
                         int32_t* __restrict__ n_groups, int32_t* __restrict__ groups, int32_t* __restrict__ order) {
    extern __shared__ int sm[];
    const int nb = n_expert + 1;
    int* count = sm;
    int* pstart = count + nb;
    int* gstart = pstart + nb;
    for (int b = threadIdx.x; b < nb; b += blockDim.x) count[b] = 0;
    __syncthreads();
    for (int p = threadIdx.x; p < n_pairs; p += blockDim.x) {
        const int id = ids[p];
        atomicAdd(&count[id >= 0 && id < n_expert ? id : n_expert], 1);
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        int ps = 0, gs = 0;
        for (int b = 0; b < nb; ++b) {
            pstart[b] = ps;
            gstart[b] = gs;
            ps += count[b];
            gs += (count[b] + G - 1) / G;
        }
        *n_groups = gs;
    }
    __syncthreads();
    for (int b = threadIdx.x; b < nb; b += blockDim.x) {
        const int c = count[b];
        for (int k = 0; k * G < c; ++k) {
            int32_t* gp = groups + 3 * int64_t(gstart[b] + k);
            gp[0] = b < n_expert ? b : -1;
            gp[1] = pstart[b] + k * G;
            gp[2] = min(G, c - k * G);
        }
    }
    __syncthreads();
    for (int b = threadIdx.x; b < nb; b += blockDim.x) count[b] = pstart[b];  // cursors
    __syncthreads();
    for (int p = threadIdx.x; p < n_pairs; p += blockDim.x) {
        const int id = ids[p];
        order[atomicAdd(&count[id >= 0 && id < n_expert ? id : n_expert], 1)] = p;
    }
}

__global__ void swiglu_rows_kernel(const float* __restrict__ x, int64_t xs, int64_t cols, float* __restrict__ out) {
    ::imp::cuda::pdl_launch_dependents();
    ::imp::cuda::pdl_wait();
    const int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (c >= cols) return;
    const float* xr = x + int64_t(blockIdx.y) * xs;
    const float g = xr[c];
    out[int64_t(blockIdx.y) * cols + c] = g / (1.f + expf(-g)) * xr[cols + c];
}

__global__ void nvfp4_to_fp8_kernel(Layout l, uint8_t* __restrict__ m, float inv_unit) {
    const int64_t r = blockIdx.x;
    uint8_t* o = m + l.fp8_off + r * l.cp;
    for (int64_t c = threadIdx.x; c < l.cp; c += blockDim.x) {
        const float v = c < l.cols ? e2m1(nv_code(l, m, r, c)) * nv_scale(l, m, r, c) : 0.f;
        o[c] = __nv_cvt_float_to_fp8(v * inv_unit, __NV_SATFINITE, __NV_E4M3);
    }
}


}  // namespace

void get_rows(const Layout& l, const uint8_t* w, const int32_t* ids, int64_t n, float* out, cudaStream_t st) {
    if (n <= 0) return;
    get_rows_kernel<<<unsigned(n), kThreads, 0, st>>>(l, w, ids, out);
    IMP_CUDA_CHECK_LAUNCH();
}

void dequant_bf16(const Layout& l, const uint8_t* w, int64_t r0, int64_t nr, uint16_t* out, int64_t ldo,
                  cudaStream_t st) {
    for (int64_t done = 0; done < nr; done += 65535) {
        const int64_t rows = nr - done < 65535 ? nr - done : 65535;
        const dim3 grid(unsigned(::imp::cuda::div_up(ldo / 8, kThreads)), unsigned(rows));
        dequant_bf16_kernel<<<grid, kThreads, 0, st>>>(l, w, r0 + done, out + done * ldo, ldo);
        IMP_CUDA_CHECK_LAUNCH();
    }
}

void to_bf16(const float* x, int64_t xs, int64_t n, int64_t cols, uint16_t* out, int64_t ldo, cudaStream_t st) {
    if (n <= 0) return;
    to_bf16_kernel<<<unsigned(n), kThreads, 0, st>>>(x, xs, cols, out, ldo);
    IMP_CUDA_CHECK_LAUNCH();
}

void experts_reduce(const float* part, int64_t rows, const int32_t* ids, const float* weights, int n_expert,
                    int64_t n_tokens, int top_k, float* y, int64_t ys, bool accumulate, bool pdl, cudaStream_t st,
                    bool extra, const float* extra_weights) {
    const float* extra_part = extra ? part + n_tokens * top_k * rows : nullptr;
    for (int64_t t0 = 0; t0 < n_tokens; t0 += 65535) {
        const int64_t nt = n_tokens - t0 < 65535 ? n_tokens - t0 : 65535;
        IMP_CUDA_CHECK(::imp::cuda::launch(experts_reduce_kernel,
                                           dim3(unsigned(::imp::cuda::div_up(rows, kThreads)), unsigned(nt)),
                                           dim3(kThreads), 0, st, pdl, part + t0 * top_k * rows, rows,
                                           ids + t0 * top_k, weights + t0 * top_k, n_expert, top_k, y + t0 * ys, ys,
                                           accumulate ? 1 : 0, extra_part ? extra_part + t0 * rows : nullptr,
                                           extra_part && extra_weights ? extra_weights + t0 : nullptr));
    }
}

void experts_group(const int32_t* ids, int n_pairs, int n_expert, int group, int32_t* n_groups, int32_t* groups,
                   int32_t* order, cudaStream_t st) {
    if (group < kExpertGroup) throw Error("experts_group: groups of " + std::to_string(group) + " pairs");
    const size_t smem = size_t(3) * size_t(n_expert + 1) * sizeof(int);
    experts_group_kernel<<<1, 1024, smem, st>>>(ids, n_pairs, n_expert, group, n_groups, groups, order);
    IMP_CUDA_CHECK_LAUNCH();
}

void swiglu_rows(const float* x, int64_t xs, int64_t n, int64_t cols, float* out, bool pdl, cudaStream_t st) {
    for (int64_t i0 = 0; i0 < n; i0 += 65535) {
        const int64_t ni = n - i0 < 65535 ? n - i0 : 65535;
        IMP_CUDA_CHECK(::imp::cuda::launch(swiglu_rows_kernel,
                                           dim3(unsigned(::imp::cuda::div_up(cols, kThreads)), unsigned(ni)),
                                           dim3(kThreads), 0, st, pdl, x + i0 * xs, xs, cols, out + i0 * cols));
    }
}

void nvfp4_to_fp8(const Layout& l, uint8_t* w, float inv_unit, cudaStream_t st) {
    nvfp4_to_fp8_kernel<<<unsigned(l.rows), kThreads, 0, st>>>(l, w, inv_unit);
    IMP_CUDA_CHECK_LAUNCH();
}

}  // namespace imp::wo
