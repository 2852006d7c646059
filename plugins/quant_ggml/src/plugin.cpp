// quant_ggml plugin entry: declares its settings ([plugin.quant_ggml]) and registers the "ggml" QuantFormat.
#include <memory>

#include "ggml_format.h"
#include "ggml_settings.h"
#include "imp/abi.h"
#include "imp/registry.h"

namespace {

void register_quant_ggml(imp::Registry& r) {
    imp::ggml::declare_ggml_settings(r);
    r.add_format(std::make_unique<imp::ggml::GgmlFormat>());
}

}  // namespace

IMP_PLUGIN(imp::PluginKind::Quant, "quant_ggml", "0.1.0",
           "format:F32,F16,BF16,Q4_0,Q4_1,Q5_0,Q5_1,Q8_0,Q2_K,Q3_K,Q4_K,Q5_K,Q6_K,IQ4_NL,IQ4_XS,MXFP4",
           register_quant_ggml)
