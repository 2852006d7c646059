// imp SDK (CUDA): timing the algorithms of one cuBLASLt GEMM plan (imp/cuda/lt_gemm.h): each algorithm the
// heuristic offered runs once to warm up and `reps` times between two events on the executor's stream, writing a
// scratch output with beta 0; the list comes back fastest first with each algorithm's configuration (tile, stages,
// split-K, swizzle, cluster) for the bench to print. Used by the first eager call of a tuned plan and by the bench.
#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstring>

#include "imp/cuda/check.h"
#include "imp/cuda/lt_gemm.h"

namespace imp::cuda {
namespace {

std::string config(const cublasLtMatmulAlgo_t& a) {
    auto get = [&](cublasLtMatmulAlgoConfigAttributes_t attr) {
        // The attributes are 2- or 4-byte integers: ask the size first, then read that many bytes.
        size_t n = 0;
        uint64_t v = 0;
        if (cublasLtMatmulAlgoConfigGetAttribute(&a, attr, nullptr, 0, &n) != CUBLAS_STATUS_SUCCESS || n == 0 ||
            n > sizeof(v) || cublasLtMatmulAlgoConfigGetAttribute(&a, attr, &v, n, &n) != CUBLAS_STATUS_SUCCESS)
            return std::string("?");
        return std::to_string(v);  // little-endian: the low n bytes
    };
    return "id " + get(CUBLASLT_ALGO_CONFIG_ID) + " tile " + get(CUBLASLT_ALGO_CONFIG_TILE_ID) + " stages " +
           get(CUBLASLT_ALGO_CONFIG_STAGES_ID) + " splitk " + get(CUBLASLT_ALGO_CONFIG_SPLITK_NUM) + " swizzle " +
           get(CUBLASLT_ALGO_CONFIG_CTA_SWIZZLING) + " cluster " + get(CUBLASLT_ALGO_CONFIG_CLUSTER_SHAPE_ID);
}

}  // namespace

std::vector<AlgoTime> LtGemm::time_plan(const CudaHandles& h, Plan& p, const GemmCall& c, float* d,
                                        int reps) const {
    std::vector<AlgoTime> out;
    if (!p.refused.empty() || p.algos.empty()) return out;
    const auto st = static_cast<cudaStream_t>(h.stream);
    cudaEvent_t e0 = nullptr, e1 = nullptr;
    IMP_CUDA_CHECK(cudaEventCreate(&e0));
    IMP_CUDA_CHECK(cudaEventCreate(&e1));
    const float alpha = c.alpha, beta = 0.f;
    try {
        for (size_t i = 0; i < p.algos.size(); ++i) {
            cublasLtMatmulAlgo_t algo;
            std::memcpy(&algo, p.algos[i].bytes, sizeof(algo));
            auto run = [&] {
                return cublasLtMatmul(static_cast<cublasLtHandle_t>(h.cublaslt),
                                      static_cast<cublasLtMatmulDesc_t>(p.op), &alpha, c.a,
                                      static_cast<cublasLtMatrixLayout_t>(p.a), c.b,
                                      static_cast<cublasLtMatrixLayout_t>(p.b), &beta, d,
                                      static_cast<cublasLtMatrixLayout_t>(p.d), d,
                                      static_cast<cublasLtMatrixLayout_t>(p.d), &algo, h.lt_workspace,
                                      h.lt_workspace_bytes, st);
            };
            const cublasStatus_t w = run();
            if (w == CUBLAS_STATUS_NOT_SUPPORTED || w == CUBLAS_STATUS_INVALID_VALUE) continue;  // refused
            if (w != CUBLAS_STATUS_SUCCESS) ::imp::cuda::throw_cublas(int(w), "cublasLtMatmul", __FILE__, __LINE__);
            IMP_CUDA_CHECK(cudaEventRecord(e0, st));
            for (int r = 0; r < reps; ++r) {
                const cublasStatus_t s = run();
                if (s != CUBLAS_STATUS_SUCCESS) ::imp::cuda::throw_cublas(int(s), "cublasLtMatmul", __FILE__, __LINE__);
            }
            IMP_CUDA_CHECK(cudaEventRecord(e1, st));
            IMP_CUDA_CHECK(cudaEventSynchronize(e1));
            float ms = 0;
            IMP_CUDA_CHECK(cudaEventElapsedTime(&ms, e0, e1));
            out.push_back({int(i), double(ms) * 1e-3 / std::max(reps, 1), config(algo)});
        }
    } catch (...) {
        cudaEventDestroy(e0);
        cudaEventDestroy(e1);
        throw;
    }
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    std::stable_sort(out.begin(), out.end(), [](const AlgoTime& a, const AlgoTime& b) { return a.seconds < b.seconds; });
    return out;
}

}  // namespace imp::cuda
