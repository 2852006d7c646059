// quant_nvfp4: a weight's NVFP4 pieces gathered into the canonical host layout (nvfp4_ref.h): codes
// [(n_expert,) rows, cols/2], scales [(n_expert,) rows, cols/16] and one global per matrix, contiguous. A single
// file tensor is used in place (no copy); row concatenations and per-expert tensors are copied into one buffer.
#pragma once
#include <cstdint>
#include <vector>

#include "load_parallel.h"
#include "nvfp4_layout.h"

namespace imp::nvfp4 {

struct HostNvfp4 {
    const uint8_t* codes = nullptr;
    const uint8_t* scales = nullptr;
    std::vector<float> globals;  // one per matrix (n_expert for experts, else 1)
    quant_hf::HostBytes code_buf, scale_buf;  // owned copies when the pieces were not one tensor
};

HostNvfp4 gather(const Layout& l);
// The multiplier of each matrix (n_expert for experts, else 1), as gather() gives them, without copying any bytes.
std::vector<float> globals_of(const Layout& l);

}  // namespace imp::nvfp4
