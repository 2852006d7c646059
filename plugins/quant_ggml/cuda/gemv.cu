// quant_ggml CUDA: the GEMV entry point, and the GEMV of the plain float types (F32, F16, BF16) on the CUDA cores.
// The fused forms (RMSNorm prologue, SwiGLU epilogue) exist for the tiled types (gemv_tiled.cuh); the plain types take
// the RMSNorm (staged in shared memory per CTA).
//
// Plain types: a CTA of 8 warps owns RW rows (4; 2 for F32) and its warps split the columns: 8-column chunk ch goes
// to lane ch % 32 of warp (ch / 32) % 8, so a warp's loads are 512 contiguous bytes per row. Each lane loads its
// chunk of all RW rows (16-byte loads; the next chunk's loads issued before the current one is computed), reads x
// once per chunk and token for all RW rows, fp32 FMA; then warp shuffles and a shared-memory sum over the warps.
// Rows are padded to a multiple of 8 elements, so the weight loads are aligned. With GemvArgs::plain_pdl (and pdl) the
// kernel is launched dependent: both chunk buffers' weight loads are issued before griddepcontrol.wait (x and y are
// read only after it), and it lets the next kernel launch after its main loop, as the tiled kernels do.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdlib>
#include <mutex>
#include <string>

#include "gemv_tiled.cuh"
#include "imp/cuda/launch.cuh"
#include "imp/cuda/row_ops.cuh"
#include "imp/error.h"

namespace imp::ggml::cuda {

extern template void launch_gemv_tiled<LayoutQ4_0>(const DeviceLayout&, const GemvArgs&, int, int, cudaStream_t);
extern template void launch_gemv_tiled<LayoutQ4_1>(const DeviceLayout&, const GemvArgs&, int, int, cudaStream_t);
extern template void launch_gemv_tiled<LayoutQ8_0>(const DeviceLayout&, const GemvArgs&, int, int, cudaStream_t);
extern template void launch_gemv_tiled<LayoutQ4_K>(const DeviceLayout&, const GemvArgs&, int, int, cudaStream_t);
extern template void launch_gemv_tiled<LayoutQ5_K>(const DeviceLayout&, const GemvArgs&, int, int, cudaStream_t);
extern template void launch_gemv_tiled<LayoutQ6_K>(const DeviceLayout&, const GemvArgs&, int, int, cudaStream_t);
extern template void prepare_tiled<LayoutQ4_0>();
extern template void prepare_tiled<LayoutQ4_1>();
extern template void prepare_tiled<LayoutQ8_0>();
extern template void prepare_tiled<LayoutQ4_K>();
extern template void prepare_tiled<LayoutQ5_K>();
extern template void prepare_tiled<LayoutQ6_K>();

namespace {

constexpr int kPlainWarps = 8;

template <Type TY>
struct Plain {
    static constexpr int kWords = TY == Type::F32 ? 8 : 4;  // 32-bit words per 8 elements
    static constexpr int kElem = TY == Type::F32 ? 4 : 2;
    __device__ __forceinline__ static void load(const uint8_t* p, uint32_t (&q)[kWords]) { load_stream(p, q, kWords); }
    __device__ __forceinline__ static void to_float(const uint32_t (&q)[kWords], float (&v)[8]) {
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            if constexpr (TY == Type::F32) {
                v[2 * i] = __uint_as_float(q[2 * i]);
                v[2 * i + 1] = __uint_as_float(q[2 * i + 1]);
            } else if constexpr (TY == Type::F16) {
                const float2 f = __half22float2(*reinterpret_cast<const __half2*>(&q[i]));
                v[2 * i] = f.x, v[2 * i + 1] = f.y;
            } else {
                v[2 * i] = __uint_as_float(q[i] << 16);
                v[2 * i + 1] = __uint_as_float(q[i] & 0xFFFF0000u);
            }
        }
    }
};

// SX: x is in shared memory (the RMS-normalized rows a norm-fused call stages: 16-byte aligned, stride cols).
template <Type TY, int T, int RW, bool SX = false>
struct PlainGemv {
    using P = Plain<TY>;
    const uint8_t* w;
    int64_t ld_bytes;
    int rows, cols, nch, r0, n_tokens, x_vec;
    const float* x;
    int64_t xs;
    float acc[RW][T];

