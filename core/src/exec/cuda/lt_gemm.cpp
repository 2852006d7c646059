// imp SDK (CUDA): cuBLASLt GEMMs of weights and activations (imp/cuda/lt_gemm.h). D = A^T B in cuBLASLt's column-major
// terms: A is the weight, k x m with lda (TRANSA = T), B the activations, k x n with ldb, D fp32 m x n with ldd;
// FP8 (E4M3 x E4M3 on Hopper's FP8 tensor cores) takes its per-tensor scales from device memory
// (CUBLASLT_MATMUL_DESC_A/B_SCALE_POINTER), so a captured graph replays with new activation scales; per-row and
// per-token scales as outer vectors (CUBLASLT_MATMUL_DESC_A/B_SCALE_MODE).
#include "imp/cuda/lt_gemm.h"

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstring>

#include "imp/cuda/check.h"
#include "imp/error.h"

namespace imp::cuda {
namespace {

static_assert(sizeof(cublasLtMatmulAlgo_t) <= 64, "cublasLtMatmulAlgo_t grew");
constexpr int kMaxAlgos = 8;  // heuristic results kept per plan

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

std::string LtGemm::describe(const GemmCall& c) const {
    const char* t = c.type == GemmType::FP8 ? "FP8" : c.type == GemmType::F32 ? "F32" : "BF16";
    return name_ + ": " + t + " GEMM " + std::to_string(c.m) + "x" +
           std::to_string(c.n) + "x" + std::to_string(c.k) + " (ld " + std::to_string(c.lda) + "/" +
           std::to_string(c.ldb) + "/" + std::to_string(c.ldd) + ")";
}

void LtGemm::run(const CudaHandles& h, const GemmCall& c) const {
    std::string why;
    if (!try_run(h, c, &why)) throw Error(describe(c) + ": cuBLASLt refuses it: " + why);
}

LtGemm::Key LtGemm::key_of(const GemmCall& c) const {
    if (c.type == GemmType::FP8) {
        // cuBLASLt's FP8 rules on Hopper: TN (as every call here), 16-byte aligned matrices and scale pointers,
        // leading dimensions of whole 16 bytes. The callers keep them; a break is a bug here, not a refusal.
        const bool ok = alignment(c.a) >= 16 && alignment(c.b) >= 16 && alignment(c.d) >= 16 && c.lda % 16 == 0 &&
                        c.ldb % 16 == 0 && c.ldd % 4 == 0 && (!c.a_scale || alignment(c.a_scale) >= 16) &&
                        (!c.b_scale || alignment(c.b_scale) >= 16) &&
                        (!c.vec_scales || (c.a_scale && c.b_scale));
        if (!ok) throw Error(describe(c) + ": pointers, scale pointers or leading dimensions break the FP8 rules");
    }
    const bool fp8 = c.type == GemmType::FP8;
    return Key{int(c.type), c.m, c.n, c.k, c.lda, c.ldb, c.ldd, alignment(c.a), alignment(c.b), alignment(c.d),
               c.a_scale, c.b_scale, fp8 && c.fast_accum, fp8 && c.vec_scales};
}

std::vector<AlgoTime> LtGemm::time_algos(const CudaHandles& h, const GemmCall& c, int reps) const {
    const Key key = key_of(c);
    std::lock_guard<std::mutex> lk(mu_);
    return time_plan(h, plan(h, key), c, c.d, reps);
}

bool LtGemm::try_run(const CudaHandles& h, const GemmCall& c, std::string* why) const {
    if (!h.cublaslt) throw Error(name_ + ": the executor has no cuBLASLt handle");
    const Key key = key_of(c);
    std::lock_guard<std::mutex> lk(mu_);
    Plan& p = plan(h, key);
    if (c.tune_d && !p.tuned && p.refused.empty()) {
        const Key bk = bucket_of(key);
        const auto t = tuned_.find(bk);
        if (t != tuned_.end()) {
            // The bucket was timed on another plan: its winner first where cuBLASLt takes it for this one.
            adopt(h, p, t->second);
            p.tuned = true;
        } else {
            cudaStreamCaptureStatus cs = cudaStreamCaptureStatusNone;
            IMP_CUDA_CHECK(cudaStreamIsCapturing(static_cast<cudaStream_t>(h.stream), &cs));
            if (cs == cudaStreamCaptureStatusNone) {  // a capture keeps the heuristic's order; an eager call tunes
                const auto times = time_plan(h, p, c, c.tune_d, 3);
                if (!times.empty()) {
                    p.good = times.front().index;
                    tuned_.emplace(bk, p.algos[size_t(p.good)]);
                }
                p.tuned = true;
            }
        }
    }
    if (p.refused.empty()) {
        const float alpha = c.alpha, beta = c.accumulate ? 1.f : 0.f;
        std::string last;
        for (size_t i = p.good >= 0 ? size_t(p.good) : 0; i < p.algos.size(); ++i) {
            cublasLtMatmulAlgo_t algo;
            std::memcpy(&algo, p.algos[i].bytes, sizeof(algo));
            const cublasStatus_t st = cublasLtMatmul(
                static_cast<cublasLtHandle_t>(h.cublaslt), static_cast<cublasLtMatmulDesc_t>(p.op), &alpha, c.a,
                static_cast<cublasLtMatrixLayout_t>(p.a), c.b, static_cast<cublasLtMatrixLayout_t>(p.b), &beta, c.d,
                static_cast<cublasLtMatrixLayout_t>(p.d), c.d, static_cast<cublasLtMatrixLayout_t>(p.d), &algo,
                h.lt_workspace, h.lt_workspace_bytes, static_cast<cudaStream_t>(h.stream));
            if (st == CUBLAS_STATUS_SUCCESS) {
                p.good = int(i);
                return true;
            }
            // A refusal is checked on the host before anything is enqueued: the next algorithm may run. Once one
            // has run, any failure is an error.
            if (p.good >= 0 || (st != CUBLAS_STATUS_NOT_SUPPORTED && st != CUBLAS_STATUS_INVALID_VALUE))
                ::imp::cuda::throw_cublas(int(st), "cublasLtMatmul", __FILE__, __LINE__);
            last = cublasLtGetStatusString(st);
        }
        p.refused = "cublasLtMatmul answers \"" + last + "\" for each of the " + std::to_string(p.algos.size()) +
                    " algorithms of its heuristic";
    }
    if (why) *why = p.refused;
    return false;
}

LtGemm::Plan& LtGemm::plan(const CudaHandles& h, const Key& key) const {
    auto it = plans_.find(key);
    if (it != plans_.end()) return it->second;
    const bool fp8 = key.type == int(GemmType::FP8);
    const cudaDataType_t ab = fp8 ? CUDA_R_8F_E4M3 : key.type == int(GemmType::F32) ? CUDA_R_32F : CUDA_R_16BF;
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
    cublasLtMatmulHeuristicResult_t res[kMaxAlgos] = {};
    int found = 0;
    cublasStatus_t hst = CUBLAS_STATUS_SUCCESS;
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
            if (key.vec) {
                // A cuBLASLt that does not know the scale modes answers "invalid value": a refusal of the plan.
                const int32_t mode = CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F;
                hst = cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &mode, sizeof(mode));
                if (hst == CUBLAS_STATUS_SUCCESS)
                    hst = cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, &mode, sizeof(mode));
                if (hst != CUBLAS_STATUS_SUCCESS && hst != CUBLAS_STATUS_INVALID_VALUE)
                    ::imp::cuda::throw_cublas(int(hst), "cublasLtMatmulDescSetAttribute", __FILE__, __LINE__);
            }
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
        // "Not supported" from the heuristic: no algorithm for this call (a refusal, not an error); with
        // outer-vector scales "invalid value" too (a cuBLASLt without them on this GPU).
        if (hst == CUBLAS_STATUS_SUCCESS) {
            hst = cublasLtMatmulAlgoGetHeuristic(static_cast<cublasLtHandle_t>(h.cublaslt), op, la, lb, ld, ld, pref,
                                                 kMaxAlgos, res, &found);
            if (hst != CUBLAS_STATUS_SUCCESS && hst != CUBLAS_STATUS_NOT_SUPPORTED &&
                !(key.vec && hst == CUBLAS_STATUS_INVALID_VALUE))
                ::imp::cuda::throw_cublas(int(hst), "cublasLtMatmulAlgoGetHeuristic", __FILE__, __LINE__);
        }
    } catch (...) {
        cleanup();
        throw;
    }
    cublasLtMatmulPreferenceDestroy(pref);
    pref = nullptr;
    Plan p;
    p.op = op;
    p.a = la;
    p.b = lb;
    p.d = ld;
    for (int i = 0; i < (hst == CUBLAS_STATUS_SUCCESS ? found : 0); ++i) {
        if (res[i].state != CUBLAS_STATUS_SUCCESS) continue;
        Algo a;
        std::memcpy(a.bytes, &res[i].algo, sizeof(res[i].algo));
        p.algos.push_back(a);
    }
    if (p.algos.empty())
        p.refused = std::string("its heuristic has no ") +
                    (fp8 ? "FP8" : key.type == int(GemmType::F32) ? "F32" : "BF16") + " algorithm" +
                    (key.vec ? " with outer-vector scales" : "");
    return plans_.emplace(key, std::move(p)).first->second;
}

