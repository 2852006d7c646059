// quant_ggml: the ggml storage types this plugin handles and their block geometry ([FORMATS.md] 1.4).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace imp::ggml {

// clang-format off
enum class Type : int {
    F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS, MXFP4, Count
};
// clang-format on
constexpr int kTypeCount = static_cast<int>(Type::Count);

struct TypeInfo {
    Type type;
    const char* name;  // ggml / safetensors name, e.g. "Q4_1"
    uint32_t ggml_id;  // ggml type id
    int block;         // elements per block (1 for plain float types)
    int bytes;         // bytes per block
};

const TypeInfo& type_info(Type t);
// The type with this name, or null when the plugin does not handle it.
const TypeInfo* find_type(std::string_view name);
// "F32, F16, ..." (for error messages).
std::string type_list();

// Bytes of one row of `cols` elements; throws imp::Error naming `what` when cols is not a whole number of blocks.
uint64_t row_bytes(const TypeInfo& t, int64_t cols, const std::string& what);

}  // namespace imp::ggml