    __device__ __forceinline__ void load(uint32_t (&q)[RW][P::kWords], int ch) const {
#pragma unroll
        for (int r = 0; r < RW; ++r) {
            if (ch < nch && r0 + r < rows) {
                P::load(w + int64_t(r0 + r) * ld_bytes + int64_t(ch) * 8 * P::kElem, q[r]);
            } else {
#pragma unroll
                for (int i = 0; i < P::kWords; ++i) q[r][i] = 0;
            }
        }
    }
    __device__ __forceinline__ void compute(const uint32_t (&q)[RW][P::kWords], int ch) {
        if (ch >= nch) return;
        float wv[RW][8];
#pragma unroll
        for (int r = 0; r < RW; ++r) P::to_float(q[r], wv[r]);
        const int col = ch * 8;
#pragma unroll
        for (int t = 0; t < T; ++t) {
            if (t >= n_tokens) continue;
            const float* xt = x + int64_t(t) * xs + col;
            float xv[8];
            if (SX) {  // cols a multiple of 4: the last 8-column chunk may hold 4
                const float4 a = *reinterpret_cast<const float4*>(xt);
                const float4 b = col + 8 <= cols ? *(reinterpret_cast<const float4*>(xt) + 1) : make_float4(0.f, 0.f, 0.f, 0.f);
                xv[0] = a.x, xv[1] = a.y, xv[2] = a.z, xv[3] = a.w, xv[4] = b.x, xv[5] = b.y, xv[6] = b.z, xv[7] = b.w;
            } else if (x_vec && col + 8 <= cols) {
                const float4 a = __ldg(reinterpret_cast<const float4*>(xt));
                const float4 b = __ldg(reinterpret_cast<const float4*>(xt) + 1);
                xv[0] = a.x, xv[1] = a.y, xv[2] = a.z, xv[3] = a.w, xv[4] = b.x, xv[5] = b.y, xv[6] = b.z, xv[7] = b.w;
            } else {
#pragma unroll
                for (int e = 0; e < 8; ++e) xv[e] = col + e < cols ? __ldg(xt + e) : 0.f;
            }
#pragma unroll
            for (int r = 0; r < RW; ++r)
#pragma unroll
                for (int e = 0; e < 8; ++e) acc[r][t] = fmaf(wv[r][e], xv[e], acc[r][t]);
        }
    }
};

// N: a norm-fused call (GemvArgs::norm): the CTA stages its tokens' rows of x in shared memory (after the PDL wait
// when launched dependent) as the executor's rms_norm computes them (x * rsqrt(mean(x^2) + eps) * norm, the sum of
// squares in another order), and the chunks read them there.
template <Type TY, int T, int RW, bool N = false>
__global__ void __launch_bounds__(kPlainWarps * 32)
    gemv_plain_kernel(const uint8_t* __restrict__ w, int64_t ld_bytes, int rows, int cols, const float* __restrict__ x,
                      int64_t xs, float* __restrict__ y, int64_t ys, int n_tokens, int x_vec, int accumulate,
                      int pdl, const float* __restrict__ norm, float eps) {
    __shared__ float red[kPlainWarps][RW * T];
    __shared__ float nred[32];
    extern __shared__ float4 xn4[];  // N: [T][cols / 4]
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    PlainGemv<TY, T, RW, N> g{w,     ld_bytes, rows, cols, (cols + 7) / 8, int(blockIdx.x) * RW, n_tokens, x_vec,
                              N ? reinterpret_cast<const float*>(xn4) : x, N ? int64_t(cols) : xs};
    auto stage = [&] { ::imp::cuda::stage_rms_norm_rows(xn4, x, xs, n_tokens, cols, norm, eps, nred); };  // N only
#pragma unroll
    for (int r = 0; r < RW; ++r)
#pragma unroll
        for (int t = 0; t < T; ++t) g.acc[r][t] = 0.f;
    constexpr int kStep = kPlainWarps * 32;
    uint32_t qa[RW][Plain<TY>::kWords], qb[RW][Plain<TY>::kWords];
    const int first = warp * 32 + lane;
    g.load(qa, first);
    if (N && !pdl) stage();
    if (pdl) {
        g.load(qb, first + kStep);
        ::imp::cuda::pdl_wait();
        if constexpr (N) stage();
        for (int ch = first; ch < g.nch; ch += 2 * kStep) {
            g.compute(qa, ch);
            g.load(qa, ch + 2 * kStep);
            g.compute(qb, ch + kStep);
            g.load(qb, ch + 3 * kStep);
        }
        ::imp::cuda::pdl_launch_dependents();
    } else {
        for (int ch = first; ch < g.nch; ch += 2 * kStep) {
            g.load(qb, ch + kStep);
            g.compute(qa, ch);
            g.load(qa, ch + 2 * kStep);
            g.compute(qb, ch + kStep);
        }
    }
#pragma unroll
    for (int r = 0; r < RW; ++r)
#pragma unroll
        for (int t = 0; t < T; ++t) {
            float v = g.acc[r][t];
#pragma unroll
            for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xFFFFFFFFu, v, o);
            if (lane == 0) red[warp][r * T + t] = v;
        }
    __syncthreads();
    if (int(threadIdx.x) < RW * T) {
        const int r = threadIdx.x / T, t = threadIdx.x % T;
        float v = 0.f;
#pragma unroll
        for (int wv = 0; wv < kPlainWarps; ++wv) v += red[wv][threadIdx.x];
        if (g.r0 + r < rows && t < n_tokens) {
            float* yp = y + int64_t(t) * ys + g.r0 + r;
            *yp = accumulate ? *yp + v : v;
        }
    }
}

