// quant_nvfp4: how a weight's file tensors read as NVFP4. ModelOpt stores `X.weight` U8 [out, in/2] (two E2M1
// codes per byte, element 2i in the low nibble), `X.weight_scale` F8_E4M3 [out, in/16] and `X.weight_scale_2` F32
// (the per-tensor multiplier; `X.input_scale` is read and ignored: weight-only); compressed-tensors
// `nvfp4-pack-quantized` stores `X.weight_packed`, `X.weight_scale` and `X.weight_global_scale`, whose reciprocal
// is the multiplier. Both are already the canonical host layout (nvfp4_ref.h) but for that reciprocal. The
// quantization config must agree with the tensors (quant_algo NVFP4 / W4A16_NVFP4, its MIXED_PRECISION entry,
// group size 16, not excluded); a disagreement is an imp::Error naming the tensor, the module, the key and the files.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "imp/quant_format.h"

namespace imp::nvfp4 {

// One NVFP4 matrix, or a 3-D stack of n of them, as one file holds it.
struct Piece {
    const TensorInfo* codes = nullptr;   // U8 [(n,) rows, cols / 2]
    const TensorInfo* scales = nullptr;  // F8_E4M3 [(n,) rows, cols / 16]
    std::vector<const TensorInfo*> tensors;  // every tensor it reads (codes, scales, global, input scale)
    int64_t n = 1, rows = 0, cols = 0;
    std::vector<float> globals;  // n multipliers: w = e2m1 * (e4m3 scale * global) (the canonical layout)
    // compressed-tensors: the file's weight_global_scale values (globals are their reciprocals); the CPU
    // dequantizes by dividing by them, as the producer does (nvfp4_ref.h dequant_row_ct).
    std::vector<float> ct_global_scales;
    bool compressed_tensors() const { return !ct_global_scales.empty(); }
};

// A request's source as NVFP4: its pieces in row order (parts) or expert order, and the logical shape
// ([rows, cols] for a matrix or row concatenation, [n_expert, rows, cols] for experts, [n_expert, sum of the parts'
// rows, cols] for parts that are each per-expert tensors), or why it is not NVFP4.
struct Layout {
    std::string refusal;
    std::vector<Piece> pieces;
    std::vector<int64_t> shape;
    // Fused experts (parts of per-expert tensors, e.g. gate|up): pieces go expert by expert, this many per expert
    // (all of one expert share its per-tensor scale); 1 otherwise.
    int64_t parts_per_expert = 1;
    bool experts() const { return shape.size() == 3; }
    // The piece holding logical row `row` (experts: e * rows + r) and the row inside it.
    const Piece& locate(int64_t row, int64_t& local) const;
};

// Throws imp::Error for tensors that are NVFP4 but malformed or contradict the config; refuses the rest.
Layout layout_of(const WeightSource& src, const QuantConfig* config);

}  // namespace imp::nvfp4
