// The two element-wise ops of the attention block's sigmoid output gate (Qwen3-Next / 3.5 / 3.6), which the
// Executor has no op for. q_proj's output qg is interleaved per head: row t, head h holds the query at
// qg[t * qg_stride + h * 2hd + d] and the gate at qg[t * qg_stride + h * 2hd + hd + d], d < hd.
// Each op runs on the executor it is given: the CPU kernel (the reference, through Executor::parallel_for) or the
// CUDA kernel (gate_ops.cu, on the executor's stream; PDL when CudaHandles::pdl). Pointers are that executor's memory.
// When the SDK's op registry lands these become registered core ops with a conformance check.
#pragma once
#include <cstdint>

#include "imp/blocks/export.h"
#include "imp/executor.h"

namespace imp::blocks::ops {

// q[t, h * hd + d] = qg[t * qg_stride + h * 2hd + d]  (the queries, contiguous [n_tokens, n_head * hd]).
IMP_API void split_gated_q(Executor& ex, const float* qg, int64_t qg_stride, float* q, int64_t n_tokens, int n_head,
                           int head_dim);
// x[t, h * hd + d] *= sigmoid(qg[t * qg_stride + h * 2hd + hd + d])  (x contiguous [n_tokens, n_head * hd]).
IMP_API void apply_output_gate(Executor& ex, float* x, const float* qg, int64_t qg_stride, int64_t n_tokens,
                               int n_head, int head_dim);

}  // namespace imp::blocks::ops

namespace imp::blocks::cuda_ops {
// gate_ops.cu: the CUDA kernels of the ops above, queued on `stream` (a cudaStream_t), with PDL when `pdl`.
void split_gated_q(const float* qg, int64_t qg_stride, float* q, int64_t n_tokens, int n_head, int head_dim,
                   void* stream, bool pdl);
void apply_output_gate(float* x, const float* qg, int64_t qg_stride, int64_t n_tokens, int n_head, int head_dim,
                       void* stream, bool pdl);
}  // namespace imp::blocks::cuda_ops
