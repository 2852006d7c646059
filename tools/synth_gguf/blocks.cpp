#include "blocks.h"

#include <cstring>
#include <stdexcept>
#include <string>

#include "model_plan.h"

namespace synth {

uint16_t to_fp16(float f) {
    uint32_t x;
    std::memcpy(&x, &f, 4);
    const uint32_t sign = (x >> 16) & 0x8000u;
    const int32_t exp = int32_t((x >> 23) & 0xFF) - 127 + 15;
    uint32_t mant = x & 0x7FFFFFu;
    if (exp <= 0) return uint16_t(sign);          // below the normal range: zero (not used for scales here)
    if (exp >= 31) return uint16_t(sign | 0x7BFF);  // saturate to the largest finite value
    uint32_t h = sign | (uint32_t(exp) << 10) | (mant >> 13);
    const uint32_t rest = mant & 0x1FFFu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1))) ++h;
    return uint16_t(h);
}

float from_fp16(uint16_t h) {
    const uint32_t sign = uint32_t(h & 0x8000u) << 16, exp = (h >> 10) & 0x1F, mant = h & 0x3FFu;
    uint32_t x;
    if (exp == 0) {
        if (mant == 0) {
            x = sign;
        } else {  // subnormal
            float f = float(mant) / 1024.f / 16384.f;
            std::memcpy(&x, &f, 4);
            x |= sign;
        }
    } else {
        x = sign | ((exp - 15 + 127) << 23) | (mant << 13);
    }
    float f;
    std::memcpy(&f, &x, 4);
    return f;
}

namespace {

void random_bytes(uint8_t* out, size_t n, Rng& rng) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const uint64_t r = rng.next();
        std::memcpy(out + i, &r, 8);
    }
    if (i < n) {
        const uint64_t r = rng.next();
        std::memcpy(out + i, &r, n - i);
    }
}

// Q8_0: fp16 d, 32 x int8. w = d * q, |w| <= 0.04.
void fill_q8_0(uint8_t* out, int64_t n_blocks, Rng& rng) {
    const float d0 = 0.04f / 127.f;
    for (int64_t b = 0; b < n_blocks; ++b) {
        uint8_t* p = out + b * 34;
        const uint64_t r = rng.next();
        const uint16_t d = to_fp16(d0 * (0.75f + 0.5f * float(r & 0xFF) / 255.f));
        std::memcpy(p, &d, 2);
        random_bytes(p + 2, 32, rng);
        for (int i = 2; i < 34; ++i)
            if (p[i] == 0x80) p[i] = 0x81;  // -128 -> -127: symmetric range
    }
}

// Q4_K: fp16 d, fp16 dmin, 12 bytes of 6-bit (scale, min) pairs for 8 sub-blocks of 32, 128 bytes of 4-bit q.
// w = d * sc * q - dmin * m with sc in [8, 48] and m chosen so each sub-block is roughly centred on 0.
void fill_q4_k(uint8_t* out, int64_t n_blocks, Rng& rng) {
    const float d = 7e-5f, dmin = 8 * d;
    const uint16_t hd = to_fp16(d), hm = to_fp16(dmin);
    for (int64_t b = 0; b < n_blocks; ++b) {
        uint8_t* p = out + b * 144;
        std::memcpy(p, &hd, 2);
        std::memcpy(p + 2, &hm, 2);
        uint8_t sc[8], mn[8];
        uint64_t r = rng.next();
        for (int j = 0; j < 8; ++j, r >>= 8) {
            sc[j] = uint8_t(8 + (r & 0xFF) % 41);
            mn[j] = uint8_t((sc[j] * 15 + 8) / 16);  // ~ sc * 7.5 * d / dmin
        }
        uint8_t* s = p + 4;  // inverse of llama.cpp's get_scale_min_k4
        for (int j = 0; j < 4; ++j) {
            s[j] = uint8_t((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
            s[j + 4] = uint8_t((mn[j] & 63) | ((mn[j + 4] >> 4) << 6));
            s[j + 8] = uint8_t((sc[j + 4] & 0xF) | ((mn[j + 4] & 0xF) << 4));
        }
        random_bytes(p + 16, 128, rng);
    }
}

// Q6_K: 128 bytes low 4 bits, 64 bytes high 2 bits, 16 int8 scales, fp16 d. w = d * sc * (q - 32), sc in [4, 24].
void fill_q6_k(uint8_t* out, int64_t n_blocks, Rng& rng) {
    const uint16_t hd = to_fp16(6.5e-5f);
    for (int64_t b = 0; b < n_blocks; ++b) {
        uint8_t* p = out + b * 210;
        random_bytes(p, 192, rng);
        uint64_t r0 = rng.next(), r1 = rng.next();
        for (int j = 0; j < 16; ++j) {
            const uint64_t r = j < 8 ? r0 >> (8 * j) : r1 >> (8 * (j - 8));
            p[192 + j] = uint8_t(4 + (r & 0xFF) % 21);
        }
        std::memcpy(p + 208, &hd, 2);
    }
}

// BF16: uniform in [-0.04, 0.04).
void fill_bf16(uint8_t* out, int64_t n, Rng& rng) {
    const float scale = 0.04f / 32768.f;
    uint16_t* o = reinterpret_cast<uint16_t*>(out);
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const uint64_t r = rng.next();
        for (int k = 0; k < 4; ++k) {
            const float f = float(int16_t(uint16_t(r >> (16 * k)))) * scale;
            uint32_t x;
            std::memcpy(&x, &f, 4);
            o[i + k] = uint16_t((x + 0x7FFFu + ((x >> 16) & 1)) >> 16);
        }
    }
    for (; i < n; ++i) {
        const float f = float(int16_t(uint16_t(rng.next()))) * scale;
        uint32_t x;
        std::memcpy(&x, &f, 4);
        o[i] = uint16_t((x + 0x7FFFu + ((x >> 16) & 1)) >> 16);
    }
}

}  // namespace

void fill_weights(uint32_t type, uint8_t* out, int64_t n_elems, Rng& rng) {
    const TypeInfo& ti = type_info(type);
    const int64_t n_blocks = n_elems / ti.block;
    switch (type) {
        case kQ8_0: fill_q8_0(out, n_blocks, rng); return;
        case kQ4_K: fill_q4_k(out, n_blocks, rng); return;
        case kQ6_K: fill_q6_k(out, n_blocks, rng); return;
        case kBF16: fill_bf16(out, n_elems, rng); return;
        case kF32: {
            float* f = reinterpret_cast<float*>(out);
            for (int64_t i = 0; i < n_elems; ++i) f[i] = float(int32_t(uint32_t(rng.next()))) * (0.04f / 2147483648.f);
            return;
        }
    }
    throw std::runtime_error("internal: no generator for ggml type " + std::to_string(type));
}

void fill_norm(float* out, int64_t n, Rng& rng) {
    for (int64_t i = 0; i < n; ++i) out[i] = 1.f + float(int32_t(uint32_t(rng.next()))) * (0.05f / 2147483648.f);
}

}  // namespace synth
