// One op through the conformance runner (imp/ops.h's run_op_checks runs every op of a registry): for the tests of a
// plugin that want its own ops checked, not every op the registry they build holds.
#pragma once
#include <cstdint>
#include <string>

#include "imp/export.h"
#include "imp/ops.h"

namespace imp {

class Executor;
class Registry;

// What run_op_checks reports for op `name` (Fail when the registry has neither a kernel nor a check by that name).
IMP_API OpCheckResult run_op_check(const Registry& reg, const std::string& name, Executor& cpu, Executor& dev,
                                   uint64_t seed, int rounds = 3);

}  // namespace imp
