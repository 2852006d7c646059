// quant_fp8: the exact FP8 E4M3 weight dequantization, the CPU truth every FP8 kernel is tested against.
// Canonical host layout: q uint8 [rows, cols] of FP8 E4M3 (e4m3fn) codes; fp32 scales, one per tensor or one per
// row (output channel): w[r, c] = e4m3(q[r, c]) * scale[r or 0], one fp32 multiply.
#pragma once
#include <cstdint>

namespace imp::fp8 {

// FP8 E4M3 (e4m3fn: bias 7, subnormals, no infinities, 0x7F / 0xFF NaN) to fp32, exactly.
float e4m3_to_float(uint8_t v);
// One row: out[c] = e4m3(q[c]) * scale for c < cols.
void dequant_row(const uint8_t* q, float scale, int64_t cols, float* out);

}  // namespace imp::fp8
