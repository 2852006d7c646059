// Helpers for the CUDA executor tests: one shared executor (a missing GPU fails the test), device buffers,
// fresh random inputs (the seed is printed on failure) and error measures against the CPU reference.
#pragma once
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <vector>

#include "common/max_err.h"
#include "exec/cpu/cpu_executor.h"
#include "exec/cuda/cuda_executor.h"

namespace imp::cuda_test {

inline CudaExecutor& gpu() {
    static CudaExecutor ex(0);  // throws imp::Error (test failure) when there is no GPU
    return ex;
}

// Benchmarks ([.bench]): wall microseconds per call of f over reps calls on the shared executor, after one warm-up.
inline double time_us(const std::function<void()>& f, int reps) {
    f();
    gpu().synchronize();
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < reps; ++i) f();
    gpu().synchronize();
    return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() / reps;
}
inline CpuExecutor& cpu() {
    static CpuExecutor ex(0);
    return ex;
}

inline uint32_t fresh_seed() {
    static std::random_device rd;
    return rd();
}

inline std::vector<float> rand_vec(std::mt19937& rng, size_t n, float lo = -1.f, float hi = 1.f) {
    std::uniform_real_distribution<float> d(lo, hi);
    std::vector<float> v(n);
    for (auto& x : v) {
        x = d(rng);
        if (x == 0.f) x = 0.5f * hi;  // non-zero inputs
    }
    return v;
}

template <typename T> T* to_dev(const std::vector<T>& h, const char* tag = "test") {
    T* d = static_cast<T*>(gpu().alloc(std::max<size_t>(1, h.size()) * sizeof(T), tag));
    gpu().upload(d, h.data(), h.size() * sizeof(T));
    return d;
}
template <typename T> std::vector<T> from_dev(const T* d, size_t n) {
    std::vector<T> h(n);
    gpu().download(h.data(), d, n * sizeof(T));
    return h;
}

// The shared NaN/Inf-aware error measures (tests/common/max_err.h): max_rel_err(got, want), rel_l2_err(got, want).
using imp::test::max_rel_err;
using imp::test::rel_l2_err;

}  // namespace imp::cuda_test
