// The streaming weight-only GEMV (GemvPlan::Stream, setting gemv = "stream"): dense calls of 1-2 tokens on
// matrices with many row groups (an LM head: 248320 rows are 62080 groups of 4). One resident wave of CTAs (2 per
// SM, 8 warps each); warp w of the W in the grid walks row groups w, w + W, w + 2W, ... as one flat sequence of
// (row group, chunk) steps, with the loads of the next two steps in registers while one is computed. A warp's loads
// thus stay in flight across row-group boundaries, where the regs plan's CTAs drain, exit and are replaced (29
// waves of CTAs for that LM head). Chunks, dequantization and sums are the regs plan's (wo_gemv_chunk.cuh); a row
// group's sums are reduced over the warp's lanes with shuffles and written by RW x T lanes: no shared memory, no
// block barrier. The first two steps' weights are requested before griddepcontrol.wait.
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include "imp/cuda/check.h"
#include "imp/cuda/launch.cuh"
#include "wo_gemv_chunk.cuh"
#include "wo_kernels.h"

namespace imp::wo {
namespace {

template <Codec C, int T>
__global__ void __launch_bounds__(kWarps * 32, 2) wo_gemv_stream_kernel(KP p) {
    constexpr int RW = kRowsPerGroup<T>;
    static_assert(RW * T <= 32, "one lane per output of a row group");
    const int lane = int(threadIdx.x) & 31;
    const int gw = int(blockIdx.x) * kWarps + (int(threadIdx.x) >> 5), nw = int(gridDim.x) * kWarps;
    const int n_groups = (p.rows + RW - 1) / RW;
    const int n_it = (p.nch + 31) / 32;  // steps per row group; a lane past the row's chunks loads zeros
    int64_t xo[T];
#pragma unroll
    for (int t = 0; t < T; ++t) xo[t] = int64_t(t) * p.xs;
    // Steps (row group g, step it of its n_it): chunk lane + 32 it of rows g RW ..; the next step of the same warp is
    // it + 1, or step 0 of group g + nw. g0: the step computed, g1 / g2: the ones one and two ahead.
    auto next = [&](int& g, int& it) {
        if (++it == n_it) it = 0, g += nw;
    };
    int g0 = gw, it0 = 0, g1 = gw, it1 = 0, g2, it2;
    next(g1, it1);
    g2 = g1, it2 = it1;
    next(g2, it2);
    Chunk<C> c0[RW], c1[RW], c2[RW];
    if (g0 < n_groups) load_chunk<C, RW>(p, p.w, g0 * RW, lane + 32 * it0, c0);
    if (g1 < n_groups) load_chunk<C, RW>(p, p.w, g1 * RW, lane + 32 * it1, c1);
    ::imp::cuda::pdl_launch_dependents();
    ::imp::cuda::pdl_wait();
    const float* post = reinterpret_cast<const float*>(p.w + p.post_off);
    float acc[RW][T];
#pragma unroll
    for (int r = 0; r < RW; ++r)
#pragma unroll
        for (int t = 0; t < T; ++t) acc[r][t] = 0.f;
    while (g0 < n_groups) {
        if (g2 < n_groups) load_chunk<C, RW>(p, p.w, g2 * RW, lane + 32 * it2, c2);
        compute<C, T, RW>(p, p.x, xo, p.n_tokens, c0, lane + 32 * it0, acc);
        if (it0 == n_it - 1) {  // the row group's last step: its sums over the lanes, one lane per output
            const int r0 = g0 * RW;
#pragma unroll
            for (int r = 0; r < RW; ++r)
#pragma unroll
                for (int t = 0; t < T; ++t) {
                    float v = acc[r][t];
#pragma unroll
                    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xFFFFFFFFu, v, o);
                    acc[r][t] = 0.f;
                    const int row = r0 + r;
                    if (lane == r * T + t && row < p.rows && t < p.n_tokens) {
                        v *= C == Codec::NVFP4 ? post[0] : post[p.n_post == 1 ? 0 : row];
                        float* yp = p.y + int64_t(t) * p.ys + row;
                        *yp = p.accumulate ? *yp + v : v;
                    }
                }
        }
#pragma unroll
        for (int r = 0; r < RW; ++r) {
            c0[r] = c1[r];
            c1[r] = c2[r];
        }
        g0 = g1, it0 = it1, g1 = g2, it1 = it2;
        next(g2, it2);
    }
}

template <Codec C>
void launch_stream(const KP& p, int grid, bool pdl, cudaStream_t st) {
    if (p.n_tokens <= 1)
        IMP_CUDA_CHECK(::imp::cuda::launch(wo_gemv_stream_kernel<C, 1>, dim3(unsigned(grid)), dim3(kWarps * 32), 0, st,
                                           pdl, p));
    else
        IMP_CUDA_CHECK(::imp::cuda::launch(wo_gemv_stream_kernel<C, 2>, dim3(unsigned(grid)), dim3(kWarps * 32), 0, st,
                                           pdl, p));
}

}  // namespace

// At least kStreamGroupsPerWarp row groups (of 4 rows at 1-2 tokens) per warp of the wave (2 CTAs per SM): fewer
// leave the wave's tail (warps with one group more than others) a large share of the time.
int64_t stream_min_rows(int sm_count) {
    return int64_t(sm_count) * 2 * kWarps * kStreamGroupsPerWarp * kRowsPerGroup<1>;
}

int stream_grid(const Layout& l, int n_tokens, int sm_count) {
    if (n_tokens < 1 || n_tokens > 2 || sm_count <= 0 || l.rows < stream_min_rows(sm_count)) return 0;
    return sm_count * 2;
}

void gemv_stream(const Layout& l, const GemvArgs& a, int grid, cudaStream_t st) {
    KP p = kernel_params(l, a, a.n_tokens);
    if (l.codec == Codec::NVFP4)
        launch_stream<Codec::NVFP4>(p, grid, a.pdl, st);
    else
        launch_stream<Codec::FP8>(p, grid, a.pdl, st);
}

}  // namespace imp::wo
