// quant_ggml CUDA: the grouped expert GEMM (experts_gemm.cuh) for Q4_0, Q4_1, Q8_0 and BF16, the dispatch by type
// (the K-quants: experts_gemm_k.cu), its token tile choice and its per-process setup.
#include <mutex>

#include "experts_gemm.cuh"

namespace imp::ggml::cuda {

bool experts_gemm_k(const DeviceLayout& l, const ExpertsArgs& a, int nt, int ctas, bool bf16x2, cudaStream_t st);
bool prepare_experts_gemm_k(Type t, int smem_bytes);

namespace {

int64_t bf16_chunks(const DeviceLayout& l) {
    return (l.ld + GemmBf16A::kChunkCols - 1) / GemmBf16A::kChunkCols;
}

// Columns of the staged activations: whole chunks of the type.
int64_t padded_cols(const DeviceLayout& l) {
    switch (l.type) {
        case Type::Q4_0: case Type::Q4_1: return l.chunks * LayoutQ4_0::kChunkCols;
        case Type::Q8_0: return l.chunks * LayoutQ8_0::kChunkCols;
        case Type::Q4_K: case Type::Q5_K: case Type::Q6_K: return l.chunks * LayoutQ4_K::kChunkCols;
        case Type::BF16: return bf16_chunks(l) * GemmBf16A::kChunkCols;
        default: return 0;
    }
}

}  // namespace

bool experts_gemm_supported(Type t) {
    switch (t) {
        case Type::Q4_0: case Type::Q4_1: case Type::Q8_0: case Type::Q4_K: case Type::Q5_K: case Type::Q6_K:
        case Type::BF16: return true;
        default: return false;
    }
}

int experts_gemm_nt(const DeviceLayout& l, int64_t smem_bytes, int max_nt) {
    if (!experts_gemm_supported(l.type) || l.rows > INT32_MAX / 2 || l.cols > INT32_MAX / 2) return 0;
    const int64_t stride = gemm_b_stride(padded_cols(l));
    for (const int nt : {8, 4, 2})
        if ((max_nt <= 0 || nt <= max_nt) && 8 * nt * stride <= smem_bytes) return nt;
    return 0;
}

int experts_gemm_smem(int device) {
    int optin = 0;
    IMP_CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
    return std::max(0, optin - 2048);  // the kernel's static shared memory (pair rows) stays below 2 KiB
}

void experts_gemm(const DeviceLayout& l, const ExpertsArgs& a, int nt, int ctas, bool bf16x2, cudaStream_t st) {
    if (a.n_items <= 0) return;
    switch (l.type) {
        case Type::Q4_0: launch_tiled<LayoutQ4_0>(l, a, nt, ctas, bf16x2, st); break;
        case Type::Q4_1: launch_tiled<LayoutQ4_1>(l, a, nt, ctas, bf16x2, st); break;
        case Type::Q8_0: launch_tiled<LayoutQ8_0>(l, a, nt, ctas, bf16x2, st); break;
        case Type::BF16:
            launch_gemm(GemmBf16A{static_cast<const uint8_t*>(a.w), l.ld, int(l.rows)}, l, a, nt, ctas,
                        int(bf16_chunks(l)), st);
            break;
        default:
            if (!experts_gemm_k(l, a, nt, ctas, bf16x2, st))
                throw Error(std::string("quant_ggml: no CUDA expert GEMM for type ") + type_info(l.type).name);
    }
}

void prepare_experts_gemm(Type t, int smem_bytes) {
    static std::once_flag once[kTypeCount];
    std::call_once(once[int(t)], [t, smem_bytes] {
        switch (t) {
            case Type::Q4_0: prepare_tiled<LayoutQ4_0>(smem_bytes); break;
            case Type::Q4_1: prepare_tiled<LayoutQ4_1>(smem_bytes); break;
            case Type::Q8_0: prepare_tiled<LayoutQ8_0>(smem_bytes); break;
            case Type::BF16: prepare_gemm<GemmBf16A>(smem_bytes); break;
            default: (void)prepare_experts_gemm_k(t, smem_bytes); break;
        }
    });
}

}  // namespace imp::ggml::cuda
