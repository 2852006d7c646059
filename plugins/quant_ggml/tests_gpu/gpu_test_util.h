// quant_ggml GPU tests: helpers (random tensors, device buffers, double-precision references, poison checks).
#pragma once
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "cuda_test_executor.h"
#include "ggml_format.h"
#include "ggml_types.h"
#include "random_weights.h"

namespace imp::ggml::test {

// The types with CUDA kernels (the tests iterate over all of them).
inline const std::vector<std::string>& cuda_types() {
    static const std::vector<std::string> t = {"F32", "F16", "BF16", "Q4_0", "Q4_1", "Q8_0", "Q4_K", "Q5_K", "Q6_K"};
    return t;
}

// Every n-th type of `types` from index k (0 <= k < n): a long every-type test case declared as n test cases, one
// per part, so that scripts/device-check --sanitize, whose shards deal whole test cases, can run the parts side by
// side. A type added to the list lands in one of the parts.
inline std::vector<std::string> every_type_part(const std::vector<std::string>& types, size_t k, size_t n) {
    std::vector<std::string> part;
    for (size_t i = k; i < types.size(); i += n) part.push_back(types[i]);
    return part;
}

// A fresh CUDA executor; the test fails (not skips) when there is no GPU.
inline std::unique_ptr<CudaExecutor> make_gpu() {
    try {
        return std::make_unique<CudaExecutor>();
    } catch (const std::exception& e) {
        FAIL("quant_ggml GPU tests need a CUDA device: " << e.what());
    }
    return nullptr;
}

struct HostTensor {
    std::vector<uint8_t> raw;
    TensorInfo info;
    WeightSource src() const {
        WeightSource s;
        s.main = &info;
        return s;
    }
};

inline HostTensor random_tensor(const std::string& type, int64_t rows, int64_t cols, std::mt19937& rng) {
    const TypeInfo& t = *find_type(type);
    HostTensor h;
    h.raw = random_blocks(t, rows * cols / t.block, rng);
    h.info.name = "blk.1.ffn_gate.weight";
    h.info.type = type;
    h.info.shape = {rows, cols};
    h.info.data = h.raw.data();
    h.info.nbytes = h.raw.size();
    return h;
}

inline std::vector<float> dequantized(const HostTensor& h) {
    std::vector<float> w(size_t(h.info.shape[0] * h.info.shape[1]));
    GgmlFormat().dequantize(h.info.type, h.raw.data(), int64_t(w.size()), w.data());
    return w;
}

inline std::vector<float> random_activations(size_t n, std::mt19937& rng) {
    std::normal_distribution<float> nd(0.f, 1.f);
    std::vector<float> v(n);
    for (auto& x : v) {
        x = nd(rng);
        if (x == 0.f) x = 0.25f;
    }
    return v;
}

// ref[t * rows + r] = sum_c w[r, c] x[t * xs + c] in double, for t < n_tokens.
inline std::vector<double> reference(const std::vector<float>& w, int64_t rows, int64_t cols,
                                     const std::vector<float>& x, int64_t xs, int64_t n_tokens) {
    std::vector<double> ref(size_t(n_tokens * rows));
    for (int64_t t = 0; t < n_tokens; ++t)
        for (int64_t r = 0; r < rows; ++r) {
            const float* wr = w.data() + r * cols;
            const float* xt = x.data() + t * xs;
            double s = 0;
            for (int64_t c = 0; c < cols; ++c) s += double(wr[c]) * double(xt[c]);
            ref[size_t(t * rows + r)] = s;
        }
    return ref;
}

// A device buffer of the executor, filled from host data or with the poison pattern (0xFF bytes: a NaN).
template <class T>
T* device_copy(imp::CudaExecutor& ex, const std::vector<T>& v) {
    auto* p = static_cast<T*>(ex.alloc(v.size() * sizeof(T), "test"));
    ex.upload(p, v.data(), v.size() * sizeof(T));
    return p;
}
inline void poison(imp::CudaExecutor& ex, void* p, size_t bytes) {
    QG_TEST_CUDA(cudaMemsetAsync(p, 0xFF, bytes, stream_of(ex)));
    QG_TEST_CUDA(cudaStreamSynchronize(stream_of(ex)));
}
inline bool is_poison(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return u == 0xFFFFFFFFu;
}

struct Check {
    double rel = 0;           // ||y - ref|| / ||ref|| over the written region
    int64_t unwritten = 0;    // outputs still holding the poison
    int64_t overwritten = 0;  // stride padding or rows of tokens >= n_tokens that changed
};

// y: n_alloc_tokens rows of stride ys, downloaded; ref: [n_ref_tokens, rows].
inline Check check_output(const std::vector<float>& y, int64_t ys, int64_t n_alloc_tokens, int64_t rows,
                          const std::vector<double>& ref, int64_t n_tokens) {
    Check c;
    double num = 0, den = 0;
    for (int64_t t = 0; t < n_alloc_tokens; ++t)
        for (int64_t r = 0; r < ys; ++r) {
            const float v = y[size_t(t * ys + r)];
            if (t >= n_tokens || r >= rows) {
                c.overwritten += !is_poison(v);
                continue;
            }
            if (is_poison(v)) {
                ++c.unwritten;
                continue;
            }
            const double d = double(v) - ref[size_t(t * rows + r)];
            num += d * d;
            den += ref[size_t(t * rows + r)] * ref[size_t(t * rows + r)];
        }
    c.rel = std::sqrt(num) / std::sqrt(den > 0 ? den : 1e-300);
    if (std::isnan(num)) c.rel = NAN;
    return c;
}

}  // namespace imp::ggml::test