template <Type TY, int T>
void launch_plain(const DeviceLayout& l, const GemvArgs& a, cudaStream_t st) {
    constexpr int RW = TY == Type::F32 ? 2 : 4;
    const int x_vec = (reinterpret_cast<uintptr_t>(a.x) % 16 == 0) && (a.xs % 4 == 0);
    const int pdl = a.pdl && a.plain_pdl ? 1 : 0;
    ::imp::cuda::LaunchConfig cfg;
    cfg.grid = dim3(unsigned((l.rows + RW - 1) / RW), 1, 1);
    cfg.block = dim3(kPlainWarps * 32, 1, 1);
    cfg.stream = st;
    cfg.pdl = pdl != 0;
    cfg.smem = a.norm ? size_t(T) * size_t(l.cols) * 4 : 0;
    const auto k = a.norm ? gemv_plain_kernel<TY, T, RW, true> : gemv_plain_kernel<TY, T, RW, false>;
    IMP_CUDA_CHECK(::imp::cuda::launch(cfg, k, static_cast<const uint8_t*>(a.w), int64_t(l.ld * Plain<TY>::kElem),
                                       int(l.rows), int(l.cols), a.x, a.xs, a.y, a.ys, a.n_tokens, x_vec,
                                       a.accumulate ? 1 : 0, pdl, a.norm, a.norm_eps));
}

template <Type TY>
void gemv_plain(const DeviceLayout& l, const GemvArgs& a, cudaStream_t st) {
    if (a.n_tokens <= 1)
        launch_plain<TY, 1>(l, a, st);
    else if (a.n_tokens <= 2)
        launch_plain<TY, 2>(l, a, st);
    else if (a.n_tokens <= 4)
        launch_plain<TY, 4>(l, a, st);
    else
        launch_plain<TY, 8>(l, a, st);
}

}  // namespace

