// quant_ggml: a [rows, cols] weight of one ggml type on the CPU executor (raw ggml rows in executor memory),
// multiplied with the plugin's CPU kernels (kernels.h).
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "ggml_types.h"
#include "imp/quant_format.h"
#include "kernels.h"

namespace imp::ggml {

// data: rows * row_bytes bytes of executor memory (ex.alloc) holding the raw ggml rows.
std::unique_ptr<Weight> make_cpu_weight(const std::string& name, const TypeInfo& type, int64_t rows, int64_t cols,
                                        uint64_t row_bytes, const uint8_t* data,
                                        const Kernels& kernels = kernels_best());

// Throws imp::Error naming the tensor when ex is not a CPU executor.
void require_cpu(const Executor& ex, const std::string& tensor);

}  // namespace imp::ggml
