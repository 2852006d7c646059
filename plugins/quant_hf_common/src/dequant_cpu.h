// quant_fp8 / quant_nvfp4: CPU weights of any row-dequantizable storage. A Weight / ExpertWeights here holds its
// bytes in CPU executor memory and a function that dequantizes one row exactly (the plugin's reference
// dequantization); matmul and grouped_matmul dequantize rows into a thread-local buffer and dot them with the fp32
// activations, accumulating in fp32 in a fixed order (results do not depend on the thread count). Both the FP8 and
// the NVFP4 plugins use it (library quant_dequant_cpu).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "imp/experts.h"
#include "imp/quant_format.h"

namespace imp::quant_cpu {

// Dequantizes row `row` (all cols) into out; called concurrently from several threads.
using RowFn = std::function<void(int64_t row, float* out)>;
// Dequantizes row `row` of expert `e` into out; called concurrently.
using ExpertRowFn = std::function<void(int64_t e, int64_t row, float* out)>;

// `plugin` prefixes messages ("quant_fp8"); `bytes` is what the weight holds in executor memory (Weight::bytes).
std::unique_ptr<Weight> make_weight(std::string plugin, std::string name, std::string type, int64_t rows,
                                    int64_t cols, uint64_t bytes, RowFn row);
std::unique_ptr<ExpertWeights> make_experts(std::string plugin, std::string name, std::string type, int64_t n_expert,
                                            int64_t rows, int64_t cols, uint64_t bytes, ExpertRowFn row);

// sum_c a[c] * b[c] in fp32, 8 interleaved partial sums added in a fixed order.
float dot(const float* a, const float* b, int64_t n);

}  // namespace imp::quant_cpu
