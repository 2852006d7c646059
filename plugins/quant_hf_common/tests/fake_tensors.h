// quant_fp8 / quant_nvfp4 tests: file tensors made in memory (TensorInfo + owned bytes) and the WeightRequest the
// engine would build from them, for plan / load / config tests without a file.
#pragma once
#include <cstdint>
#include <cstring>
#include <deque>
#include <random>
#include <string>
#include <vector>

#include "imp/quant_format.h"

namespace imp::quant_test {

class FakeTensors {
public:
    const TensorInfo* add(const std::string& name, const std::string& type, std::vector<int64_t> shape,
                          std::vector<uint8_t> bytes) {
        data_.push_back(std::move(bytes));
        TensorInfo t;
        t.name = name;
        t.type = type;
        t.shape = std::move(shape);
        t.data = data_.back().data();
        t.nbytes = data_.back().size();
        infos_.push_back(t);
        return &infos_.back();
    }
    const TensorInfo* f32(const std::string& name, std::vector<int64_t> shape, const std::vector<float>& v) {
        std::vector<uint8_t> b(v.size() * 4);
        std::memcpy(b.data(), v.data(), b.size());
        return add(name, "F32", std::move(shape), std::move(b));
    }
    std::vector<uint8_t> random_bytes(size_t n, uint8_t lo, uint8_t hi) {
        std::uniform_int_distribution<int> d(lo, hi);
        std::vector<uint8_t> b(n);
        for (auto& x : b) x = uint8_t(d(rng_));
        return b;
    }
    std::mt19937& rng() { return rng_; }

private:
    std::deque<std::vector<uint8_t>> data_;
    std::deque<TensorInfo> infos_;
    std::mt19937 rng_{1234};
};

// A ModelOpt NVFP4 source "<module>.weight" [rows, cols] with random codes, scales in [2^-4, 2^3] and the given
// weight_scale_2 (plus an input_scale).
inline WeightSource nvfp4_source(FakeTensors& f, const std::string& module, int64_t rows, int64_t cols, float g2) {
    WeightSource s;
    s.main = f.add(module + ".weight", "U8", {rows, cols / 2}, f.random_bytes(size_t(rows * cols / 2), 0, 255));
    s.aux["weight_scale"] = f.add(module + ".weight_scale", "F8_E4M3", {rows, cols / 16},
                                  f.random_bytes(size_t(rows * cols / 16), 0x18, 0x50));
    s.aux["weight_scale_2"] = f.f32(module + ".weight_scale_2", {}, {g2});
    s.aux["input_scale"] = f.f32(module + ".input_scale", {}, {0.5f});
    return s;
}

// An FP8 source "<module>.weight" [rows, cols] with random finite E4M3 codes and per-tensor or per-row scales.
inline WeightSource fp8_source(FakeTensors& f, const std::string& module, int64_t rows, int64_t cols,
                               bool per_channel, float base_scale) {
    WeightSource s;
    std::vector<uint8_t> q = f.random_bytes(size_t(rows * cols), 0, 255);
    for (auto& b : q)
        if ((b & 0x7F) == 0x7F) b ^= 1;  // no NaN codes
    s.main = f.add(module + ".weight", "F8_E4M3", {rows, cols}, std::move(q));
    std::vector<float> sc(per_channel ? size_t(rows) : 1);
    for (size_t i = 0; i < sc.size(); ++i) sc[i] = base_scale * float(1 + i % 7) / 4.f;
    s.aux["weight_scale"] = per_channel ? f.f32(module + ".weight_scale", {rows, 1}, sc)
                                        : f.f32(module + ".weight_scale", {}, sc);
    return s;
}

inline WeightRequest request(const std::string& name, WeightRole role, std::vector<int64_t> shape, WeightSource s,
                             const QuantConfig* q) {
    WeightRequest r;
    r.name = name;
    r.role = role;
    r.shape = std::move(shape);
    r.source = std::move(s);
    r.config = q;
    return r;
}

}  // namespace imp::quant_test
