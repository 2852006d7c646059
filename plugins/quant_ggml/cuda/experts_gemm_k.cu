// quant_ggml CUDA: the grouped expert GEMM (experts_gemm.cuh) for the K-quant types Q4_K, Q5_K, Q6_K (their own
// translation unit, so the two halves of the GEMM compile in parallel; experts_gemm.cu dispatches).
#include "experts_gemm.cuh"

namespace imp::ggml::cuda {

bool experts_gemm_k(const DeviceLayout& l, const ExpertsArgs& a, int nt, int ctas, bool bf16x2, cudaStream_t st) {
    switch (l.type) {
        case Type::Q4_K: launch_tiled<LayoutQ4_K>(l, a, nt, ctas, bf16x2, st); return true;
        case Type::Q5_K: launch_tiled<LayoutQ5_K>(l, a, nt, ctas, bf16x2, st); return true;
        case Type::Q6_K: launch_tiled<LayoutQ6_K>(l, a, nt, ctas, bf16x2, st); return true;
        default: return false;
    }
}

bool prepare_experts_gemm_k(Type t, int smem_bytes) {
    switch (t) {
        case Type::Q4_K: prepare_tiled<LayoutQ4_K>(smem_bytes); return true;
        case Type::Q5_K: prepare_tiled<LayoutQ5_K>(smem_bytes); return true;
        case Type::Q6_K: prepare_tiled<LayoutQ6_K>(smem_bytes); return true;
        default: return false;
    }
}

}  // namespace imp::ggml::cuda
