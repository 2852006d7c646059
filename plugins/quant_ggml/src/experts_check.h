// quant_ggml: checks shared by the CPU and CUDA expert weights (imp/experts.h): the stacked source at load, and an
// ExpertMatmul's arguments at each call. Every failure is an imp::Error naming the experts tensor.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "ggml_types.h"
#include "imp/experts.h"

namespace imp::ggml {

// Pointers to the n_expert experts of one contiguous [n_expert, rows, cols] buffer (a GGUF 3-D tensor or an HF
// fused one): expert e at data + e * rows * row_bytes.
std::vector<const uint8_t*> expert_pointers(const uint8_t* data, int64_t n_expert, int64_t rows, uint64_t row_bytes);

// Checks n_expert, rows, cols (a whole number of blocks of t) and that expert_data has n_expert non-null pointers;
// returns the bytes of one ggml row.
uint64_t check_experts_source(const std::string& name, Type t, int64_t n_expert, int64_t rows, int64_t cols,
                              const std::vector<const uint8_t*>& expert_data);

// Checks m against experts of [rows, cols]: top_k >= 1, pointers set, row strides wide enough where there is more
// than one row, n_tokens * top_k within int32. Returns false when there is nothing to do (n_tokens == 0).
bool check_expert_matmul(const std::string& name, int64_t rows, int64_t cols, const ExpertMatmul& m);

}  // namespace imp::ggml
