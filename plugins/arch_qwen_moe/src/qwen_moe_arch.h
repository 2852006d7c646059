// The "qwen3moe" Arch (Qwen3-MoE from GGUF or HF safetensors). See qwen_moe_arch.cpp.
#pragma once
#include <memory>

#include "imp/arch.h"
#include "imp/layer.h"

namespace imp::qwen_moe {

std::unique_ptr<Arch> make_arch();
// The layer kind "qwen3moe.moe": the SDK's MoE block (imp/blocks/moe.h) built by name from LayerParams::hparams
// through MoeSpec::from_hparams (the keys the arch writes into ModelDesc::hparams).
std::unique_ptr<Layer> make_moe_layer(const LayerParams& p);

}  // namespace imp::qwen_moe
