// Attention kernels for F8 KV caches (one file per KV type, so the instantiations build in parallel).
#include "exec/cuda/attention_kernel.cuh"

namespace imp::cuda_kernels {
template cudaError_t attn_launch_typed<KvF8>(const AttnArgs&, int, int, dim3, Queue);
template cudaError_t attn_init_typed<KvF8>();
}  // namespace imp::cuda_kernels
