// Helpers shared by the blocks' layers (core/src/blocks): scratch layout, WeightSpec builders, bound-weight lookup.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "imp/blocks/names.h"
#include "imp/error.h"
#include "imp/layer.h"
#include "imp/quant_format.h"

namespace imp::blocks::detail {

// Scratch sub-buffers start on 64-byte boundaries.
constexpr int64_t kAlign = 16;
inline int64_t aligned(int64_t floats) { return (floats + kAlign - 1) / kAlign * kAlign; }

inline WeightSpec matrix(const std::string& name, int64_t rows, int64_t cols) {
    WeightSpec s;
    s.name = name;
    s.shape = {rows, cols};
    s.use = WeightSpec::Use::Matrix;
    return s;
}
// The row concatenation of `parts` (declared separately too): one matmul instead of several with the same input.
inline WeightSpec fused(const std::string& name, int64_t rows, int64_t cols, std::vector<std::string> parts) {
    WeightSpec s = matrix(name, rows, cols);
    s.concat = std::move(parts);
    return s;
}
inline WeightSpec vector(const std::string& name, int64_t n) {
    WeightSpec s;
    s.name = name;
    s.shape = {n};
    s.use = WeightSpec::Use::Vector;
    return s;
}

inline const Weight& need_matrix(const WeightSet& ws, const std::string& name) {
    const Weight* w = ws.matrix(name);
    if (!w) throw Error("layer weight '" + name + "' was not loaded");
    return *w;
}
inline const float* need_vector(const WeightSet& ws, const std::string& name) {
    const float* v = ws.vector(name);
    if (!v) throw Error("layer weight '" + name + "' was not loaded");
    return v;
}

// "<kind> (<block>)": who a message is about, the layer named as the file names it ("llama.ffn (blk.30)").
inline std::string who(const std::string& kind, const NameMap& names, int layer) {
    return kind + " (" + names.block(layer) + ")";
}

// Throws "<who>: <field> must be positive, got <v>" when v <= 0.
inline int64_t positive(const std::string& who, const char* field, int64_t v) {
    if (v <= 0) throw Error(who + ": " + field + " must be positive, got " + std::to_string(v));
    return v;
}

}  // namespace imp::blocks::detail
