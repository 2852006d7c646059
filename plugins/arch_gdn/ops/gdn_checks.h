// Comparisons of the GDN ops on two executors (a device kernel against the CPU reference) over one problem, used by
// the registered conformance checks (random problems from a seed) and by the GPU tests (chosen problems).
// Inputs are fresh random values with realistic ranges (never zeros): q, k heads unit vectors, v ~ U(-2, 2),
// beta = sigmoid(N(0, 2)), g = -A softplus(a + dt_bias) with A ~ U(0.02, 16), dt_bias ~ U(-7, -2), a ~ N(0, 1.5),
// initial states ~ N(0, 0.5), slots shuffled among spare ones (a write to a wrong slot is caught).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "gdn_ops.h"

namespace imp::gdn {

struct Problem {
    Dims dims;
    std::vector<int> lens;  // rows of each sequence (>= 1)
    int kernel = 4;         // conv taps
    bool A_is_log = true;
    uint64_t seed = 1;
    int variant = 0;  // gdn.rule_chunked's RuleArgs::variant (every variant but 1 gets a workspace); decode: warps
    bool gated_norm = false;  // gdn.rule_decode with the gated norm (RuleArgs::norm_w, z)
    int decode_ctas = 1;      // gdn.rule_decode with the gated norm, gdn.decode_step: RuleArgs::decode_ctas
    int conv_variant = 0;     // gdn.conv's Conv::Args::variant
    bool aligned = false;     // gdn.conv: row and slot strides multiples of 4 floats (its 16-byte kernel applies)
};

// "" when the device's outputs and states equal the CPU reference's within the op's stated tolerance; else one line.
std::string compare_conv(Executor& cpu, Executor& dev, const Problem& p);
std::string compare_rule(Executor& cpu, Executor& dev, const Problem& p, bool decode);
// gdn.decode_step (p.lens all 1; p.variant: warps, p.decode_ctas) against the CPU's conv + decode rule + norm: o and
// both states.
std::string compare_decode_step(Executor& cpu, Executor& dev, const Problem& p);
// aligned: row strides multiples of 4 floats (the 16-byte warp kernel applies); variant: GatedNorm::Args::variant.
std::string compare_gated_norm(Executor& cpu, Executor& dev, int64_t n_tokens, int n_heads, int head_dim,
                               uint64_t seed, int variant = 0, bool aligned = false);

// Tolerances (atol relative to the largest reference magnitude, rtol to each element), justified in gdn_checks.cpp.
struct Tolerance {
    float atol_rel_max, rtol;
};
Tolerance rule_chunked_tolerance();

// "" when |got - ref| <= tol.atol_rel_max * max|ref| + tol.rtol * |ref| everywhere (and finite); else one line.
std::string compare_scaled(const std::string& what, const std::vector<float>& ref, const std::vector<float>& got,
                           Tolerance tol);

}  // namespace imp::gdn
