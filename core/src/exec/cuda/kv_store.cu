// Writes K and V rows of n_tokens tokens into the paged KV pool at the slots of a slot mapping read from device
// memory (F32, F16, BF16, FP8 E4M3 with scale); slot -1 writes nothing. One block per token; consecutive threads
// write consecutive elements.
#include <string>

#include "exec/cuda/common.cuh"
#include "exec/cuda/cuda_check.h"
#include "exec/cuda/kernels.h"
#include "exec/cuda/kv_types.cuh"
#include "exec/cuda/launch.cuh"
#include "imp/error.h"

namespace imp::cuda_kernels {

namespace {

template <typename E>
__global__ void kv_store_kernel(typename E::T* __restrict__ kc, typename E::T* __restrict__ vc,
                                const float* __restrict__ k, int64_t k_stride, const float* __restrict__ v,
                                int64_t v_stride, const int32_t* __restrict__ slot_mapping, int64_t n_slots, int width,
                                float k_scale, float v_scale) {
    pdl_launch_dependents();
    pdl_wait();
    const int64_t t = blockIdx.x;
    const int64_t slot = slot_mapping[t];
    if (slot < 0 || slot >= n_slots) return;  // -1: padding; the host cannot see device slots, others are dropped
    const int64_t row = slot * width;
    const float* kt = k + t * k_stride;
    const float* vt = v + t * v_stride;
    for (int i = threadIdx.x; i < width; i += blockDim.x) {
        kc[row + i] = E::store(kt[i], k_scale);
        vc[row + i] = E::store(vt[i], v_scale);
    }
}

template <typename E>
void launch(const KVCacheView& kv, const float* k, int64_t k_stride, const float* v, int64_t v_stride,
            const int32_t* slot_mapping, int64_t n_tokens, Queue s) {
    using T = typename E::T;
    const int width = kv.n_kv_heads * kv.head_dim;
    const int threads = width >= 512 ? 256 : 128;
    IMP_CUDA_CHECK(launch(kv_store_kernel<E>, dim3(unsigned(n_tokens)), dim3(threads), 0, s.stream, s.pdl,
                          static_cast<T*>(kv.k), static_cast<T*>(kv.v), k, k_stride, v, v_stride, slot_mapping,
                          kv_slots(kv), width, kv.k_scale, kv.v_scale));
}

}  // namespace

void kv_store(const KVCacheView& kv, const float* k, int64_t k_stride, const float* v, int64_t v_stride,
              const int32_t* slot_mapping, int64_t n_tokens, Queue s) {
    if (kv.n_blocks <= 0 || kv.block_size <= 0)
        throw Error("cuda kv_store: the KV pool has " + std::to_string(kv.n_blocks) + " blocks of " +
                    std::to_string(kv.block_size) + " positions");
    if (n_tokens <= 0) return;
    switch (kv.dtype) {
        case DType::F32: return launch<KvF32>(kv, k, k_stride, v, v_stride, slot_mapping, n_tokens, s);
        case DType::F16: return launch<KvF16>(kv, k, k_stride, v, v_stride, slot_mapping, n_tokens, s);
        case DType::BF16: return launch<KvBF16>(kv, k, k_stride, v, v_stride, slot_mapping, n_tokens, s);
        case DType::F8_E4M3: return launch<KvF8>(kv, k, k_stride, v, v_stride, slot_mapping, n_tokens, s);
        default:
            throw Error(std::string("cuda kv_store: KV cache dtype ") + dtype_name(kv.dtype) +
                        " is not supported (F32, F16, BF16, F8_E4M3)");
    }
}

}  // namespace imp::cuda_kernels
