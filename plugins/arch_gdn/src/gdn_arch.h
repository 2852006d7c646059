// arch_gdn: the Arch for Gated-DeltaNet hybrids (Qwen3-Next, Qwen3.5, Qwen3.6). See gdn_arch.cpp.
#pragma once
#include <memory>

#include "imp/arch.h"

namespace imp::gdn_arch {

std::unique_ptr<Arch> make_arch();

}  // namespace imp::gdn_arch
