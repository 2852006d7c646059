// gdn.conv's kernel for steps with several rows per sequence (Conv::Args::variant 0): one warp per (q, k or v head,
// 16 consecutive rows of the step), each lane 4 channels of the head (head dims <= 128, multiples of 4). The warp
// slides the conv window down its rows, so every input is read once per row tile (plus K-1 rows of history) with
// 16-byte loads; at a tile's first row and at every new sequence the K-1 taps before it come from the step's rows or,
// before the sequence's first row, from the slot's conv state. SiLU, then a warp sum of squares L2-normalizes q and
// k heads. The first warp of each row tile also writes the tile's gates. conv.cu rewrites the conv states afterwards.
// Each row's input is loaded one row ahead.
#include "conv_common.cuh"
#include "imp/cuda/check.h"
#include "imp/cuda/launch.cuh"
#include "imp/cuda/reduce.cuh"

namespace imp::gdn::conv {

namespace {

constexpr int kRows = 16, kWarps = 8, kMaxK = 8;

__device__ __forceinline__ float4 ld4(const float* p) { return *reinterpret_cast<const float4*>(p); }
__device__ __forceinline__ void fma4(float4& acc, float4 w, float4 x) {
    acc.x = fmaf(w.x, x.x, acc.x), acc.y = fmaf(w.y, x.y, acc.y), acc.z = fmaf(w.z, x.z, acc.z);
    acc.w = fmaf(w.w, x.w, acc.w);
}

template <int K>
__global__ void __launch_bounds__(32 * kWarps) conv_rows_kernel(Conv::Args a, int n_units) {
    imp::cuda::pdl_launch_dependents();
    imp::cuda::pdl_wait();
    const Dims& d = a.dims;
    const int lane = threadIdx.x & 31, unit = blockIdx.y * kWarps + (threadIdx.x >> 5);
    const int64_t t0 = int64_t(blockIdx.x) * kRows;
    const int64_t t1 = t0 + kRows < a.seqs.n_tokens ? t0 + kRows : a.seqs.n_tokens;
    if (unit == 0)
        for (int64_t t = t0; t < t1; ++t) row_gates(a, t, lane, 32);
    if (unit >= n_units) return;
    const int64_t cd = d.conv_dim();
    const bool is_key = unit < 2 * d.n_k_heads;
    const int width = is_key ? d.head_k_dim : d.head_v_dim;
    const bool active = 4 * lane < width;
    const int64_t c = (is_key ? int64_t(unit) * d.head_k_dim
                              : 2 * d.key_dim() + int64_t(unit - 2 * d.n_k_heads) * d.head_v_dim) + 4 * lane;
    // Taps of the lane's 4 channels (w is [conv_dim, K]) and the window: prev[j] = input at position pos - (K-1) + j.
    float4 w[K], prev[K - 1];
#pragma unroll
    for (int j = 0; j < K; ++j)
        w[j] = active ? make_float4(a.w[c * K + j], a.w[(c + 1) * K + j], a.w[(c + 2) * K + j], a.w[(c + 3) * K + j])
                      : make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll
    for (int j = 0; j < K - 1; ++j) prev[j] = make_float4(0.f, 0.f, 0.f, 0.f);
    // Row t + 1's input and sequence are loaded while row t is computed.
    int seq = -1, s_next = a.seqs.token_seq[t0];
    float4 x_next = active ? ld4(a.x + t0 * a.x_stride + c) : make_float4(0.f, 0.f, 0.f, 0.f);
    for (int64_t t = t0; t < t1; ++t) {
        const int s = s_next;
        const float4 cur = x_next;
        if (t + 1 < t1) {
            s_next = a.seqs.token_seq[t + 1];
            if (active) x_next = ld4(a.x + (t + 1) * a.x_stride + c);
        }
        if (s != seq) {  // the K-1 taps before row t
            seq = s;
            const int64_t r0 = a.seqs.query_start_loc[s], pos = t - r0;
            const float* st = a.conv_state + int64_t(a.seqs.state_slots[s]) * a.state_stride;
#pragma unroll
            for (int j = 0; j < K - 1; ++j) {
                const int64_t q = pos - (K - 1) + j;
                if (active) prev[j] = q >= 0 ? ld4(a.x + (r0 + q) * a.x_stride + c) : ld4(st + (pos + j) * cd + c);
            }
        }
        float4 acc = make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll
        for (int j = 0; j < K - 1; ++j) fma4(acc, w[j], prev[j]);
        fma4(acc, w[K - 1], cur);  // the last tap reads the row itself
#pragma unroll
        for (int j = 0; j + 1 < K - 1; ++j) prev[j] = prev[j + 1];  // shift the window by one row
        prev[K - 2] = cur;
        float4 y = make_float4(silu(acc.x), silu(acc.y), silu(acc.z), silu(acc.w));
        if (is_key) {
            const float ss = imp::cuda::warp_sum(active ? y.x * y.x + y.y * y.y + y.z * y.z + y.w * y.w : 0.f);
            const float inv = rsqrtf(ss + a.l2_eps);
            y.x *= inv, y.y *= inv, y.z *= inv, y.w *= inv;
        }
        if (active) *reinterpret_cast<float4*>(a.out + t * a.out_stride + c) = y;
    }
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

}  // namespace

bool conv_rows_applies(const Conv::Args& a) {
    const Dims& d = a.dims;
    return aligned16(a.x) && aligned16(a.out) && aligned16(a.conv_state) && a.x_stride % 4 == 0 &&
           a.out_stride % 4 == 0 && a.state_stride % 4 == 0 && d.head_k_dim % 4 == 0 && d.head_v_dim % 4 == 0 &&
           d.head_k_dim <= 128 && d.head_v_dim <= 128 && a.kernel >= 2 && a.kernel <= kMaxK;
}

void conv_rows(const Conv::Args& a, const CudaHandles& h) {
    const int n_units = 2 * a.dims.n_k_heads + a.dims.n_v_heads;
    imp::cuda::LaunchConfig c = imp::cuda::launch_config(h);
    c.grid = dim3(unsigned(imp::cuda::div_up(a.seqs.n_tokens, kRows)), unsigned(imp::cuda::div_up(n_units, kWarps)));
    c.block = dim3(32 * kWarps);
    cudaError_t err = cudaSuccess;
    switch (a.kernel) {  // conv_rows_applies: 2..kMaxK
        case 2: err = imp::cuda::launch(c, conv_rows_kernel<2>, a, n_units); break;
        case 3: err = imp::cuda::launch(c, conv_rows_kernel<3>, a, n_units); break;
        case 4: err = imp::cuda::launch(c, conv_rows_kernel<4>, a, n_units); break;
        case 5: err = imp::cuda::launch(c, conv_rows_kernel<5>, a, n_units); break;
        case 6: err = imp::cuda::launch(c, conv_rows_kernel<6>, a, n_units); break;
        case 7: err = imp::cuda::launch(c, conv_rows_kernel<7>, a, n_units); break;
        default: err = imp::cuda::launch(c, conv_rows_kernel<8>, a, n_units); break;
    }
    IMP_CUDA_CHECK(err);
}

}  // namespace imp::gdn::conv
