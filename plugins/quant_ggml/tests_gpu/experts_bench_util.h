// quant_ggml expert benches (hidden "[.bench]" tests): fast random weights of any size and the median time of a
// captured graph's replay.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "gpu_test_util.h"
#include "imp/dtype.h"

namespace imp::ggml::test {

// Random weights of type t, fast (hundreds of MB): random quant bytes, fp16 scales from a table of sane values.
inline std::vector<uint8_t> fast_random(const TypeInfo& t, int64_t n_elems, uint64_t seed) {
    uint64_t s = seed;
    const auto next = [&s] {
        uint64_t z = (s += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    };
    const int64_t nb = n_elems / t.block;
    std::vector<uint8_t> raw(size_t(nb) * size_t(t.bytes));
    if (t.block == 1) {
        for (int64_t i = 0; i < nb; ++i) {
            const float v = float(int64_t(next() >> 40) - (int64_t(1) << 23)) * (1.f / 8388608.f);
            if (t.type == Type::F32) {
                std::memcpy(&raw[size_t(i) * 4], &v, 4);
            } else {
                const uint16_t h = t.type == Type::F16 ? imp::f32_to_fp16(v) : imp::f32_to_bf16(v);
                std::memcpy(&raw[size_t(i) * 2], &h, 2);
            }
        }
        return raw;
    }
    for (size_t i = 0; i + 8 <= raw.size(); i += 8) {
        const uint64_t v = next();
        std::memcpy(&raw[i], &v, 8);
    }
    uint16_t table[256];
    for (int i = 0; i < 256; ++i)
        table[i] = imp::f32_to_fp16((i & 1 ? -1.f : 1.f) * std::pow(10.f, -4.f + 4.f * float(i) / 256.f));
    const auto offs = scale_offsets(t.type);
    for (int64_t b = 0; b < nb; ++b)
        for (int off : offs) std::memcpy(&raw[size_t(b) * size_t(t.bytes) + size_t(off)], &table[next() & 255], 2);
    return raw;
}

// Median seconds of one replay of graph g.
inline double time_graph(imp::CudaExecutor& ex, int g) {
    ex.replay(g);
    ex.synchronize();
    cudaEvent_t a, b;
    QG_TEST_CUDA(cudaEventCreate(&a));
    QG_TEST_CUDA(cudaEventCreate(&b));
    std::vector<double> t;
    for (int i = 0; i < 15; ++i) {
        QG_TEST_CUDA(cudaEventRecord(a, stream_of(ex)));
        ex.replay(g);
        QG_TEST_CUDA(cudaEventRecord(b, stream_of(ex)));
        QG_TEST_CUDA(cudaEventSynchronize(b));
        float ms = 0;
        QG_TEST_CUDA(cudaEventElapsedTime(&ms, a, b));
        t.push_back(ms * 1e-3);
    }
    cudaEventDestroy(a);
    cudaEventDestroy(b);
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
}

}  // namespace imp::ggml::test
