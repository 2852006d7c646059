// Bounds on the hyper-parameters a model file states, checked by the readers against what the file holds before any
// plugin builds layers or allocates from them: a block count no larger than the blocks whose tensors are present
// (or, in a file whose tensor names number no blocks, than its tensor count), finite scalar floats, positive rope
// bases / norm epsilons, a non-negative linear rope scale, and (GGUF) embedding rows equal to the vocabulary.
#pragma once
#include <string>
#include <vector>

#include "imp/export.h"
#include "imp/metadata.h"
#include "imp/model.h"

namespace imp {

// Throws imp::Error("<path>: <key> ...") naming the first key out of bounds. `gguf`: the stricter GGUF rules
// (token_embd/output rows = tokenizer.ggml.tokens count).
IMP_API void check_hparam_bounds(const std::string& path, const Metadata& md, const std::vector<TensorInfo>& tensors,
                                 bool gguf);

// The number of blocks whose tensors a file holds: 1 + the largest N in a tensor name with a "blk.N.", "layers.N.",
// "h.N.", "layer.N." or "blocks.N." component; 0 when there is none.
IMP_API int64_t blocks_in_tensors(const std::vector<TensorInfo>& tensors);

}  // namespace imp
