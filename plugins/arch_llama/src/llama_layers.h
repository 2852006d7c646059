// arch_llama's layer kinds, registered by name: "llama.attention" and "llama.ffn" are the shared blocks
// (imp/blocks/attention.h, imp/blocks/ffn.h) built from LayerParams::hparams through AttentionSpec::from_hparams and
// FfnSpec::from_hparams (the keys are documented there; the llama Arch writes them into ModelDesc::hparams), so
// another arch can build these layers by name by writing the same keys.
#pragma once
#include <memory>

#include "imp/layer.h"

namespace imp::llama {

std::unique_ptr<Layer> make_attention(const LayerParams& p);
std::unique_ptr<Layer> make_ffn(const LayerParams& p);

}  // namespace imp::llama
