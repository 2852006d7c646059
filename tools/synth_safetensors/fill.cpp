// synth-safetensors: tensor byte generation (see fill.h). xorshift64* per 4 KiB block, seeded by (tensor seed, block).
#include "fill.h"

#include <cstring>

namespace synth_st {
namespace {

struct Rng {
    uint64_t s;
    explicit Rng(uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull) {
        if (!s) s = 1;
    }
    uint64_t next() {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        return s * 0x2545F4914F6CDD1Dull;
    }
    float unit() { return float(next() >> 40) * (1.0f / 16777216.0f); }  // [0, 1)
};

uint16_t bf16(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return uint16_t((u + 0x7FFF + ((u >> 16) & 1)) >> 16);
}

constexpr uint64_t kBlock = 4096;

void fill_block(const Tensor& t, Rng& r, uint8_t* out, uint64_t n) {
    switch (t.fill) {
        case Fill::Bf16Uniform:
        case Fill::Bf16Near: {  // 16 random bits per element, 4 elements per draw
            const float lo = t.fill == Fill::Bf16Uniform ? -t.a : 0.9f * t.a;
            const float step = (t.fill == Fill::Bf16Uniform ? 2.f * t.a : 0.2f * t.a) / 65536.f;
            for (uint64_t i = 0; i < n; i += 8) {
                uint64_t v = r.next();
                for (uint64_t k = 0; k < 8 && i + k < n; k += 2, v >>= 16) {
                    const uint16_t h = bf16(lo + float(v & 0xFFFF) * step);
                    std::memcpy(out + i + k, &h, 2);
                }
            }
            return;
        }
        case Fill::F32Uniform:
        case Fill::F32Const:
            for (uint64_t i = 0; i < n; i += 4) {
                const float v = t.fill == Fill::F32Const ? t.a : r.unit() * t.a;
                std::memcpy(out + i, &v, 4);
            }
            return;
        case Fill::Fp4Codes:
            for (uint64_t i = 0; i < n; i += 8) {
                const uint64_t v = r.next();
                std::memcpy(out + i, &v, n - i < 8 ? n - i : 8);
            }
            return;
        case Fill::E4m3Scales:  // exponent 6 (0.5 .. 0.94) or 7 with mantissa 0 (1.0); 8 per draw
            for (uint64_t i = 0; i < n; i += 8) {
                uint64_t v = r.next();
                for (uint64_t k = 0; k < 8 && i + k < n; ++k, v >>= 8)
                    out[i + k] = (v & 8) ? uint8_t(0x38) : uint8_t(0x30 | (v & 7));
            }
            return;
        case Fill::Fp8Codes:  // sign, exponent 4..7 (two bits) or 8 (never: keeps |w| < 2), mantissa; 8 per draw
            for (uint64_t i = 0; i < n; i += 8) {
                uint64_t v = r.next();
                for (uint64_t k = 0; k < 8 && i + k < n; ++k, v >>= 8)
                    out[i + k] = uint8_t(((v & 1) << 7) | ((4 + ((v >> 1) & 3)) << 3) | ((v >> 3) & 7));
            }
            return;
    }
}

}  // namespace

void fill_bytes(const Tensor& t, uint64_t seed, uint64_t begin, uint64_t n, uint8_t* out) {
    uint64_t pos = begin;
    uint8_t tmp[kBlock];
    while (pos < begin + n) {
        const uint64_t block = pos / kBlock, b0 = block * kBlock;
        const uint64_t tot = t.bytes(), len = tot - b0 < kBlock ? tot - b0 : kBlock;
        Rng r(seed ^ (block * 0xD1B54A32D192ED03ull));
        fill_block(t, r, tmp, len);
        const uint64_t from = pos - b0, upto = (begin + n - b0) < len ? begin + n - b0 : len;
        std::memcpy(out + (pos - begin), tmp + from, upto - from);
        pos = b0 + upto;
    }
}

}  // namespace synth_st
