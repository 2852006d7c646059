// register_gdn_ops (gdn_ops.h): the five GDN ops' CPU and CUDA kernels and their conformance checks.
#include <utility>

#include "gdn_kernels.h"
#include "imp/ops.h"

namespace imp::gdn {

bool cuda_supports(const Executor& ex) { return ex.cuda() && ex.cuda()->cc >= 90; }

size_t rule_chunked_workspace_bytes(const Dims& d, int64_t n_tokens) {
    return size_t(n_tokens > 0 ? n_tokens : 0) * size_t(d.n_v_heads > 0 ? d.n_v_heads : 0) * 1152;
}

namespace {

template <class Op>
void add(Registry& reg, void (*cpu)(Executor&, const typename Op::Args&),
         void (*cuda)(Executor&, const typename Op::Args&), OpCheck check) {
    reg.add_op<Op>(DeviceKind::CPU, cpu);
    reg.add_op<Op>(DeviceKind::CUDA, cuda, cuda_supports);
    reg.add_op_check(Op::name, std::move(check));
}

}  // namespace

void register_gdn_ops(Registry& reg) {
    add<Conv>(reg, conv_cpu, conv_cuda, check_conv);
    add<RuleDecode>(reg, rule_decode_cpu, rule_decode_cuda, check_rule_decode);
    add<RuleChunked>(reg, rule_chunked_cpu, rule_chunked_cuda, check_rule_chunked);
    add<GatedNorm>(reg, gated_norm_cpu, gated_norm_cuda, check_gated_norm);
    add<DecodeStep>(reg, decode_step_cpu, decode_step_cuda, check_decode_step);
}

}  // namespace imp::gdn
