// The kernels behind the GDN ops of gdn_ops.h: CPU references (gdn_*_cpu.cpp), CUDA kernels (*.cu) and the
// argument checks both run first (gdn_validate.cpp). Internal to imp_gdn_ops and its tests.
#pragma once
#include <string>

#include "gdn_ops.h"

namespace imp::gdn {

// One-line imp::Error naming the op and the bad field when the arguments cannot describe a valid call (sizes,
// strides, null pointers, Hv not a multiple of Hk). Checks host fields only.
void validate(const Conv::Args& a);
void validate(const char* op, const RuleArgs& a);
void validate(const GatedNorm::Args& a);
// gdn.decode_step: both parts' checks, the same dims and sequences, one row per sequence, the gated norm set; returns
// the rule's arguments reading the conv's outputs (conv.out, g, beta).
RuleArgs validate(const DecodeStep::Args& a);

void conv_cpu(Executor& ex, const Conv::Args& a);
void rule_decode_cpu(Executor& ex, const RuleArgs& a);   // the recurrence, token by token (any rows)
void rule_chunked_cpu(Executor& ex, const RuleArgs& a);  // the recurrence too: chunk invariant on the CPU
void rule_chunked_wy_cpu(Executor& ex, const RuleArgs& a);  // the chunked WY/UT form (chunks of 64, fp32)
void gated_norm_cpu(Executor& ex, const GatedNorm::Args& a);
void decode_step_cpu(Executor& ex, const DecodeStep::Args& a);  // conv_cpu, then rule_decode_cpu with the norm

void conv_cuda(Executor& ex, const Conv::Args& a);
void rule_decode_cuda(Executor& ex, const RuleArgs& a);
void rule_chunked_cuda(Executor& ex, const RuleArgs& a);
// gdn_ops_bench: the split variants' (a.variant 2..6, or 0 with a workspace) kernels one at a time: phases 1 the prep
// kernel only (the workspace records), 2 the state kernel only (reading the records there), 3 both (= the op).
void rule_chunked_cuda_phases(Executor& ex, const RuleArgs& a, int phases);
void gated_norm_cuda(Executor& ex, const GatedNorm::Args& a);
void decode_step_cuda(Executor& ex, const DecodeStep::Args& a);
// Whether the CUDA kernels run on ex: a CUDA executor of compute capability 9.0+ (rule_chunked_cuda also needs
// dk = dv = 128, checked when called).
bool cuda_supports(const Executor& ex);

// Conformance checks (gdn_checks.cpp): fresh random shapes and inputs from the seed, CUDA vs the CPU reference.
std::string check_conv(Executor& cpu, Executor& dev, uint64_t seed);
std::string check_rule_decode(Executor& cpu, Executor& dev, uint64_t seed);
std::string check_rule_chunked(Executor& cpu, Executor& dev, uint64_t seed);
std::string check_gated_norm(Executor& cpu, Executor& dev, uint64_t seed);
std::string check_decode_step(Executor& cpu, Executor& dev, uint64_t seed);

}  // namespace imp::gdn
