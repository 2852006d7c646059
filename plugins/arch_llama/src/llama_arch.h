// The "llama" Arch (Llama and Qwen3 dense, GGUF or HF safetensors). See llama_arch.cpp.
#pragma once
#include <memory>

#include "imp/arch.h"

namespace imp::llama {

std::unique_ptr<Arch> make_arch();

}  // namespace imp::llama
