#include "ggml_types.h"

#include "imp/error.h"

namespace imp::ggml {
namespace {

constexpr TypeInfo kTypes[kTypeCount] = {
    {Type::F32, "F32", 0, 1, 4},        {Type::F16, "F16", 1, 1, 2},          {Type::BF16, "BF16", 30, 1, 2},
    {Type::Q4_0, "Q4_0", 2, 32, 18},    {Type::Q4_1, "Q4_1", 3, 32, 20},      {Type::Q5_0, "Q5_0", 6, 32, 22},
    {Type::Q5_1, "Q5_1", 7, 32, 24},    {Type::Q8_0, "Q8_0", 8, 32, 34},      {Type::Q2_K, "Q2_K", 10, 256, 84},
    {Type::Q3_K, "Q3_K", 11, 256, 110}, {Type::Q4_K, "Q4_K", 12, 256, 144},   {Type::Q5_K, "Q5_K", 13, 256, 176},
    {Type::Q6_K, "Q6_K", 14, 256, 210}, {Type::IQ4_NL, "IQ4_NL", 20, 32, 18}, {Type::IQ4_XS, "IQ4_XS", 23, 256, 136},
    {Type::MXFP4, "MXFP4", 39, 32, 17},
};

}  // namespace

const TypeInfo& type_info(Type t) { return kTypes[static_cast<int>(t)]; }

const TypeInfo* find_type(std::string_view name) {
    for (const auto& t : kTypes)
        if (name == t.name) return &t;
    return nullptr;
}

std::string type_list() {
    std::string s;
    for (const auto& t : kTypes) {
        if (!s.empty()) s += ',';
        s += t.name;
    }
    return s;
}

uint64_t row_bytes(const TypeInfo& t, int64_t cols, const std::string& what) {
    if (cols <= 0 || cols % t.block != 0)
        throw Error("quant_ggml: " + what + ": row of " + std::to_string(cols) + " elements is not a whole number of " +
                    t.name + " blocks of " + std::to_string(t.block));
    return checked_mul(uint64_t(cols / t.block), uint64_t(t.bytes), what.c_str());
}

}  // namespace imp::ggml
