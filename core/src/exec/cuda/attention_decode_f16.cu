// One-token decode attention for F16 KV caches (attention_decode.cuh; one file per KV type, built in parallel).
#include "exec/cuda/attention_decode.cuh"

namespace imp::cuda_kernels {
template cudaError_t attn_decode_launch_typed<KvF16>(const AttnArgs&, int, Queue);
template cudaError_t attn_decode_init_typed<KvF16>();
}  // namespace imp::cuda_kernels
