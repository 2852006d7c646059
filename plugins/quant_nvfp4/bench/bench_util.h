// quant_nvfp4_gpu_bench: what its parts share: a seeded generator, event timing (median), the device copy bandwidth,
// and the weight formats under test (NVFP4, FP8 per tensor, imp's BF16) made from one set of random bytes.
#pragma once
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "cuda_weight.h"
#include "exec/cuda/cuda_executor.h"
#include "fp8_cuda.h"
#include "ggml_types.h"
#include "imp/cuda/check.h"
#include "imp/cuda/lt_gemm.h"
#include "nvfp4_cuda.h"

namespace imp::wo_bench {
struct Rng {
    uint64_t s;
    uint64_t next() {
        uint64_t z = (s += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    void fill(std::vector<uint8_t>& v) {
        for (size_t i = 0; i < v.size(); i += 8) {
            const uint64_t r = next();
            std::memcpy(&v[i], &r, std::min<size_t>(8, v.size() - i));
        }
    }
};

inline cudaStream_t stream(CudaExecutor& ex) { return static_cast<cudaStream_t>(ex.cuda()->stream); }

// Median seconds of fn() over reps runs.
inline double time_median(CudaExecutor& ex, int reps, const std::function<void()>& fn) {
    cudaEvent_t a, b;
    IMP_CUDA_CHECK(cudaEventCreate(&a));
    IMP_CUDA_CHECK(cudaEventCreate(&b));
    std::vector<double> t;
    for (int i = 0; i < reps + 1; ++i) {
        IMP_CUDA_CHECK(cudaEventRecord(a, stream(ex)));
        fn();
        IMP_CUDA_CHECK(cudaEventRecord(b, stream(ex)));
        IMP_CUDA_CHECK(cudaEventSynchronize(b));
        float ms = 0;
        IMP_CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
        if (i > 0) t.push_back(ms * 1e-3);  // the first run warms up
    }
    cudaEventDestroy(a);
    cudaEventDestroy(b);
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
}

inline double copy_bandwidth(CudaExecutor& ex) {
    const size_t n = size_t(1) << 30;
    void* a = ex.alloc(n, "copy_a");
    void* b = ex.alloc(n, "copy_b");
    const double s = time_median(ex, 20, [&] { IMP_CUDA_CHECK(cudaMemcpyAsync(b, a, n, cudaMemcpyDeviceToDevice, stream(ex))); });
    return 2.0 * double(n) / s;
}

// A weight format for the bench: its name, bytes read per GEMV, and a maker of one fresh copy.
struct Format {
    std::string name;
    double read_bytes;
    std::function<std::unique_ptr<Weight>()> make;
};

// Random weight bytes of one [rows, cols] matrix: FP8 codes (finite), NVFP4 codes and E4M3 scales (2^-1 .. 2^1).
struct RandomWeights {
    std::vector<uint8_t> q8, codes, scales;
    RandomWeights(int64_t rows, int64_t cols, Rng& rng)
        : q8(size_t(rows * cols)), codes(size_t(rows * cols / 2)), scales(size_t(rows * cols / 16)) {
        rng.fill(codes);
        rng.fill(scales);
        rng.fill(q8);
        for (auto& s : scales) s = uint8_t(0x30 | (s & 0x0F));  // 2^-1 .. 2^1: finite, normal
        for (auto& v : q8) v = uint8_t(v & 0xBF);                 // below 2^8: finite
    }
};

// The cuBLASLt BF16 GEMM call y [n, rows] = x [n, cols] . w [rows, cols]^T (fp32 out).
inline cuda::GemmCall bf16_call(const uint16_t* w, const uint16_t* x, float* y, int64_t rows, int64_t cols, int64_t n) {
    cuda::GemmCall c;
    c.a = w;
    c.lda = cols;
    c.b = x;
    c.ldb = cols;
    c.d = y;
    c.ldd = rows;
    c.m = rows;
    c.n = n;
    c.k = cols;
    return c;
}

// plan: 0 regs, 1 async, 2 regs2, 3 stream, 4 mma (the gemv setting).
inline std::vector<Format> formats(CudaExecutor& ex, int64_t rows, int64_t cols, Rng& rng, int kw, int plan,
                            bool with_bf16) {
    auto rw = std::make_shared<RandomWeights>(rows, cols, rng);
    auto bf = std::make_shared<std::vector<uint8_t>>(size_t(rows * cols * 2));
    for (size_t i = 0; i < bf->size(); i += 2) (*bf)[i + 1] = uint8_t(0x3C | ((*bf)[i + 1] & 0x81));  // |v| ~ 1e-2
    nvfp4::cuda::Settings ns;
    ns.gemv_kw = kw;
    ns.gemv_async = plan == 1;
    ns.gemv_regs2 = plan == 2;
    ns.gemv_stream = plan == 3;
    ns.gemv_mma = plan == 4;
    fp8::cuda::Settings fs;
    fs.gemv_kw = kw;
    fs.gemv_async = plan == 1;
    fs.gemv_regs2 = plan == 2;
    fs.gemv_stream = plan == 3;
    fs.gemv_mma = plan == 4;
    fs.prefill = fp8::cuda::Settings::Prefill::Fp8Gemm;
    std::vector<Format> f;
    f.push_back({"nvfp4", double(rows * cols / 2 + rows * cols / 16), [=, &ex] {
                     return nvfp4::cuda::make_weight(ex, rows, cols, rw->codes.data(), rw->scales.data(), 0.01f, "nvfp4", ns);
                 }});
    if (plan == 0) {  // the regs plan's int8-x kernel (gemv_int8_x = all: the profiles' default)
        nvfp4::cuda::Settings q = ns;
        q.gemv_int8_x = 2;
        q.gemv_int8_warps = 8;  // nvfp4q8: 8 warps a CTA; nvfp4q8w16 / w32 below (0, the default, picks one by width)
        f.push_back({"nvfp4q8", double(rows * cols / 2 + rows * cols / 16), [=, &ex] {
                         return nvfp4::cuda::make_weight(ex, rows, cols, rw->codes.data(), rw->scales.data(), 0.01f, "nvfp4", q);
                     }});
        for (const int warps : {16, 32}) {  // gemv_int8_warps (one-token calls; more tokens run 8 warps)
            nvfp4::cuda::Settings qw = q;
            qw.gemv_int8_warps = warps;
            f.push_back({"nvfp4q8w" + std::to_string(warps), double(rows * cols / 2 + rows * cols / 16), [=, &ex] {
                             return nvfp4::cuda::make_weight(ex, rows, cols, rw->codes.data(), rw->scales.data(), 0.01f,
                                                             "nvfp4", qw);
                         }});
        }
    }
    const float s8 = 0.01f;
    f.push_back({"fp8", double(rows * cols), [=, &ex] {
                     return fp8::cuda::make_weight(ex, rows, cols, rw->q8.data(), &s8, 1, "fp8", fs);
                 }});
    if (with_bf16)
        f.push_back({"bf16", double(rows * cols * 2), [=, &ex] {
                         return ggml::cuda::load_weight("bf16", ggml::Type::BF16, cols, {{bf->data(), rows}},
                                                        uint64_t(cols) * 2, ex);
                     }});
    return f;
}

// Prefill GEMMs of n tokens (gemm_bench.cpp); parts: also the FP8 path's parts alone.
void bench_gemm(CudaExecutor& ex, int64_t n, double copy, bool parts);
// Grouped expert matmuls of prefill (experts_bench.cpp).
void bench_experts(CudaExecutor& ex, double copy);

}  // namespace imp::wo_bench
