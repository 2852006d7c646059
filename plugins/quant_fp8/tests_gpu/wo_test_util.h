// Weight-only GPU tests (quant_fp8 and quant_nvfp4): the CUDA executor, device buffers, poisoned outputs, random
// activations, double-precision references, a host E4M3 encoder (to simulate the FP8 GEMM's quantization), and
// the expert routing reference.
#pragma once
#include <catch2/catch.hpp>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "exec/cuda/cuda_executor.h"
#include "fp8_ref.h"
#include "imp/experts.h"

namespace imp::wo::test {

// A fresh CUDA executor; the test fails (not skips) when there is no GPU.
inline std::unique_ptr<CudaExecutor> make_gpu() {
    try {
        return std::make_unique<CudaExecutor>();
    } catch (const std::exception& e) {
        FAIL("weight-only GPU tests need a CUDA device: " << e.what());
    }
    return nullptr;
}

template <class T>
T* device_copy(CudaExecutor& ex, const std::vector<T>& v) {
    auto* p = static_cast<T*>(ex.alloc(std::max<size_t>(v.size() * sizeof(T), 4), "test"));
    if (!v.empty()) ex.upload(p, v.data(), v.size() * sizeof(T));
    return p;
}

inline std::vector<float> download(CudaExecutor& ex, const float* p, size_t n) {
    ex.synchronize();
    std::vector<float> v(n);
    ex.download(v.data(), p, n * 4);
    return v;
}

// Normal(0, 1) activations, never exactly zero.
inline std::vector<float> random_floats(size_t n, std::mt19937& rng) {
    std::normal_distribution<float> nd(0.f, 1.f);
    std::vector<float> v(n);
    for (auto& x : v) {
        x = nd(rng);
        if (x == 0.f) x = 0.25f;
    }
    return v;
}

inline bool is_poison(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return u == 0xFFFFFFFFu;
}
// n floats of 0xFF bytes (a NaN), the initial content of outputs that must be written.
inline std::vector<float> poison_floats(size_t n) {
    std::vector<float> v(n);
    std::memset(v.data(), 0xFF, n * 4);
    return v;
}

// ref[t * rows + r] = sum_c w[r * cols + c] * x[t * xs + c] in double.
inline std::vector<double> reference(const std::vector<float>& w, int64_t rows, int64_t cols,
                                     const std::vector<float>& x, int64_t xs, int64_t n_tokens) {
    std::vector<double> ref(size_t(n_tokens * rows));
    for (int64_t t = 0; t < n_tokens; ++t)
        for (int64_t r = 0; r < rows; ++r) {
            double s = 0;
            for (int64_t c = 0; c < cols; ++c) s += double(w[size_t(r * cols + c)]) * double(x[size_t(t * xs + c)]);
            ref[size_t(t * rows + r)] = s;
        }
    return ref;
}

struct Check {
    double rel = 0;           // ||y - want|| / ||want - init|| over the written region (init: 0 unless accumulating)
    int64_t unwritten = 0;    // outputs still holding the poison
    int64_t overwritten = 0;  // outputs outside the region that changed
};

// y, init: n_alloc rows of stride ys; want[t * rows + r] for t < n_rows, r < rows is the expected value (init
// included when accumulating).
inline Check check_output(const std::vector<float>& y, const std::vector<float>& init, int64_t ys, int64_t n_alloc,
                          int64_t rows, const std::vector<double>& want, const std::vector<double>& delta,
                          int64_t n_rows) {
    Check c;
    double num = 0, den = 0;
    for (int64_t t = 0; t < n_alloc; ++t)
        for (int64_t r = 0; r < ys; ++r) {
            const size_t i = size_t(t * ys + r);
            if (t >= n_rows || r >= rows) {
                c.overwritten += std::memcmp(&y[i], &init[i], 4) != 0;
                continue;
            }
            if (is_poison(y[i])) {
                ++c.unwritten;
                continue;
            }
            // The error beyond one fp32 ulp of the result: y = init + delta is stored in fp32, so with y += and a
            // small delta beside a large init the store's own rounding (up to an ulp of |want| with the kernel's
            // and the reference's different summation orders) is not the kernel's error (a 1x16 weight with
            // accumulate measured 1.26e-4 of ||delta|| from that alone on the H200).
            const double w = want[size_t(t * rows + r)], dd = delta[size_t(t * rows + r)];
            const double e = std::abs(double(y[i]) - w) - std::ldexp(std::abs(w), -23);
            const double d = e > 0 || std::isnan(e) ? e : 0.0;  // NaN stays NaN (rel = NaN below)
            num += d * d;
            den += dd * dd;
        }
    c.rel = std::sqrt(num) / std::sqrt(den > 0 ? den : 1e-300);
    if (std::isnan(num)) c.rel = NAN;
    return c;
}

// The E4M3 (e4m3fn) code nearest to v, ties to the even code, saturating to +-448 (as __nv_cvt_float_to_fp8 with
// __NV_SATFINITE).
inline uint8_t e4m3_encode(float v) {
    static const std::vector<float> pos = [] {
        std::vector<float> p(127);
        for (int i = 0; i < 127; ++i) p[size_t(i)] = fp8::e4m3_to_float(uint8_t(i));  // 0 .. 448, increasing
        return p;
    }();
    const uint8_t sign = std::signbit(v) ? 0x80 : 0;
    const float a = std::fabs(v);
    if (a >= 448.f) return uint8_t(sign | 126);
    const auto it = std::upper_bound(pos.begin(), pos.end(), a);
    const int hi = int(it - pos.begin()), lo = hi - 1;
    const float dl = a - pos[size_t(lo)], dh = pos[size_t(hi)] - a;
    const int code = dl < dh ? lo : (dh < dl ? hi : (lo % 2 == 0 ? lo : hi));
    return uint8_t(sign | code);
}

// x [n, cols] (stride xs) as the FP8 GEMM sees it: amax per tensor (per_token: per row), unit = amax / 448,
// e4m3(x / unit) * unit.
inline std::vector<float> fp8_activations(const std::vector<float>& x, int64_t xs, int64_t n, int64_t cols,
                                          bool per_token = false) {
    auto amax_of = [&](int64_t t0, int64_t t1) {
        float amax = 0.f;
        for (int64_t t = t0; t < t1; ++t)
            for (int64_t c = 0; c < cols; ++c) amax = std::max(amax, std::fabs(x[size_t(t * xs + c)]));
        return amax > 0.f ? amax / 448.f : 1.f;
    };
    const float tensor_unit = per_token ? 0.f : amax_of(0, n);
    std::vector<float> q(x.size(), 0.f);
    for (int64_t t = 0; t < n; ++t) {
        const float unit = per_token ? amax_of(t, t + 1) : tensor_unit;
        for (int64_t c = 0; c < cols; ++c)
            q[size_t(t * xs + c)] = fp8::e4m3_to_float(e4m3_encode(x[size_t(t * xs + c)] / unit)) * unit;
    }
    return q;
}

// x [n rows of stride xs, cols] as the int8 NVFP4 GEMV (gemv_int8_x) multiplies it: per 16-column group of a row,
// unit = amax / 127, code = rint(x * (127 / amax)) clamped to +-127 (0 where amax < 1e-30), code * unit.
inline std::vector<float> int8_activations(const std::vector<float>& x, int64_t xs, int64_t n, int64_t cols) {
    std::vector<float> q(x.size(), 0.f);
    for (int64_t t = 0; t < n; ++t)
        for (int64_t g = 0; g < cols; g += 16) {
            const int64_t e1 = std::min<int64_t>(g + 16, cols);
            float amax = 0.f;
            for (int64_t c = g; c < e1; ++c) amax = std::max(amax, std::fabs(x[size_t(t * xs + c)]));
            const bool live = amax >= 1e-30f;
            const volatile float inv = live ? 127.f / amax : 0.f;
            const volatile float unit = live ? amax / 127.f : 0.f;
            for (int64_t c = g; c < e1; ++c) {
                const volatile float prod = x[size_t(t * xs + c)] * inv;
                const float code = std::clamp(std::nearbyint(float(prod)), -127.f, 127.f);
                q[size_t(t * xs + c)] = code * unit;
            }
        }
    return q;
}

// x as the tensor-core GEMV (gemv = mma) multiplies it: x * 2^-4 rounded to the nearest fp16 (ties to even,
// subnormals kept), times 2^4 again.
inline std::vector<float> fp16_activations(const std::vector<float>& x) {
    std::vector<float> q(x.size());
    for (size_t i = 0; i < x.size(); ++i) q[i] = float(static_cast<_Float16>(x[i] * (1.f / 16.f))) * 16.f;
    return q;
}

// Expected output of a grouped matmul (experts.h) from per-expert dense weights w[e] ([rows, cols]); init is the
// y content before the call (rows of stride ys). Returns want (n_out rows of `rows`) and delta = want - init.
struct ExpertsExpected {
    std::vector<double> want, delta;
    int64_t n_out = 0;
};
inline ExpertsExpected experts_expected(const std::vector<std::vector<float>>& w, int64_t rows, int64_t cols,
                                        const ExpertMatmul& m, const std::vector<float>& x,
                                        const std::vector<int32_t>& ids, const std::vector<float>& weights,
                                        const std::vector<float>& init, int64_t ys) {
    ExpertsExpected e;
    const int64_t n_pairs = m.n_tokens * m.top_k;
    e.n_out = m.weights ? m.n_tokens : n_pairs;
    e.want.assign(size_t(e.n_out * rows), 0.0);
    e.delta.assign(size_t(e.n_out * rows), 0.0);
    for (int64_t p = 0; p < n_pairs; ++p) {
        const int32_t id = ids[size_t(p)];
        if (id < 0 || id >= int32_t(w.size())) continue;
        const int64_t xr = m.x_per_slot ? p : p / m.top_k, o = m.weights ? p / m.top_k : p;
        const double g = m.weights ? double(weights[size_t(p)]) : 1.0;
        for (int64_t r = 0; r < rows; ++r) {
            double s = 0;
            for (int64_t c = 0; c < cols; ++c)
                s += double(w[size_t(id)][size_t(r * cols + c)]) * double(x[size_t(xr * m.x_stride + c)]);
            e.delta[size_t(o * rows + r)] += g * s;
        }
    }
    for (int64_t o = 0; o < e.n_out; ++o)
        for (int64_t r = 0; r < rows; ++r)
            e.want[size_t(o * rows + r)] =
                e.delta[size_t(o * rows + r)] + (m.accumulate ? double(init[size_t(o * ys + r)]) : 0.0);
    return e;
}

}  // namespace imp::wo::test
