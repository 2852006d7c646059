// The op part of a Registry (imp/ops.h): the kernels of each op by name and device kind, and the ops' checks.
// Entries are heap-allocated so that OpRef's pointers stay valid while more ops are registered.
#pragma once
#include <array>
#include <map>
#include <memory>
#include <string>

#include "imp/ops.h"
#include "imp/registry.h"

namespace imp {

struct Registry::OpTable {
    std::map<std::string, std::array<std::unique_ptr<OpEntry>, kDeviceKindCount>> kernels;  // by op name
    std::map<std::string, std::unique_ptr<OpCheckEntry>> checks;                           // by op name
};

}  // namespace imp
