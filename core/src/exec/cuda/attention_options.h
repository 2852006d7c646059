// The CUDA executor's attention kernel choices, held by each CudaExecutor (set from [plugin.core] in a profile;
// tests and benchmarks change them on their executor to compare variants). attention() reads them per call.
#pragma once

namespace imp::cuda_kernels {

struct AttnOptions {
    // Tensor-core prefill attention (attention_mma.cuh) for BF16/F16 KV caches; false: the fp32 kernel.
    bool tensor_cores = true;
    int mma_warps = 0;          // warps per CTA of the tensor-core kernel: 4 or 8, 0 = chosen per call
    // Decode (one row per sequence): true = split-KV fp32 kernel + combine (the default: attention.cu says why);
    // false = the one-kernel decode (attention_decode.cuh) where it applies.
    bool decode_split = true;
    int decode_warps = 0;       // warps per CTA of the one-kernel decode: 4 or 8, 0 = kDecDefaultWarps
};

}  // namespace imp::cuda_kernels
