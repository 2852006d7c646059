// The attention prologue in one kernel: per-head RMSNorm of q and k (optional), RoPE of both (NEOX or adjacent
// pairs, partial rotary, linear scaling, frequency factors) at each row's position (token_pos), q written back in
// place, k and v written into the paged KV pool at the row's slot (slot_mapping; -1: not written) (F32, F16, BF16,
// FP8 E4M3 with scale). Block (token t, group of kWarps heads): the block computes
// the token's cos/sin table in shared memory (angles in double, as the rope kernel and the CPU do), then each warp
// takes one head of the list [q heads | k heads | v heads] and keeps it in registers (lane owns rotation pairs
// lane, lane + 32, ... and the unrotated dims n_rot + lane, ...).
#include <string>

#include "exec/cuda/common.cuh"
#include "exec/cuda/cuda_check.h"
#include "exec/cuda/kernels.h"
#include "exec/cuda/kv_types.cuh"
#include "exec/cuda/launch.cuh"
#include "imp/error.h"

namespace imp::cuda_kernels {

namespace {

constexpr int kWarps = 4;
constexpr int kMaxHeadDim = 256;
constexpr int kMaxHalf = kMaxHeadDim / 2;
constexpr int kMaxPairs = kMaxHalf / 32;          // rotation pairs per lane
constexpr int kMaxRest = (kMaxHeadDim - 2) / 32 + 1;  // unrotated dims per lane (n_rot >= 2)

struct RopeKvArgs {
    float* q;
    int64_t q_stride;
    const float* k;
    int64_t k_stride;
    const float* v;
    int64_t v_stride;
    const float* q_norm;
    const float* k_norm;
    float eps;
    const int32_t* positions;
    const int32_t* slot_mapping;
    int n_head, n_kv_head, head_dim, n_rot;
    float base, freq_scale;
    bool neox;
    const float* freq_factors;
    void* kc;
    void* vc;
    int64_t n_slots;
    float k_scale, v_scale;
};

template <typename E> __global__ void __launch_bounds__(kWarps * 32) rope_kv_store_kernel(const RopeKvArgs a) {
    using T = typename E::T;
    pdl_launch_dependents();
    // The cos/sin table comes before the PDL wait, so its double-precision math overlaps the kernel before (the
    // q|k|v matmul): it reads only the step's positions, which the host writes before the step's first kernel (no
    // kernel writes them), and the frequency factors (weights).
    __shared__ float s_cos[kMaxHalf], s_sin[kMaxHalf];
    const int64_t t = blockIdx.x;
    const int64_t pos = a.positions[t];
    const int half = a.n_rot / 2;
    for (int i = threadIdx.x; i < half; i += blockDim.x) {
        double inv = double(a.freq_scale) * pow(double(a.base), -2.0 * i / double(a.n_rot));
        if (a.freq_factors) inv /= double(a.freq_factors[i]);
        double sd, cd;
        sincos(double(pos) * inv, &sd, &cd);
        s_cos[i] = float(cd);
        s_sin[i] = float(sd);
    }
    pdl_wait();
    __syncthreads();

    const int lane = threadIdx.x & 31;
    const int item = int(blockIdx.y) * kWarps + int(threadIdx.x >> 5);
    if (item >= a.n_head + 2 * a.n_kv_head) return;
    const int hd = a.head_dim;
    const int64_t slot = a.slot_mapping[t];
    const bool store = slot >= 0 && slot < a.n_slots;  // -1: padding; the host cannot see device slots
    const int64_t row = store ? slot * int64_t(a.n_kv_head) * hd : 0;

    if (item >= a.n_head + a.n_kv_head) {  // a v head: convert and store
        if (!store) return;
        const int h = item - a.n_head - a.n_kv_head;
        const float* src = a.v + t * a.v_stride + int64_t(h) * hd;
        T* dst = static_cast<T*>(a.vc) + row + int64_t(h) * hd;
        for (int d = lane; d < hd; d += 32) dst[d] = E::store(src[d], a.v_scale);
        return;
    }
    const bool is_q = item < a.n_head;
    const int h = is_q ? item : item - a.n_head;
    const float* src = is_q ? a.q + t * a.q_stride + int64_t(h) * hd : a.k + t * a.k_stride + int64_t(h) * hd;
    const float* w = is_q ? a.q_norm : a.k_norm;

    float pa[kMaxPairs], pb[kMaxPairs], rest[kMaxRest];
    float ss = 0.f;
#pragma unroll
    for (int j = 0; j < kMaxPairs; ++j) {
        const int i = lane + 32 * j;
        pa[j] = pb[j] = 0.f;
        if (i < half) {
            pa[j] = src[a.neox ? i : 2 * i];
            pb[j] = src[a.neox ? i + half : 2 * i + 1];
            ss += pa[j] * pa[j] + pb[j] * pb[j];
        }
    }
#pragma unroll
    for (int j = 0; j < kMaxRest; ++j) {
        const int d = a.n_rot + lane + 32 * j;
        rest[j] = 0.f;
        if (d < hd) {
            rest[j] = src[d];
            ss += rest[j] * rest[j];
        }
    }
    float scale = 1.f;
    if (w) scale = rsqrtf(warp_sum(ss) / float(hd) + a.eps);

    float* qd = a.q + t * a.q_stride + int64_t(h) * hd;
    T* kd = static_cast<T*>(a.kc) + row + int64_t(h) * hd;
    auto put = [&](int d, float y) {
        if (is_q)
            qd[d] = y;
        else if (store)
            kd[d] = E::store(y, a.k_scale);
    };
#pragma unroll
    for (int j = 0; j < kMaxPairs; ++j) {
        const int i = lane + 32 * j;
        if (i < half) {
            const int i0 = a.neox ? i : 2 * i;
            const int i1 = a.neox ? i + half : 2 * i + 1;
            float x0 = pa[j], x1 = pb[j];
            if (w) {
                x0 = x0 * scale * w[i0];
                x1 = x1 * scale * w[i1];
            }
            const float cs = s_cos[i], sn = s_sin[i];
            put(i0, x0 * cs - x1 * sn);
            put(i1, x1 * cs + x0 * sn);
        }
    }
    if (!w && is_q) return;  // q's unrotated dims stay as they are
#pragma unroll
    for (int j = 0; j < kMaxRest; ++j) {
        const int d = a.n_rot + lane + 32 * j;
        if (d < hd) put(d, w ? rest[j] * scale * w[d] : rest[j]);
    }
}

}  // namespace

void rope_kv_store(float* q, int64_t q_stride, const float* k, int64_t k_stride, const float* v, int64_t v_stride,
                   const float* q_norm, const float* k_norm, float norm_eps, const StepBatch& b, int n_head,
                   int n_kv_head, const RopeParams& rope, const KVCacheView& kv, Queue s) {
    if (n_head <= 0 || n_kv_head <= 0 || n_kv_head != kv.n_kv_heads || rope.head_dim != kv.head_dim)
        throw Error("cuda rope_kv_store: " + std::to_string(n_head) + " heads / " + std::to_string(n_kv_head) +
                    " KV heads of dim " + std::to_string(rope.head_dim) + " do not fit the KV cache (" +
                    std::to_string(kv.n_kv_heads) + " heads of dim " + std::to_string(kv.head_dim) + ")");
    if (rope.head_dim <= 0 || rope.head_dim > kMaxHeadDim)
        throw Error("cuda rope_kv_store: head_dim " + std::to_string(rope.head_dim) + " is not supported (1..256)");
    if (rope.n_rot <= 0 || rope.n_rot % 2 != 0 || rope.n_rot > rope.head_dim)
        throw Error("cuda rope_kv_store: n_rot " + std::to_string(rope.n_rot) + " must be even and in (0, head_dim " +
                    std::to_string(rope.head_dim) + "]");
    if (kv.n_blocks <= 0 || kv.block_size <= 0)
        throw Error("cuda rope_kv_store: the KV pool has " + std::to_string(kv.n_blocks) + " blocks of " +
                    std::to_string(kv.block_size) + " positions");
    const int64_t n_tokens = b.n_tokens;
    if (n_tokens <= 0) return;
    if (!b.token_pos || !b.slot_mapping)
        throw Error("cuda rope_kv_store: the step of " + std::to_string(n_tokens) +
                    " rows needs token_pos and slot_mapping");
    RopeKvArgs a{};
    a.q = q;
    a.q_stride = q_stride;
    a.k = k;
    a.k_stride = k_stride;
    a.v = v;
    a.v_stride = v_stride;
    a.q_norm = q_norm;
    a.k_norm = k_norm;
    a.eps = norm_eps;
    a.positions = b.token_pos;
    a.slot_mapping = b.slot_mapping;
    a.n_head = n_head;
    a.n_kv_head = n_kv_head;
    a.head_dim = rope.head_dim;
    a.n_rot = rope.n_rot;
    a.base = rope.base;
    a.freq_scale = rope.freq_scale;
    a.neox = rope.neox;
    a.freq_factors = rope.freq_factors;
    a.kc = kv.k;
    a.vc = kv.v;
    a.n_slots = kv_slots(kv);
    a.k_scale = kv.k_scale;
    a.v_scale = kv.v_scale;
    const dim3 grid(unsigned(n_tokens), unsigned(div_up(n_head + 2 * n_kv_head, kWarps)));
    auto go = [&](auto kernel) { IMP_CUDA_CHECK(launch(kernel, grid, dim3(kWarps * 32), 0, s.stream, s.pdl, a)); };
    switch (kv.dtype) {
        case DType::F32: return go(rope_kv_store_kernel<KvF32>);
        case DType::F16: return go(rope_kv_store_kernel<KvF16>);
        case DType::BF16: return go(rope_kv_store_kernel<KvBF16>);
        case DType::F8_E4M3: return go(rope_kv_store_kernel<KvF8>);
        default:
            throw Error(std::string("cuda rope_kv_store: KV cache dtype ") + dtype_name(kv.dtype) +
                        " is not supported (F32, F16, BF16, F8_E4M3)");
    }
}

}  // namespace imp::cuda_kernels
