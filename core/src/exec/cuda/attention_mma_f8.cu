// Tensor-core prefill attention for FP8 E4M3 KV caches (attention_mma.cuh; one file per KV type, built in parallel).
#include "exec/cuda/attention_mma.cuh"

namespace imp::cuda_kernels {
template cudaError_t attn_mma_launch_typed<KvF8>(const AttnArgs&, int, int, dim3, Queue);
template cudaError_t attn_mma_init_typed<KvF8>();
}  // namespace imp::cuda_kernels