bool gemv_fusable(const DeviceLayout& l, const GemvArgs& a) {
    const bool tiled = l.type == Type::Q4_0 || l.type == Type::Q4_1 || l.type == Type::Q8_0 || l.type == Type::Q4_K ||
                       l.type == Type::Q5_K || l.type == Type::Q6_K;
    const bool plain = l.type == Type::F32 || l.type == Type::F16 || l.type == Type::BF16;
    if (!a.norm && !a.swiglu) return true;
    if (plain) {  // the norm only: the rows staged in shared memory (kMaxPlainNormSmem), 16-byte aligned
        const int64_t T = a.n_tokens <= 1 ? 1 : a.n_tokens <= 2 ? 2 : a.n_tokens <= 4 ? 4 : 8;
        return !a.swiglu && a.n_tokens >= 1 && a.n_tokens <= kMaxGemvTokens && l.cols % 4 == 0 &&
               T * l.cols * 4 <= kMaxPlainNormSmem && reinterpret_cast<uintptr_t>(a.x) % 16 == 0 &&
               reinterpret_cast<uintptr_t>(a.norm) % 16 == 0 && (a.n_tokens == 1 || a.xs % 4 == 0);
    }
    if (!tiled || a.n_tokens < 1 || a.n_tokens > kMaxGemvTokens) return false;
    return !a.swiglu || (l.rows % 32 == 0 && !a.accumulate);
}

void gemv(const DeviceLayout& l, const GemvArgs& a, int sm_count, int cc, cudaStream_t st) {
    if (a.n_tokens <= 0) return;
    if (!gemv_fusable(l, a))
        throw Error(std::string("quant_ggml: no fused (norm / SwiGLU) GEMV for type ") + type_info(l.type).name +
                    ", " + std::to_string(l.rows) + " rows, " + std::to_string(a.n_tokens) + " tokens");
    if (a.n_tokens > kMaxGemvTokens)
        throw Error("quant_ggml: GEMV called with " + std::to_string(a.n_tokens) + " tokens, at most " +
                    std::to_string(kMaxGemvTokens));
    if (sm_count <= 0) sm_count = 132;
    switch (l.type) {
        case Type::Q4_0: launch_gemv_tiled<LayoutQ4_0>(l, a, sm_count, cc, st); break;
        case Type::Q4_1: launch_gemv_tiled<LayoutQ4_1>(l, a, sm_count, cc, st); break;
        case Type::Q8_0: launch_gemv_tiled<LayoutQ8_0>(l, a, sm_count, cc, st); break;
        case Type::Q4_K: launch_gemv_tiled<LayoutQ4_K>(l, a, sm_count, cc, st); break;
        case Type::Q5_K: launch_gemv_tiled<LayoutQ5_K>(l, a, sm_count, cc, st); break;
        case Type::Q6_K: launch_gemv_tiled<LayoutQ6_K>(l, a, sm_count, cc, st); break;
        case Type::F32: gemv_plain<Type::F32>(l, a, st); break;
        case Type::F16: gemv_plain<Type::F16>(l, a, st); break;
        case Type::BF16: gemv_plain<Type::BF16>(l, a, st); break;
        default: throw Error(std::string("quant_ggml: no CUDA GEMV for type ") + type_info(l.type).name);
    }
}

void prepare_kernels(Type t) {
    static std::once_flag once[kTypeCount];
    std::call_once(once[int(t)], [t] {
        switch (t) {
            case Type::Q4_0: prepare_tiled<LayoutQ4_0>(); break;
            case Type::Q4_1: prepare_tiled<LayoutQ4_1>(); break;
            case Type::Q8_0: prepare_tiled<LayoutQ8_0>(); break;
            case Type::Q4_K: prepare_tiled<LayoutQ4_K>(); break;
            case Type::Q5_K: prepare_tiled<LayoutQ5_K>(); break;
            case Type::Q6_K: prepare_tiled<LayoutQ6_K>(); break;
            default: break;
        }
    });
}

}  // namespace imp::ggml::cuda
