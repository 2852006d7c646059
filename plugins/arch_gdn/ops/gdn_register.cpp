// register_gdn_ops (gdn_ops.h): the five GDN ops' CPU and CUDA kernels and their conformance checks.
#include "gdn_kernels.h"
#include "imp/ops.h"

namespace imp::gdn {

bool cuda_supports(const Executor& ex) { return ex.cuda() && ex.cuda()->cc >= 90; }

void register_gdn_ops(Registry& reg) {
    reg.add_op<Conv>(DeviceKind::CPU, conv_cpu);
    reg.add_op<Conv>(DeviceKind::CUDA, conv_cuda, cuda_supports);
    reg.add_op_check(Conv::name, check_conv);
    reg.add_op<RuleDecode>(DeviceKind::CPU, rule_decode_cpu);
    reg.add_op<RuleDecode>(DeviceKind::CUDA, rule_decode_cuda, cuda_supports);
    reg.add_op_check(RuleDecode::name, check_rule_decode);
    reg.add_op<RuleChunked>(DeviceKind::CPU, rule_chunked_cpu);
    reg.add_op<RuleChunked>(DeviceKind::CUDA, rule_chunked_cuda, cuda_supports);
    reg.add_op_check(RuleChunked::name, check_rule_chunked);
    reg.add_op<GatedNorm>(DeviceKind::CPU, gated_norm_cpu);
    reg.add_op<GatedNorm>(DeviceKind::CUDA, gated_norm_cuda, cuda_supports);
    reg.add_op_check(GatedNorm::name, check_gated_norm);
    reg.add_op<Regroup>(DeviceKind::CPU, regroup_cpu);
    reg.add_op<Regroup>(DeviceKind::CUDA, regroup_cuda, cuda_supports);
    reg.add_op_check(Regroup::name, check_regroup);
}

}  // namespace imp::gdn
