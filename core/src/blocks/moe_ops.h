// The MoE block's ops (imp/blocks/moe.h: MoeRouter, RowScale): the CPU reference kernels (moe_ops.cpp), the CUDA
// kernels (moe_ops.cu) and the routing of one token from its logits, which both CPU paths share.
#pragma once
#include <cstdint>

#include "imp/blocks/moe.h"
#include "imp/executor.h"

namespace imp::blocks::moe_detail {

// Softmax over logits[0, n_expert) in fp32, top_k by probability (ties: lower id first), renormalized when
// norm_topk, times scale: ids[0, top_k), weights[0, top_k). Needs 0 < top_k <= n_expert.
void route_from_logits(const float* logits, int n_expert, int top_k, bool norm_topk, float scale, int32_t* ids,
                       float* weights);

// MoE forward calls (process-wide) that ran the shared expert as one more slot of the routed launches
// ([plugin.core] moe_shared_slot): lets a test tell that the path it compares ran.
IMP_API uint64_t shared_slot_calls();

void router_cpu(Executor& ex, const MoeRouter::Args& a);
void row_scale_cpu(Executor& ex, const RowScale::Args& a);
// Validates the arguments; throws imp::Error naming the op and the field.
void check_router_args(const MoeRouter::Args& a);

}  // namespace imp::blocks::moe_detail

namespace imp::blocks::moe_cuda {
// moe_ops.cu, queued on the executor's stream (CudaHandles), PDL when CudaHandles::pdl. Need cc >= 90 (clusters).
void router(Executor& ex, const MoeRouter::Args& a);
void row_scale(Executor& ex, const RowScale::Args& a);
// The CTAs per token tile the router launches with on `ex` for a call of n_tokens (MoeOptions::router_cluster, or 8
// where the device cannot schedule a cluster of 16).
IMP_API int router_cluster_in_use(Executor& ex, int64_t n_tokens);
// Whether a router call of n_tokens rows of n_embd over n_expert experts (+ the shared gate) runs the wide kernel on
// `ex` (MoeOptions::router_wide, decode-sized calls); else the cluster kernel. Assumes x, its row stride and the
// weights 16-byte aligned (a call that is not takes the cluster kernel whatever this says).
IMP_API bool router_wide_in_use(Executor& ex, int64_t n_tokens, int64_t n_embd, int n_expert, bool shared_gate);
}  // namespace imp::blocks::moe_cuda
