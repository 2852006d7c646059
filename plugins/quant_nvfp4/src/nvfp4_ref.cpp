// quant_nvfp4: the exact NVFP4 dequantization (see nvfp4_ref.h).
#include "nvfp4_ref.h"

#include <cmath>
#include <limits>

namespace imp::nvfp4 {

float e2m1_to_float(uint8_t code) {
    static const float kMag[8] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f};
    const float m = kMag[code & 7];
    return (code & 8) ? -m : m;
}

float e4m3_to_float(uint8_t v) {
    const int exp = (v >> 3) & 0xF, man = v & 7;
    float mag;
    if (exp == 0xF && man == 7)
        mag = std::numeric_limits<float>::quiet_NaN();
    else if (exp == 0)
        mag = std::ldexp(static_cast<float>(man), -9);  // subnormal: man * 2^-3 * 2^(1-7)
    else
        mag = std::ldexp(static_cast<float>(8 + man), exp - 10);  // (1 + man/8) * 2^(exp-7)
    return (v & 0x80) ? -mag : mag;
}

namespace {

template <bool kDivide>
void dequant(const uint8_t* codes, const uint8_t* scales, float global, int64_t cols, float* out) {
    for (int64_t b = 0; b < cols / 16; ++b) {
        // The block's scale first, as both producers do.
        const float s = kDivide ? e4m3_to_float(scales[b]) / global : e4m3_to_float(scales[b]) * global;
        for (int64_t i = 0; i < 8; ++i) {
            const uint8_t byte = codes[b * 8 + i];
            out[b * 16 + 2 * i] = e2m1_to_float(byte & 0xF) * s;
            out[b * 16 + 2 * i + 1] = e2m1_to_float(byte >> 4) * s;
        }
    }
}

}  // namespace

void dequant_row(const uint8_t* codes, const uint8_t* scales, float global, int64_t cols, float* out) {
    dequant<false>(codes, scales, global, cols, out);
}

void dequant_row_ct(const uint8_t* codes, const uint8_t* scales, float weight_global_scale, int64_t cols, float* out) {
    dequant<true>(codes, scales, weight_global_scale, cols, out);
}

}  // namespace imp::nvfp4
