// quant_nvfp4: the exact NVFP4 dequantization, the CPU truth every NVFP4 kernel is tested against.
// Canonical host layout of one row of `cols` elements (cols % 16 == 0):
//   codes  uint8 [cols / 2]:  element 2i in the LOW nibble, element 2i+1 in the HIGH nibble; a nibble is an FP4
//                             E2M1 code, bit 3 the sign, bits 0-2 the magnitude index into {0,.5,1,1.5,2,3,4,6};
//   scales uint8 [cols / 16]: one FP8 E4M3 (e4m3fn) scale per 16 consecutive elements;
//   global fp32:              the per-tensor multiplier (ModelOpt weight_scale_2; the reciprocal of
//                             compressed-tensors' weight_global_scale).
//   w[c] = e2m1(code[c]) * (e4m3(scale[c / 16]) * global), two fp32 multiplies in that order (ModelOpt's
//   NVFP4QTensor.dequantize: the per-block scale times the per-tensor scale, then times the unpacked values).
#pragma once
#include <cstdint>

namespace imp::nvfp4 {

// FP4 E2M1 code (low 4 bits of `code`) to its value: 0..7 -> {0, .5, 1, 1.5, 2, 3, 4, 6}, 8..15 their negatives
// (8 = -0.0f).
float e2m1_to_float(uint8_t code);
// FP8 E4M3 (e4m3fn: bias 7, subnormals, no infinities, 0x7F / 0xFF NaN) to fp32, exactly.
float e4m3_to_float(uint8_t v);
// One row: out[c] = e2m1(code of element c) * (e4m3(scales[c / 16]) * global) for c < cols. Code 8 is -0.0 (the
// E2M1 encoding; ModelOpt's lookup table has +0.0 there, an equal value).
void dequant_row(const uint8_t* codes, const uint8_t* scales, float global, int64_t cols, float* out);
// compressed-tensors' own arithmetic: out[c] = e2m1(code) * (e4m3(scale) / weight_global_scale), a division by the
// file's global scale (dequant_row with global = 1 / weight_global_scale can differ from it in the last bit).
void dequant_row_ct(const uint8_t* codes, const uint8_t* scales, float weight_global_scale, int64_t cols, float* out);

}  // namespace imp::nvfp4
