// quant_fp8: how a weight's file tensors read as FP8 E4M3 weights. ModelOpt FP8 (quant_algo FP8 /
// FP8_PER_CHANNEL_PER_TOKEN), AutoFP8 (quant_method fp8 without weight_block_size) and compressed-tensors
// float-quantized store `X.weight` F8_E4M3 [out, in] and
// `X.weight_scale`, one value per tensor ([] or [1]) or one per output channel ([out] or [out, 1]), F32 (ModelOpt) or
// the model dtype (compressed-tensors); `X.input_scale`, when present, is the static activation scale: read and kept
// (Layout::input_scale) but not applied, since imp runs FP8 weight-only (activations stay bf16 / fp32, as vLLM's
// FP8 Marlin path does; W8A8 producers' outputs differ by the activation rounding they did not apply here).
// Block-wise FP8 (`weight_scale_inv`, quant_method fp8 with weight_block_size, or a block-shaped weight_scale) is
// refused with the reason.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "imp/quant_format.h"

namespace imp::fp8 {

// One FP8 matrix, or a 3-D stack of n of them, as one file holds it.
struct Piece {
    const TensorInfo* q = nullptr;  // F8_E4M3 [(n,) rows, cols]
    std::vector<const TensorInfo*> tensors;  // every tensor it reads
    int64_t n = 1, rows = 0, cols = 0;
    std::vector<float> scales;  // n (per tensor) or n * rows (per channel)
    bool per_channel = false;
    float input_scale = 0.f;    // static activation scale, 0 when none
    float scale(int64_t e, int64_t r) const { return per_channel ? scales[size_t(e * rows + r)] : scales[size_t(e)]; }
};

struct Layout {
    std::string refusal;
    std::vector<Piece> pieces;  // parts in row order, or experts in order, or one
    std::vector<int64_t> shape;
    // Parts that are each per-expert tensors (gate|up of every expert): [n_expert, sum of the parts' rows, cols],
    // pieces expert by expert, scales per row.
    bool fused_experts = false;
    bool experts() const { return shape.size() == 3; }
    // Per-row scales are needed (per-channel pieces, or parts whose per-tensor scales differ).
    bool per_row() const;
    // The scales of the canonical layout: per matrix 1 value (per tensor) or rows values (per_row()).
    std::vector<float> canonical_scales() const;
    // The largest static input scale of the pieces (fused parts: the max, as vLLM does), 0 when none.
    float input_scale() const;
};

// Throws imp::Error for tensors that are FP8 but malformed or contradict the config; refuses the rest.
Layout layout_of(const WeightSource& src, const QuantConfig* config);

}  // namespace imp::fp8
