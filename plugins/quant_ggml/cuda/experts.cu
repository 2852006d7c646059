// quant_ggml CUDA: the expert GEMV of the plain types (F32, F16, BF16) over stacked experts, and the dispatch of the
// expert GEMV by type (the tiled types: gemv_experts.cuh; grouping and weighted sum: experts_route.cu).
//
// Plain GEMV: as gemv.cu's (a CTA of 8 warps owns RW rows and its warps split the columns into 8-column chunks,
// 16-byte loads, fp32 FMA, warp shuffles then a shared-memory sum over the warps), over a third grid dimension of
// work items (ExpertsRoute) whose tokens' activation and output rows come through the pair indices; with route.glu
// the 8 activations of a chunk are silu(gate) * up of a [gate | up] row.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <mutex>
#include <string>

#include "gemv_experts.cuh"
#include "imp/error.h"

namespace imp::ggml::cuda {

extern template void launch_experts_tiled<LayoutQ4_0>(const DeviceLayout&, const ExpertsArgs&, int, int, cudaStream_t);
extern template void launch_experts_tiled<LayoutQ4_1>(const DeviceLayout&, const ExpertsArgs&, int, int, cudaStream_t);
extern template void launch_experts_tiled<LayoutQ8_0>(const DeviceLayout&, const ExpertsArgs&, int, int, cudaStream_t);
extern template void launch_experts_tiled<LayoutQ4_K>(const DeviceLayout&, const ExpertsArgs&, int, int, cudaStream_t);
extern template void launch_experts_tiled<LayoutQ5_K>(const DeviceLayout&, const ExpertsArgs&, int, int, cudaStream_t);
extern template void launch_experts_tiled<LayoutQ6_K>(const DeviceLayout&, const ExpertsArgs&, int, int, cudaStream_t);
extern template bool experts_tiled_fits<LayoutQ4_0>(const DeviceLayout&, int, int);
extern template bool experts_tiled_fits<LayoutQ4_1>(const DeviceLayout&, int, int);
extern template bool experts_tiled_fits<LayoutQ8_0>(const DeviceLayout&, int, int);
extern template bool experts_tiled_fits<LayoutQ4_K>(const DeviceLayout&, int, int);
extern template bool experts_tiled_fits<LayoutQ5_K>(const DeviceLayout&, int, int);
extern template bool experts_tiled_fits<LayoutQ6_K>(const DeviceLayout&, int, int);
extern template void prepare_experts_tiled<LayoutQ4_0>();
extern template void prepare_experts_tiled<LayoutQ4_1>();
extern template void prepare_experts_tiled<LayoutQ8_0>();
extern template void prepare_experts_tiled<LayoutQ4_K>();
extern template void prepare_experts_tiled<LayoutQ5_K>();
extern template void prepare_experts_tiled<LayoutQ6_K>();

namespace {

constexpr int kPlainWarps = 8;

// 8 elements of a plain type: kWords 32-bit words, converted to fp32 (as gemv.cu).
template <Type TY>
struct PlainElems {
    static constexpr int kWords = TY == Type::F32 ? 8 : 4;
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

// RW rows from r0 of one expert (w), T token columns with activation rows xrow[t] (t < n).
template <Type TY, int T, int RW>
struct PlainExpertGemv {
    using P = PlainElems<TY>;
    const uint8_t* w;
    int64_t ld_bytes;
    int rows, cols, nch, r0, n, x_vec, glu;
    const float* const* xrow;
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
    __device__ __forceinline__ void load8(const float* xt, int col, float (&xv)[8]) const {
        if (x_vec && col + 8 <= cols) {
            const float4 a = __ldg(reinterpret_cast<const float4*>(xt));
            const float4 b = __ldg(reinterpret_cast<const float4*>(xt) + 1);
            xv[0] = a.x, xv[1] = a.y, xv[2] = a.z, xv[3] = a.w, xv[4] = b.x, xv[5] = b.y, xv[6] = b.z, xv[7] = b.w;
        } else {
#pragma unroll
            for (int e = 0; e < 8; ++e) xv[e] = col + e < cols ? __ldg(xt + e) : 0.f;
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
            if (t >= n) continue;
            const float* xt = xrow[t] + col;
            float xv[8];
            load8(xt, col, xv);
            if (glu) {  // [gate | up]: silu(gate) * up
                float uv[8];
                load8(xt + cols, col, uv);
#pragma unroll
                for (int e = 0; e < 8; ++e) xv[e] = silu_mul(xv[e], uv[e]);
            }
#pragma unroll
            for (int r = 0; r < RW; ++r)
#pragma unroll
                for (int e = 0; e < 8; ++e) acc[r][t] = fmaf(wv[r][e], xv[e], acc[r][t]);
        }
    }
};

// Grid (row blocks of RW rows, 1, work items).
template <Type TY, int T, int RW>
__global__ void __launch_bounds__(kPlainWarps * 32)
    experts_plain_kernel(const uint8_t* __restrict__ w, int64_t expert_bytes, int64_t ld_bytes, int rows, int cols,
                         ExpertsRoute route, int x_vec, int accumulate, int zero_invalid, ExpertsSum sum) {
    __shared__ float red[kPlainWarps][RW * T];
    __shared__ const float* xrow[T];
    __shared__ float* orow[T];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int r0 = int(blockIdx.x) * RW;
    ::imp::cuda::pdl_wait();
    const int2 item = resolve_item<T>(route, xrow, orow);
    const int n = item.y;
    if (n == 0) return;
    __syncthreads();
    const int nr = max(min(RW, rows - r0), 0);
    if (item.x < 0 || item.x >= route.n_expert) {
        if (zero_invalid)
            for (int i = threadIdx.x; i < n * RW; i += blockDim.x)
                if (r0 + i % RW < rows) orow[i / RW][r0 + i % RW] = 0.f;
        if (sum.counters) experts_sum_arrive(route, sum, r0, nr);
        return;
    }
    PlainExpertGemv<TY, T, RW> g{w + int64_t(item.x) * expert_bytes, ld_bytes, rows, cols, (cols + 7) / 8, r0, n,
                                 x_vec, route.glu, xrow};
#pragma unroll
    for (int r = 0; r < RW; ++r)
#pragma unroll
        for (int t = 0; t < T; ++t) g.acc[r][t] = 0.f;
    constexpr int kStep = kPlainWarps * 32;
    uint32_t qa[RW][PlainElems<TY>::kWords], qb[RW][PlainElems<TY>::kWords];
    const int first = warp * 32 + lane;
    g.load(qa, first);
    for (int ch = first; ch < g.nch; ch += 2 * kStep) {
        g.load(qb, ch + kStep);
        g.compute(qa, ch);
        g.load(qa, ch + 2 * kStep);
        g.compute(qb, ch + kStep);
    }
    ::imp::cuda::pdl_launch_dependents();
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
        if (r0 + r < rows && t < n) {
            float* yp = orow[t] + r0 + r;
            *yp = accumulate ? *yp + v : v;
        }
    }
    if (sum.counters) experts_sum_arrive(route, sum, r0, nr);
}

template <Type TY, int T>
void launch_plain_t(const DeviceLayout& l, const ExpertsArgs& ea, cudaStream_t st) {
    constexpr int RW = TY == Type::F32 ? 2 : 4;
    const auto& r = ea.route;
    const int x_vec = (reinterpret_cast<uintptr_t>(r.x) % 16 == 0) && (r.xs % 4 == 0) && (!r.glu || l.cols % 4 == 0);
    cudaLaunchAttribute attr = pdl_attr();
    cudaLaunchConfig_t cfg{};
    cfg.blockDim = dim3(kPlainWarps * 32, 1, 1);
    cfg.stream = st;
    cfg.attrs = ea.pdl ? &attr : nullptr;
    cfg.numAttrs = ea.pdl ? 1 : 0;
    constexpr int kMaxZ = 65535;
    ExpertsRoute route = r;
    for (int item0 = 0; item0 < ea.n_items; item0 += kMaxZ) {
        route.item0 = item0;
        cfg.gridDim = dim3(unsigned((l.rows + RW - 1) / RW), 1, unsigned(std::min(kMaxZ, ea.n_items - item0)));
        IMP_CUDA_CHECK(cudaLaunchKernelEx(&cfg, experts_plain_kernel<TY, T, RW>, static_cast<const uint8_t*>(ea.w),
                                   int64_t(ea.expert_bytes), int64_t(l.ld) * PlainElems<TY>::kElem, int(l.rows),
                                   int(l.cols), route, x_vec, ea.accumulate, ea.zero_invalid, ea.sum));
    }
}

template <Type TY>
void launch_plain(const DeviceLayout& l, const ExpertsArgs& a, cudaStream_t st) {
    if (a.route.groups)
        launch_plain_t<TY, kExpertGroupTokens>(l, a, st);
    else
        launch_plain_t<TY, 1>(l, a, st);
}

}  // namespace

void experts_gemv(const DeviceLayout& l, const ExpertsArgs& a, int sm_count, int cc, cudaStream_t st) {
    if (a.n_items <= 0) return;
    if (sm_count <= 0) sm_count = 132;
    switch (l.type) {
        case Type::Q4_0: launch_experts_tiled<LayoutQ4_0>(l, a, sm_count, cc, st); break;
        case Type::Q4_1: launch_experts_tiled<LayoutQ4_1>(l, a, sm_count, cc, st); break;
        case Type::Q8_0: launch_experts_tiled<LayoutQ8_0>(l, a, sm_count, cc, st); break;
        case Type::Q4_K: launch_experts_tiled<LayoutQ4_K>(l, a, sm_count, cc, st); break;
        case Type::Q5_K: launch_experts_tiled<LayoutQ5_K>(l, a, sm_count, cc, st); break;
        case Type::Q6_K: launch_experts_tiled<LayoutQ6_K>(l, a, sm_count, cc, st); break;
        case Type::F32: launch_plain<Type::F32>(l, a, st); break;
        case Type::F16: launch_plain<Type::F16>(l, a, st); break;
        case Type::BF16: launch_plain<Type::BF16>(l, a, st); break;
        default: throw Error(std::string("quant_ggml: no CUDA expert GEMV for type ") + type_info(l.type).name);
    }
}

bool experts_grouped_fits(const DeviceLayout& l, int sm_count, int cc) {
    if (sm_count <= 0) sm_count = 132;
    switch (l.type) {
        case Type::Q4_0: return experts_tiled_fits<LayoutQ4_0>(l, sm_count, cc);
        case Type::Q4_1: return experts_tiled_fits<LayoutQ4_1>(l, sm_count, cc);
        case Type::Q8_0: return experts_tiled_fits<LayoutQ8_0>(l, sm_count, cc);
        case Type::Q4_K: return experts_tiled_fits<LayoutQ4_K>(l, sm_count, cc);
        case Type::Q5_K: return experts_tiled_fits<LayoutQ5_K>(l, sm_count, cc);
        case Type::Q6_K: return experts_tiled_fits<LayoutQ6_K>(l, sm_count, cc);
        default: return true;  // plain types: nothing staged
    }
}

void prepare_experts(Type t) {
    static std::once_flag once[kTypeCount];
    std::call_once(once[int(t)], [t] {
        switch (t) {
            case Type::Q4_0: prepare_experts_tiled<LayoutQ4_0>(); break;
            case Type::Q4_1: prepare_experts_tiled<LayoutQ4_1>(); break;
            case Type::Q8_0: prepare_experts_tiled<LayoutQ8_0>(); break;
            case Type::Q4_K: prepare_experts_tiled<LayoutQ4_K>(); break;
            case Type::Q5_K: prepare_experts_tiled<LayoutQ5_K>(); break;
            case Type::Q6_K: prepare_experts_tiled<LayoutQ6_K>(); break;
            default: break;
        }
    });
}

}  // namespace imp::ggml::cuda
