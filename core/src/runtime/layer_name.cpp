// The file's block name of a built layer, for messages (layer_name.h).
#include "runtime/layer_name.h"

#include "imp/layer.h"

namespace imp {

namespace {

// name cut after its first dotted component made only of digits; empty when it has none.
std::string numbered_prefix(const std::string& name) {
    size_t start = 0;
    while (start <= name.size()) {
        size_t end = name.find('.', start);
        if (end == std::string::npos) end = name.size();
        bool digits = end > start;
        for (size_t i = start; i < end && digits; ++i) digits = name[i] >= '0' && name[i] <= '9';
        if (digits) return name.substr(0, end);
        start = end + 1;
    }
    return {};
}

}  // namespace

std::string file_block_name(const Layer& layer) {
    for (const auto& s : layer.weight_specs()) {
        if (!s.values.empty()) continue;  // computed by the arch, not a file tensor
        for (const std::string* n : {&s.name, &s.expert_pattern}) {
            const std::string p = numbered_prefix(*n);
            if (!p.empty()) return p;
        }
    }
    return {};
}

std::string layer_label(const Layer& layer, size_t index) {
    const std::string block = file_block_name(layer);
    return layer.kind() + " (" + (block.empty() ? "stack layer " + std::to_string(index) : block) + ")";
}

}  // namespace imp
