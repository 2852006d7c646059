// quant_fp8 plugin entry: registers the "fp8" QuantFormat.
#include <memory>

#include "fp8_format.h"
#include "imp/abi.h"
#include "imp/registry.h"

namespace {

void register_quant_fp8(imp::Registry& r) { r.add_format(std::make_unique<imp::fp8::Fp8Format>()); }

}  // namespace

IMP_PLUGIN(imp::PluginKind::Quant, "quant_fp8", "0.1.0", "format:FP8_E4M3", register_quant_fp8)
