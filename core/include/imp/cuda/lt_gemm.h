// imp SDK (CUDA): weight x activation GEMMs through cuBLASLt (F32 x F32, BF16 x BF16 and E4M3 x E4M3; fp32 output
// and accumulation), with the plans (descriptors and the heuristic's algorithms) cached per shape, alignment and scale
// pointers. The first call of a plan tries the heuristic's algorithms in order and keeps the first that cuBLASLt
// runs (cuBLASLt can refuse at cublasLtMatmul an algorithm its heuristic offered); a plan that every algorithm
// refuses is remembered as refused. With a tuning scratch (GemmCall::tune_d), the first call outside a graph capture
// of a plan whose token count falls in a bucket not yet tuned (token counts rounded up to a power of two) times every
// algorithm the heuristic offered (lt_tune.cpp) and keeps the fastest; later plans of the same bucket (other token
// counts of the same weight and strides) put that algorithm first when cuBLASLt accepts it for them, so a server's
// varying step sizes are timed once per bucket, not once per size. Used by quant_fp8 / quant_nvfp4 and quant_ggml;
// needs no CUDA headers to include.
#pragma once
#include <compare>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "imp/executor.h"
#include "imp/export.h"

namespace imp::cuda {

enum class GemmType { BF16, FP8, F32 };

// y[t * ldd + r] (+)= alpha * a_scale * b_scale * sum_k A[r * lda + k] B[t * ldb + k] for r < m, t < n:
// A the weight rows, B the activation rows; a_scale / b_scale device floats (FP8 only; null: 1; 16-byte aligned).
// accumulate: beta 1. FP8 also wants a, b, d 16-byte aligned and lda, ldb multiples of 16 (checked).
// a_vec / b_vec (FP8): a_scale holds m floats (one per row of A), b_scale n floats (one per token): cuBLASLt's
// outer-vector scaling (CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F, cuBLAS >= 12.9), both or neither.
struct GemmCall {
    GemmType type = GemmType::BF16;
    const void* a = nullptr;
    int64_t lda = 0;
    const void* b = nullptr;
    int64_t ldb = 0;
    float* d = nullptr;
    int64_t ldd = 0;
    int64_t m = 0, n = 0, k = 0;
    float alpha = 1.f;
    bool accumulate = false;
    const float* a_scale = nullptr;
    const float* b_scale = nullptr;
    bool fast_accum = true;  // FP8: CUBLASLT_MATMUL_DESC_FAST_ACCUM
    bool vec_scales = false;  // FP8: a_scale, b_scale are outer vectors (above)
    // Tuning scratch (null: no tuning): >= ldd * n floats, 16-byte aligned, that the timed runs may overwrite.
    float* tune_d = nullptr;
};

// One algorithm of a plan, timed: its place in the heuristic's list, seconds per call, its configuration.
struct AlgoTime {
    int index = 0;
    double seconds = 0;
    std::string config;
};

class IMP_API LtGemm {
public:
    explicit LtGemm(std::string name) : name_(std::move(name)) {}
    ~LtGemm();
    LtGemm(const LtGemm&) = delete;
    LtGemm& operator=(const LtGemm&) = delete;
    // Enqueues the GEMM; false when cuBLASLt refuses the call (no algorithm, or "not supported" / "invalid value"
    // from every algorithm offered; nothing is enqueued then), with the reason in *why. Other failures throw.
    bool try_run(const CudaHandles& h, const GemmCall& c, std::string* why = nullptr) const;
    // try_run, throwing imp::Error naming the weight and the shape when cuBLASLt refuses.
    void run(const CudaHandles& h, const GemmCall& c) const;
    // Times each algorithm of c's plan (one warm-up and `reps` runs each, writing c.d with beta 0), best first;
    // algorithms cuBLASLt refuses are left out. Synchronizes the stream; not inside a graph capture.
    std::vector<AlgoTime> time_algos(const CudaHandles& h, const GemmCall& c, int reps) const;
    // Token buckets timed so far (tests: a bucket is timed once, whatever token counts of it run).
    int tuned_buckets() const;

private:
    struct Key {
        int type;
        int64_t m, n, k, lda, ldb, ldd;
        uint32_t align_a, align_b, align_d;
        const void* a_scale;
        const void* b_scale;
        bool fast;
        bool vec;
        auto operator<=>(const Key&) const = default;
    };
    struct Algo {
        alignas(8) unsigned char bytes[64] = {};  // cublasLtMatmulAlgo_t
    };
    struct Plan {
        void* op = nullptr;
        void* a = nullptr;
        void* b = nullptr;
        void* d = nullptr;
        std::vector<Algo> algos;  // the heuristic's, best first
        int good = -1;            // the algorithm that ran (-1: none tried yet)
        bool tuned = false;       // timed (GemmCall::tune_d)
        std::string refused;      // why cuBLASLt refuses the plan (empty: not refused)
    };
    Plan& plan(const CudaHandles& h, const Key& key) const;  // mu_ held
    Key key_of(const GemmCall& c) const;                      // checks c's FP8 rules
    // Times p's algorithms on c (D = d, beta 0), best first (lt_tune.cpp); mu_ held.
    std::vector<AlgoTime> time_plan(const CudaHandles& h, Plan& p, const GemmCall& c, float* d, int reps) const;
    std::string describe(const GemmCall& c) const;

    // A plan's key with the token count rounded up to a power of two: plans of one bucket share the tuned algorithm.
    static Key bucket_of(Key k);
    // Puts algo first in p's list when cuBLASLt accepts it for p's descriptors (cublasLtMatmulAlgoCheck).
    bool adopt(const CudaHandles& h, Plan& p, const Algo& algo) const;

    std::string name_;
    mutable std::mutex mu_;
    mutable std::map<Key, Plan> plans_;
    mutable std::map<Key, Algo> tuned_;  // by bucket_of: the fastest algorithm of the bucket's first tuned plan
};

}  // namespace imp::cuda
