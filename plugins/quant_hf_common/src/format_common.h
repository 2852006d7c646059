// quant_fp8 / quant_nvfp4: the steps both QuantFormats take alike around their own layouts: which file tensors a
// request stands for, the plan's executor checks, the shape checks of load / load_experts / dequantize, and the
// error of a build without CUDA kernels. Library quant_hf_common.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "imp/executor.h"
#include "imp/quant_format.h"

namespace imp::quant_hf {

// The sources a request reads, in row order: its parts (a row concatenation), its experts, or itself. A part or
// expert that is itself a list sets refusal (nested lists are not supported) and returns nothing.
std::vector<const WeightSource*> source_units(const WeightSource& src, std::string& refusal);

// The plan of an accepted layout: refused on an executor other than CPU and CUDA, or on CUDA when the build has no
// kernels (plugin names the build); else accepted with type, shape and the file tensors consumed. device_bytes is
// left to the caller.
WeightPlan accepted_plan(const Executor& ex, const std::string& plugin, bool cuda_built, const std::string& type,
                         const std::vector<int64_t>& shape, std::vector<const TensorInfo*> consumed);

// load: throws "<plugin>: '<name>' is <shape>, not a [rows, cols] matrix" unless shape has 2 dims; load_experts:
// "... experts '<name>' is <shape>, not [n_expert, rows, cols]" unless it has 3.
void require_matrix(const std::string& plugin, const std::string& name, const std::vector<int64_t>& shape);
void require_experts(const std::string& plugin, const std::string& name, const std::vector<int64_t>& shape);

// dequantize: throws naming src unless refusal is empty and rows [row0, row0 + nrows) lie within total.
void check_dequantize(const std::string& plugin, const WeightSource& src, const std::string& refusal, int64_t row0,
                      int64_t nrows, int64_t total);

// A weight of `type` on a CUDA executor in a build without the plugin's CUDA kernels.
[[noreturn]] void no_cuda(const std::string& plugin, const std::string& name, const std::string& type);

}  // namespace imp::quant_hf
