// synth-safetensors: drawing a tensor's bytes (layout.h Fill kinds) chunk by chunk from a seed, so a file does not
// depend on the thread count.
#pragma once
#include <cstdint>

#include "layout.h"

namespace synth_st {

// Writes bytes [begin, begin + n) of tensor t (begin and n multiples of the element size) into out.
void fill_bytes(const Tensor& t, uint64_t seed, uint64_t begin, uint64_t n, uint8_t* out);

}  // namespace synth_st
