// quant_fp8: the exact FP8 E4M3 weight dequantization (see fp8_ref.h).
#include "fp8_ref.h"

#include <cmath>
#include <limits>

namespace imp::fp8 {

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

void dequant_row(const uint8_t* q, float scale, int64_t cols, float* out) {
    for (int64_t c = 0; c < cols; ++c) out[c] = e4m3_to_float(q[c]) * scale;
}

}  // namespace imp::fp8
