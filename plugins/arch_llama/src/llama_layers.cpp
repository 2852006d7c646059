#include "llama_layers.h"

#include <string>

#include "imp/blocks/attention.h"
#include "imp/blocks/ffn.h"
#include "imp/error.h"

namespace imp::llama {

std::unique_ptr<Layer> make_attention(const LayerParams& p) {
    if (!p.hparams) throw Error("llama.attention: no hyper-parameters given for " + (p.prefix.empty() ? "layer " + std::to_string(p.index) : p.prefix));
    blocks::AttentionSpec s = blocks::AttentionSpec::from_hparams(*p.hparams, p.prefix);
    s.kind = "llama.attention";
    s.layer = p.index;
    return blocks::make_attention(s);
}

std::unique_ptr<Layer> make_ffn(const LayerParams& p) {
    if (!p.hparams) throw Error("llama.ffn: no hyper-parameters given for " + (p.prefix.empty() ? "layer " + std::to_string(p.index) : p.prefix));
    blocks::FfnSpec s = blocks::FfnSpec::from_hparams(*p.hparams, p.prefix);
    s.kind = "llama.ffn";
    s.layer = p.index;
    return blocks::make_swiglu_ffn(s);
}

}  // namespace imp::llama
