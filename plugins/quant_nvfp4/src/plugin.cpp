// quant_nvfp4 plugin entry: registers the "nvfp4" QuantFormat.
#include <memory>

#include "imp/abi.h"
#include "imp/registry.h"
#include "nvfp4_format.h"

namespace {

void register_quant_nvfp4(imp::Registry& r) { r.add_format(std::make_unique<imp::nvfp4::Nvfp4Format>()); }

}  // namespace

IMP_PLUGIN(imp::PluginKind::Quant, "quant_nvfp4", "0.1.0", "format:NVFP4", register_quant_nvfp4)
