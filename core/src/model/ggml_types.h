// The ggml storage types as the GGUF container sees them: id, name, elements per block, bytes per block.
// Container facts only (enough to size and bounds-check tensor data); the block math lives in quant plugins.
#pragma once
#include <cstdint>
#include <span>
#include <string_view>

namespace imp::ggml {

struct TypeInfo {
    uint32_t id;
    const char* name;      // "F32", "Q4_K", ... (ggml's own spelling)
    uint32_t block_elems;  // elements per block (1 for plain types)
    uint32_t block_bytes;  // bytes per block
};

// nullptr for ids ggml never used or removed (4, 5, 31-33, 36-38) and ids past the table.
const TypeInfo* type_info(uint32_t id);
const TypeInfo* type_by_name(std::string_view name);
std::span<const TypeInfo> all_types();

}  // namespace imp::ggml
