#include "experts_check.h"

#include <climits>

#include "imp/error.h"

namespace imp::ggml {

std::vector<const uint8_t*> expert_pointers(const uint8_t* data, int64_t n_expert, int64_t rows, uint64_t row_bytes) {
    std::vector<const uint8_t*> p(size_t(n_expert > 0 ? n_expert : 0));
    const uint64_t expert_bytes = checked_mul(uint64_t(rows > 0 ? rows : 0), row_bytes, "quant_ggml: experts");
    for (int64_t e = 0; e < n_expert; ++e) p[size_t(e)] = data + uint64_t(e) * expert_bytes;
    return p;
}

uint64_t check_experts_source(const std::string& name, Type t, int64_t n_expert, int64_t rows, int64_t cols,
                              const std::vector<const uint8_t*>& expert_data) {
    const std::string what = "experts '" + name + "'";
    if (n_expert <= 0 || n_expert > INT32_MAX || rows <= 0 || rows > INT32_MAX || cols > INT32_MAX)
        throw Error("quant_ggml: " + what + " has bad shape [" + std::to_string(n_expert) + ", " +
                    std::to_string(rows) + ", " + std::to_string(cols) + "]");
    const uint64_t rb = row_bytes(type_info(t), cols, what);
    (void)checked_mul(checked_mul(uint64_t(n_expert), uint64_t(rows), what.c_str()), rb, what.c_str());
    if (int64_t(expert_data.size()) != n_expert)
        throw Error("quant_ggml: " + what + ": " + std::to_string(expert_data.size()) + " expert data pointers for " +
                    std::to_string(n_expert) + " experts");
    for (size_t e = 0; e < expert_data.size(); ++e)
        if (!expert_data[e]) throw Error("quant_ggml: " + what + ": no data for expert " + std::to_string(e));
    return rb;
}

bool check_expert_matmul(const std::string& name, int64_t rows, int64_t cols, const ExpertMatmul& m) {
    const std::string what = "quant_ggml: experts '" + name + "': grouped_matmul ";
    if (m.n_tokens < 0) throw Error(what + "with " + std::to_string(m.n_tokens) + " tokens");
    if (m.n_tokens == 0) return false;
    if (m.top_k < 1) throw Error(what + "with top_k " + std::to_string(m.top_k));
    if (m.top_k > INT32_MAX / m.n_tokens)
        throw Error(what + "of " + std::to_string(m.n_tokens) + " tokens x top_k " + std::to_string(m.top_k) +
                    ": more than 2^31 (token, slot) pairs");
    if (!m.x || !m.ids || !m.y) throw Error(what + "without x, ids or y");
    const int64_t n_pairs = m.n_tokens * m.top_k;
    const int64_t x_rows = m.x_per_slot ? n_pairs : m.n_tokens, y_rows = m.weights ? m.n_tokens : n_pairs;
    const int64_t x_cols = m.x_swiglu ? 2 * cols : cols;  // [gate | up]
    if ((x_rows > 1 && m.x_stride < x_cols) || (y_rows > 1 && m.y_stride < rows))
        throw Error(what + "strides x " + std::to_string(m.x_stride) + ", y " + std::to_string(m.y_stride) +
                    " are below " + (m.x_swiglu ? "2 x cols " : "cols ") + std::to_string(x_cols) + ", rows " +
                    std::to_string(rows));
    return true;
}

}  // namespace imp::ggml