LtGemm::Key LtGemm::bucket_of(Key k) {
    int64_t b = 1;
    while (b < k.n) b *= 2;
    k.n = b;
    return k;
}

bool LtGemm::adopt(const CudaHandles& h, Plan& p, const Algo& algo) const {
    cublasLtMatmulAlgo_t a;
    std::memcpy(&a, algo.bytes, sizeof(a));
    cublasLtMatmulHeuristicResult_t r{};
    const cublasStatus_t st = cublasLtMatmulAlgoCheck(
        static_cast<cublasLtHandle_t>(h.cublaslt), static_cast<cublasLtMatmulDesc_t>(p.op),
        static_cast<cublasLtMatrixLayout_t>(p.a), static_cast<cublasLtMatrixLayout_t>(p.b),
        static_cast<cublasLtMatrixLayout_t>(p.d), static_cast<cublasLtMatrixLayout_t>(p.d), &a, &r);
    if (st != CUBLAS_STATUS_SUCCESS || r.state != CUBLAS_STATUS_SUCCESS ||
        r.workspaceSize > (h.lt_workspace ? h.lt_workspace_bytes : 0))
        return false;
    for (size_t i = 0; i < p.algos.size(); ++i)
        if (std::memcmp(p.algos[i].bytes, algo.bytes, sizeof(a)) == 0) {
            std::rotate(p.algos.begin(), p.algos.begin() + int64_t(i), p.algos.begin() + int64_t(i) + 1);
            return true;
        }
    p.algos.insert(p.algos.begin(), algo);
    return true;
}

int LtGemm::tuned_buckets() const {
    std::lock_guard<std::mutex> lk(mu_);
    return int(tuned_.size());
}

}  // namespace imp::cuda
