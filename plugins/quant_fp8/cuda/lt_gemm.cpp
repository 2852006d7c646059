// Weight-only CUDA weights: cuBLASLt GEMMs of the prefill path (lt_gemm.h). D = A^T B in cuBLASLt's column-major
// terms: A is the weight, k x m with lda (TRANSA = T), B the activations, k x n with ldb, D fp32 m x n with ldd;
// FP8 (E4M3 x E4M3 on Hopper's FP8 tensor cores) takes its per-tensor scales from device memory
// (CUBLASLT_MATMUL_DESC_A/B_SCALE_POINTER), so a captured graph replays with new activation scales.
#include "lt_gemm.h"

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <cstring>

#include "imp/cuda/check.h"
#include "imp/error.h"

namespace imp::wo {
namespace {

static_assert(sizeof(cublasLtMatmulAlgo_t) <= 64, "cublasLtMatmulAlgo_t grew");

uint32_t alignment(const void* p) {
    const auto a = reinterpret_cast<uintptr_t>(p);
    uint32_t al = 256;
    while (al > 1 && a % al != 0) al >>= 1;
    return al;
}

}  // namespace

LtGemm::~LtGemm() {
    for (auto& [k, p] : plans_) {
        cublasLtMatrixLayoutDestroy(static_cast<cublasLtMatrixLayout_t>(p.a));
        cublasLtMatrixLayoutDestroy(static_cast<cublasLtMatrixLayout_t>(p.b));
        cublasLtMatrixLayoutDestroy(static_cast<cublasLtMatrixLayout_t>(p.d));
        cublasLtMatmulDescDestroy(static_cast<cublasLtMatmulDesc_t>(p.op));
    }
}

void LtGemm::run(const CudaHandles& h, const GemmCall& c) const {
    if (!h.cublaslt) throw Error(name_ + ": the executor has no cuBLASLt handle");
    const Key key{int(c.type), c.m, c.n, c.k, c.lda, c.ldb, c.ldd, alignment(c.a), alignment(c.b), alignment(c.d),
                  c.a_scale, c.b_scale, c.type == GemmType::FP8 && c.fast_accum};
    const Plan& p = plan(h, key);
    cublasLtMatmulAlgo_t algo;
    std::memcpy(&algo, p.algo, sizeof(algo));
    const float alpha = c.alpha, beta = c.accumulate ? 1.f : 0.f;
    IMP_CUBLAS_CHECK(cublasLtMatmul(static_cast<cublasLtHandle_t>(h.cublaslt), static_cast<cublasLtMatmulDesc_t>(p.op),
                                    &alpha, c.a, static_cast<cublasLtMatrixLayout_t>(p.a), c.b,
                                    static_cast<cublasLtMatrixLayout_t>(p.b), &beta, c.d,
                                    static_cast<cublasLtMatrixLayout_t>(p.d), c.d,
                                    static_cast<cublasLtMatrixLayout_t>(p.d), &algo, h.lt_workspace,
                                    h.lt_workspace_bytes, static_cast<cudaStream_t>(h.stream)));
}

const LtGemm::Plan& LtGemm::plan(const CudaHandles& h, const Key& key) const {
    std::lock_guard<std::mutex> lk(mu_);
    auto it = plans_.find(key);
    if (it != plans_.end()) return it->second;
    const bool fp8 = key.type == int(GemmType::FP8);
    const cudaDataType_t ab = fp8 ? CUDA_R_8F_E4M3 : CUDA_R_16BF;
    cublasLtMatmulDesc_t op = nullptr;
    cublasLtMatrixLayout_t la = nullptr, lb = nullptr, ld = nullptr;
    cublasLtMatmulPreference_t pref = nullptr;
    auto cleanup = [&] {
        if (pref) cublasLtMatmulPreferenceDestroy(pref);
        if (la) cublasLtMatrixLayoutDestroy(la);
        if (lb) cublasLtMatrixLayoutDestroy(lb);
        if (ld) cublasLtMatrixLayoutDestroy(ld);
        if (op) cublasLtMatmulDescDestroy(op);
    };
    cublasLtMatmulHeuristicResult_t res{};
    int found = 0;
    try {
        IMP_CUBLAS_CHECK(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
        const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
        IMP_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)));
        IMP_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)));
        if (fp8) {
            if (key.a_scale)
                IMP_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &key.a_scale,
                                                                sizeof(key.a_scale)));
            if (key.b_scale)
                IMP_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &key.b_scale,
                                                                sizeof(key.b_scale)));
            const int8_t fast = key.fast ? 1 : 0;
            IMP_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_FAST_ACCUM, &fast, sizeof(fast)));
        }
        IMP_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&la, ab, uint64_t(key.k), uint64_t(key.m), key.lda));
        IMP_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&lb, ab, uint64_t(key.k), uint64_t(key.n), key.ldb));
        IMP_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&ld, CUDA_R_32F, uint64_t(key.m), uint64_t(key.n), key.ldd));
        IMP_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
        const uint64_t wsb = h.lt_workspace ? h.lt_workspace_bytes : 0;
        IMP_CUBLAS_CHECK(
            cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &wsb, sizeof(wsb)));
        IMP_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES,
                                                              &key.align_a, sizeof(uint32_t)));
        IMP_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                                                              &key.align_b, sizeof(uint32_t)));
        IMP_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES,
                                                              &key.align_d, sizeof(uint32_t)));
        IMP_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES,
                                                              &key.align_d, sizeof(uint32_t)));
        IMP_CUBLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(static_cast<cublasLtHandle_t>(h.cublaslt), op, la, lb, ld, ld,
                                                        pref, 1, &res, &found));
    } catch (...) {
        cleanup();
        throw;
    }
    cublasLtMatmulPreferenceDestroy(pref);
    pref = nullptr;
    if (found < 1) {
        cleanup();
        throw Error(name_ + ": cuBLASLt has no " + (fp8 ? "FP8" : "BF16") + " algorithm for " + std::to_string(key.m) +
                    "x" + std::to_string(key.n) + "x" + std::to_string(key.k) + " (ld " + std::to_string(key.lda) +
                    "/" + std::to_string(key.ldb) + "/" + std::to_string(key.ldd) + ")");
    }
    Plan p;
    p.op = op;
    p.a = la;
    p.b = lb;
    p.d = ld;
    std::memcpy(p.algo, &res.algo, sizeof(res.algo));
    return plans_.emplace(key, p).first->second;
}

}  // namespace imp::wo
