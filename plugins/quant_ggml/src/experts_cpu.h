// quant_ggml: expert weights (imp/experts.h) on the CPU executor: the n_expert matrices of one ggml type stacked in
// one allocation of raw ggml rows, multiplied by the routed tokens with the plugin's CPU kernels (kernels.h).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ggml_types.h"
#include "imp/executor.h"
#include "imp/experts.h"
#include "kernels.h"

namespace imp::ggml {

// Bytes a CPU ExpertWeights of this shape holds: n_expert * rows * row bytes (the ggml bytes as they are).
uint64_t cpu_experts_bytes(const std::string& name, Type t, int64_t n_expert, int64_t rows, int64_t cols);

// Copies the experts into one allocation of ex (a CPU executor): expert_data[e] holds expert e's `rows` ggml rows
// of `cols` elements (row-major), e.g. expert_pointers() of a GGUF / HF 3-D tensor, or one 2-D tensor per expert.
// Every type of the plugin. Throws imp::Error naming `name` on a bad shape, a missing pointer or a non-CPU executor.
std::unique_ptr<ExpertWeights> make_cpu_experts(const std::string& name, Type t, int64_t n_expert, int64_t rows,
                                                int64_t cols, const std::vector<const uint8_t*>& expert_data,
                                                Executor& ex, const Kernels& kernels = kernels_best());

}  // namespace imp::ggml
