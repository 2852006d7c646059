// The CUDA executor's attention kernel choices, held by each CudaExecutor (set from [plugin.core] in a profile;
// tests and benchmarks change them on their executor to compare variants). attention() reads them per call.
#pragma once

namespace imp::cuda_kernels {

struct AttnOptions {
    // Tensor-core prefill attention (attention_mma.cuh) for BF16/F16 KV caches; false: the fp32 kernel.
    bool tensor_cores = true;
    // The tensor-core prefill attention for FP8 E4M3 KV caches too (with tensor_cores; false: the fp32 kernel).
    bool tensor_cores_f8 = false;
    int mma_warps = 0;          // warps per CTA of the tensor-core kernel: 4 or 8, 0 = chosen per call
    // The tensor-core prefill for head_dim 256 too (BF16 / F16 caches, always 4 warps; Qwen3.5/3.6 full attention;
    // [plugin.core] attention_mma_hd256); false: the fp32 kernel for those heads.
    bool tensor_cores_hd256 = true;
    // Decode (one row per sequence): false (the default) = the one-kernel decode (attention_decode.cuh) where it
    // applies, else the split-KV fp32 kernel + combine; true = always split-KV + combine.
    bool decode_split = false;
    // Benchmarks: the one-kernel decode wherever it applies, whatever its grid (attention_decode.h's
    // one_kernel_decode_grid_ok not consulted), to time it where the default rule would not take it.
    bool decode_one_any_grid = false;
    int decode_warps = 0;       // warps per CTA of the one-kernel decode: 4 or 8, 0 = dec_default_warps(head_dim)
    // The one-kernel decode for head_dim 256 too (Qwen3.5/3.6 full attention; [plugin.core] decode_attention_hd256);
    // false: those heads take split-KV + combine.
    bool decode_hd256 = true;
    // Decode steps of at least this many rows (sequences) run the tensor-core prefill kernel (attention_mma.cuh;
    // each sequence's GQA rows as one query tile, KV tiles through cp.async) where it applies, instead of the
    // split-KV kernel or the one-kernel decode; 0: never ([plugin.core] decode_attention_mma_rows). Needs the step's
    // query_start_loc (the engine always gives it).
    int decode_mma_rows = 0;
};

}  // namespace imp::cuda_kernels
