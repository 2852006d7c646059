#include "model/ggml_types.h"

namespace imp::ggml {

namespace {
// Sizes follow the static_asserts in ggml-common.h (ggml_half = 2 bytes, QK_K = 256). Ids >= 40 are newer
// additions to ggml (NVFP4 40, Q1_0 41); files from older ggml never contain them.
constexpr TypeInfo kTypes[] = {
    {0, "F32", 1, 4},         {1, "F16", 1, 2},         {2, "Q4_0", 32, 18},      {3, "Q4_1", 32, 20},
    {6, "Q5_0", 32, 22},      {7, "Q5_1", 32, 24},      {8, "Q8_0", 32, 34},      {9, "Q8_1", 32, 36},
    {10, "Q2_K", 256, 84},    {11, "Q3_K", 256, 110},   {12, "Q4_K", 256, 144},   {13, "Q5_K", 256, 176},
    {14, "Q6_K", 256, 210},   {15, "Q8_K", 256, 292},   {16, "IQ2_XXS", 256, 66}, {17, "IQ2_XS", 256, 74},
    {18, "IQ3_XXS", 256, 98}, {19, "IQ1_S", 256, 50},   {20, "IQ4_NL", 32, 18},   {21, "IQ3_S", 256, 110},
    {22, "IQ2_S", 256, 82},   {23, "IQ4_XS", 256, 136}, {24, "I8", 1, 1},         {25, "I16", 1, 2},
    {26, "I32", 1, 4},        {27, "I64", 1, 8},        {28, "F64", 1, 8},        {29, "IQ1_M", 256, 56},
    {30, "BF16", 1, 2},       {34, "TQ1_0", 256, 54},   {35, "TQ2_0", 256, 66},   {39, "MXFP4", 32, 17},
    {40, "NVFP4", 64, 36},    {41, "Q1_0", 128, 18},
};
constexpr uint32_t kMaxId = 41;

struct ById {
    const TypeInfo* by_id[kMaxId + 1] = {};
    constexpr ById() {
        for (const auto& t : kTypes) by_id[t.id] = &t;
    }
};
constexpr ById kById{};
}  // namespace

const TypeInfo* type_info(uint32_t id) { return id <= kMaxId ? kById.by_id[id] : nullptr; }

const TypeInfo* type_by_name(std::string_view name) {
    for (const auto& t : kTypes)
        if (name == t.name) return &t;
    return nullptr;
}

std::span<const TypeInfo> all_types() { return kTypes; }

}  // namespace imp::ggml
