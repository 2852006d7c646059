#include "imp/dtype.h"

#include <cmath>
#include <cstring>

namespace imp {

const char* dtype_name(DType t) {
    switch (t) {
        case DType::F32: return "F32";
        case DType::F16: return "F16";
        case DType::BF16: return "BF16";
        case DType::F64: return "F64";
        case DType::I8: return "I8";
        case DType::U8: return "U8";
        case DType::I16: return "I16";
        case DType::U16: return "U16";
        case DType::I32: return "I32";
        case DType::U32: return "U32";
        case DType::I64: return "I64";
        case DType::U64: return "U64";
        case DType::BOOL: return "BOOL";
        case DType::F8_E4M3: return "F8_E4M3";
        case DType::F8_E5M2: return "F8_E5M2";
    }
    return "?";
}

float fp16_to_f32(uint16_t h) {
    const uint32_t sign = uint32_t(h & 0x8000) << 16;
    const uint32_t exp = (h >> 10) & 0x1f;
    const uint32_t man = h & 0x3ff;
    uint32_t u;
    if (exp == 0) {
        if (man == 0) {
            u = sign;
        } else {  // subnormal: value = man * 2^-24
            float f = std::ldexp(float(man), -24);
            std::memcpy(&u, &f, 4);
            u |= sign;
        }
    } else if (exp == 31) {
        u = sign | 0x7f800000u | (man << 13);
    } else {
        u = sign | ((exp + 112) << 23) | (man << 13);
    }
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

uint16_t f32_to_fp16(float f) {
    uint32_t x;
    std::memcpy(&x, &f, 4);
    const uint16_t sign = (x >> 16) & 0x8000;
    const uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) return sign | 0x7c00 | (ax > 0x7f800000u ? 0x200 : 0);  // inf / nan
    if (ax >= 0x477ff000u) return sign | 0x7c00;                                    // overflow -> inf
    if (ax < 0x38800000u) {                                                          // subnormal or zero
        float a;
        std::memcpy(&a, &ax, 4);
        return sign | uint16_t(std::nearbyint(a * 16777216.0f));  // round-to-nearest-even (default mode)
    }
    uint32_t r = ax + 0xfff + ((ax >> 13) & 1);  // round to nearest even
    return sign | uint16_t((r - 0x38000000u) >> 13);
}

uint16_t f32_to_bf16(float f) {
    uint32_t x;
    std::memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return uint16_t((x >> 16) | 0x40);  // quiet nan
    x += 0x7fff + ((x >> 16) & 1);
    return uint16_t(x >> 16);
}

float fp8_e4m3_to_f32(uint8_t v) {
    const float sign = (v & 0x80) ? -1.f : 1.f;
    const int exp = (v >> 3) & 0xf;
    const int man = v & 7;
    if (exp == 15 && man == 7) return std::nanf("");
    if (exp == 0) return sign * std::ldexp(float(man), -9);
    return sign * std::ldexp(1.f + man / 8.f, exp - 7);
}

uint8_t f32_to_fp8_e4m3(float f) {
    if (std::isnan(f)) return 0x7f;
    const uint8_t sign = std::signbit(f) ? 0x80 : 0;
    const double a = std::fabs(double(f));
    if (a >= 448.0) return sign | 0x7e;
    int e;
    std::frexp(a, &e);  // a = m * 2^e, m in [0.5, 1)
    e -= 1;             // a = 1.xxx * 2^e
    if (a == 0.0 || e < -6) {  // subnormal: steps of 2^-9
        const int q = int(std::nearbyint(a * 512.0));
        return sign | uint8_t(q);  // q == 8 is the smallest normal, encoded the same way
    }
    int q = int(std::nearbyint(std::ldexp(a, 3 - e)));  // 8..16
    if (q == 16) {
        q = 8;
        ++e;
    }
    if (e > 8 || (e == 8 && q > 14)) return sign | 0x7e;
    return sign | uint8_t(((e + 7) << 3) | (q - 8));
}

}  // namespace imp
