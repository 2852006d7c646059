// arch_llama: the "llama" Arch (GGUF llama/qwen3, HF model_type llama/qwen3) and the layer kinds it builds from.
#include "imp/abi.h"
#include "imp/registry.h"
#include "llama_arch.h"
#include "llama_layers.h"

namespace {

void register_llama(imp::Registry& reg) {
    reg.add_layer_kind("llama.attention", imp::llama::make_attention);
    reg.add_layer_kind("llama.ffn", imp::llama::make_ffn);
    reg.add_arch(imp::llama::make_arch());
}

}  // namespace

IMP_PLUGIN(imp::PluginKind::Arch, "arch_llama", "0.1.0", "arch:llama,qwen3;layer:llama.attention,llama.ffn",
           register_llama)
