// The name a model file gives a layer of the built stack, for messages. An arch builds several stack layers per
// file block (attention + FFN, or attention + MoE), so the stack index is not the file's: blk.30's FFN is stack
// layer 61. Messages name the block as the file does ("blk.30", "model.layers.30"), read from the layer's own
// weight names.
#pragma once
#include <cstddef>
#include <string>

namespace imp {

class Layer;

// The file's block name of `layer`: its first weight name (or per-expert name pattern) that has an all-digit dotted component, cut after that
// component ("blk.30.ffn_up.weight" -> "blk.30", "model.layers.7.mlp.gate.weight" -> "model.layers.7"). Empty
// when no weight name has one.
std::string file_block_name(const Layer& layer);

// "<kind> (<block>)" for messages: "llama.ffn (blk.30)"; a layer whose weights name no block is
// "<kind> (stack layer <index>)".
std::string layer_label(const Layer& layer, size_t index);

}  // namespace imp
