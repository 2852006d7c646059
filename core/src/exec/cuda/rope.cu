// RoPE in place: NEOX (rotate-half) and GGML "normal" (adjacent pairs) pairing, partial rotary (n_rot < head_dim),
// linear frequency scaling and per-pair frequency factors. Positions are read from device memory. Angles are
// computed in double, as the CPU reference does, so large positions keep their precision.
#include "exec/cuda/common.cuh"
#include "exec/cuda/cuda_check.h"
#include "exec/cuda/kernels.h"
#include "exec/cuda/launch.cuh"

namespace imp::cuda_kernels {

namespace {

constexpr int kHeadsPerBlock = 8;

__global__ void rope_kernel(float* x, int64_t row_stride, const int32_t* __restrict__ positions, int n_heads,
                            int head_dim, int n_rot, float base, bool neox, float freq_scale,
                            const float* __restrict__ freq_factors) {
    pdl_launch_dependents();
    pdl_wait();
    const int64_t t = blockIdx.x;
    const int h0 = blockIdx.y * kHeadsPerBlock;
    const int h1 = min(n_heads, h0 + kHeadsPerBlock);
    const int half = n_rot / 2;
    const double pos = double(positions[t]);
    float* row = x + t * row_stride;
    for (int i = threadIdx.x; i < half; i += blockDim.x) {
        double inv = double(freq_scale) * pow(double(base), -2.0 * i / double(n_rot));
        if (freq_factors) inv /= double(freq_factors[i]);
        double sd, cd;
        sincos(pos * inv, &sd, &cd);
        const float cs = float(cd), sn = float(sd);
        const int i0 = neox ? i : 2 * i;
        const int i1 = neox ? i + half : 2 * i + 1;
        for (int h = h0; h < h1; ++h) {
            float* xh = row + int64_t(h) * head_dim;
            const float a = xh[i0], b = xh[i1];
            xh[i0] = a * cs - b * sn;
            xh[i1] = b * cs + a * sn;
        }
    }
}

}  // namespace

void rope(float* x, int64_t row_stride, const int32_t* positions, int64_t n_tokens, int n_heads, const RopeParams& p,
          Queue s) {
    if (n_tokens <= 0 || n_heads <= 0) return;
    const int half = p.n_rot / 2;
    const int threads = half >= 128 ? 128 : half > 32 ? (half + 31) / 32 * 32 : 32;
    const dim3 grid(unsigned(n_tokens), unsigned(div_up(n_heads, kHeadsPerBlock)));
    IMP_CUDA_CHECK(launch(rope_kernel, grid, dim3(threads), 0, s.stream, s.pdl, x, row_stride, positions, n_heads,
                          p.head_dim, p.n_rot, p.base, p.neox, p.freq_scale, p.freq_factors));
}

}  // namespace imp::cuda_kernels
