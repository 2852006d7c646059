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
void validate(const Regroup::Args& a);

// gdn.regroup's gather: the width of a row and the source column of destination column c (host and device).
constexpr int64_t regroup_width(const Regroup::Args& a) {
    return a.mode == 0 ? 2 * a.dims.key_dim() + 2 * a.dims.value_dim() : 2 * int64_t(a.dims.n_v_heads);
}
constexpr int64_t regroup_src(const Dims& d, int mode, int64_t c) {
    const int64_t R = d.n_v_heads / d.n_k_heads, dk = d.head_k_dim, dv = d.head_v_dim;
    if (mode != 0) {
        const int64_t part = c / d.n_v_heads, vh = c % d.n_v_heads;  // part 0: b, 1: a
        return (vh / R) * 2 * R + part * R + vh % R;
    }
    const int64_t G = 2 * dk + 2 * R * dv;
    if (c < 2 * d.key_dim()) {
        const int64_t part = c / d.key_dim(), i = c % d.key_dim();  // part 0: q, 1: k
        return (i / dk) * G + part * dk + i % dk;
    }
    const int64_t c2 = c - 2 * d.key_dim(), part = c2 / d.value_dim(), i = c2 % d.value_dim();  // 0: v, 1: z
    const int64_t vh = i / dv;
    return (vh / R) * G + 2 * dk + part * R * dv + (vh % R) * dv + i % dv;
}

void conv_cpu(Executor& ex, const Conv::Args& a);
void rule_decode_cpu(Executor& ex, const RuleArgs& a);   // the recurrence, token by token (any rows)
void rule_chunked_cpu(Executor& ex, const RuleArgs& a);  // the recurrence too: chunk invariant on the CPU
void rule_chunked_wy_cpu(Executor& ex, const RuleArgs& a);  // the chunked WY/UT form (chunks of 64, fp32)
void gated_norm_cpu(Executor& ex, const GatedNorm::Args& a);
void regroup_cpu(Executor& ex, const Regroup::Args& a);

void conv_cuda(Executor& ex, const Conv::Args& a);
void rule_decode_cuda(Executor& ex, const RuleArgs& a);
void rule_chunked_cuda(Executor& ex, const RuleArgs& a);
void gated_norm_cuda(Executor& ex, const GatedNorm::Args& a);
void regroup_cuda(Executor& ex, const Regroup::Args& a);
// Whether the CUDA kernels run on ex: a CUDA executor of compute capability 9.0+ (rule_chunked_cuda also needs
// dk = dv = 128, checked when called).
bool cuda_supports(const Executor& ex);

// Conformance checks (gdn_checks.cpp): fresh random shapes and inputs from the seed, CUDA vs the CPU reference.
std::string check_conv(Executor& cpu, Executor& dev, uint64_t seed);
std::string check_rule_decode(Executor& cpu, Executor& dev, uint64_t seed);
std::string check_rule_chunked(Executor& cpu, Executor& dev, uint64_t seed);
std::string check_gated_norm(Executor& cpu, Executor& dev, uint64_t seed);
std::string check_regroup(Executor& cpu, Executor& dev, uint64_t seed);

}  // namespace imp::gdn
