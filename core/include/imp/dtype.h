// imp SDK: element types of activations and of plain (non-block-quantized) file tensors.
// Block-quantized storage types (Q4_K, NVFP4, ...) are named by strings (see model.h: TensorInfo::type)
// and owned by QuantFormat plugins, so the core never has to know them.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "imp/export.h"

namespace imp {

enum class DType : uint8_t { F32, F16, BF16, F64, I8, U8, I16, U16, I32, U32, I64, U64, BOOL, F8_E4M3, F8_E5M2 };

constexpr size_t dtype_size(DType t) {
    switch (t) {
        case DType::F64: case DType::I64: case DType::U64: return 8;
        case DType::F32: case DType::I32: case DType::U32: return 4;
        case DType::F16: case DType::BF16: case DType::I16: case DType::U16: return 2;
        default: return 1;
    }
}
IMP_API const char* dtype_name(DType t);

// fp16/bf16 <-> fp32 scalar conversions (exact, round-to-nearest-even on the way down).
IMP_API float fp16_to_f32(uint16_t h);
IMP_API uint16_t f32_to_fp16(float f);
inline float bf16_to_f32(uint16_t h) {
    uint32_t u = uint32_t(h) << 16;
    float f;
    __builtin_memcpy(&f, &u, 4);
    return f;
}
IMP_API uint16_t f32_to_bf16(float f);
IMP_API float fp8_e4m3_to_f32(uint8_t v);
// Round to nearest even, saturating to +-448; NaN -> 0x7F.
IMP_API uint8_t f32_to_fp8_e4m3(float f);

}  // namespace imp
