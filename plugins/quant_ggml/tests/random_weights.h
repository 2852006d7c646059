// quant_ggml tests: random weights of any handled type. Block types get random bytes with their fp16 scale fields
// (d, m, dmin) replaced by finite values of either sign (1e-4 .. 1 in magnitude), so every quant bit pattern occurs.
#pragma once
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "ggml_types.h"
#include "imp/dtype.h"

namespace imp::ggml::test {

inline std::vector<int> scale_offsets(Type t) {
    switch (t) {
        case Type::Q4_0:
        case Type::Q5_0:
        case Type::Q8_0:
        case Type::IQ4_NL:
        case Type::IQ4_XS: return {0};
        case Type::Q4_1:
        case Type::Q5_1:
        case Type::Q4_K:
        case Type::Q5_K: return {0, 2};
        case Type::Q2_K: return {80, 82};
        case Type::Q3_K: return {108};
        case Type::Q6_K: return {208};
        default: return {};
    }
}

inline float sane_value(std::mt19937& rng) {
    std::uniform_real_distribution<float> e(-4.f, 0.f);
    std::bernoulli_distribution neg(0.5);
    return (neg(rng) ? -1.f : 1.f) * std::pow(10.f, e(rng));
}

// Raw bytes of `nblocks` blocks (elements, for F32/F16/BF16) of type t.
inline std::vector<uint8_t> random_blocks(const TypeInfo& t, int64_t nblocks, std::mt19937& rng) {
    std::vector<uint8_t> raw(size_t(nblocks) * size_t(t.bytes));
    std::normal_distribution<float> normal(0.f, 1.f);
    if (t.type == Type::F32 || t.type == Type::F16 || t.type == Type::BF16) {
        for (int64_t i = 0; i < nblocks; ++i) {
            const float v = normal(rng);
            if (t.type == Type::F32) {
                std::memcpy(&raw[size_t(i) * 4], &v, 4);
            } else {
                const uint16_t h = t.type == Type::F16 ? imp::f32_to_fp16(v) : imp::f32_to_bf16(v);
                std::memcpy(&raw[size_t(i) * 2], &h, 2);
            }
        }
        return raw;
    }
    std::uniform_int_distribution<int> byte(0, 255);
    for (auto& b : raw) b = uint8_t(byte(rng));
    const auto offs = scale_offsets(t.type);
    for (int64_t i = 0; i < nblocks; ++i) {
        uint8_t* blk = raw.data() + size_t(i) * size_t(t.bytes);
        for (int off : offs) {
            const uint16_t h = imp::f32_to_fp16(sane_value(rng));
            std::memcpy(blk + off, &h, 2);
        }
        if (t.type == Type::MXFP4) blk[0] = uint8_t(std::uniform_int_distribution<int>(110, 135)(rng));
    }
    return raw;
}

}  // namespace imp::ggml::test
