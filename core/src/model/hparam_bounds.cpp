#include "model/hparam_bounds.h"

#include <cmath>
#include <cstdio>

#include "imp/error.h"
#include "model/display_text.h"

namespace imp {

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}
// `key` is `name` or ends with ".<name>" (GGUF "<arch>.<name>", a nested config.json "text_config.<name>").
bool is_key(const std::string& key, const std::string& name) { return key == name || ends_with(key, "." + name); }

std::string num(double v) {
    char b[64];
    std::snprintf(b, sizeof b, "%.9g", v);
    return b;
}

// Largest N in "<word>.N." over the layer words; -1 when absent.
int64_t block_index(const std::string& name) {
    static const char* const kWords[] = {"blk.", "layers.", "h.", "layer.", "blocks."};
    int64_t best = -1;
    for (const char* w : kWords) {
        const std::string word(w);
        for (size_t at = name.find(word); at != std::string::npos; at = name.find(word, at + 1)) {
            if (at > 0 && name[at - 1] != '.') continue;  // a whole component
            size_t p = at + word.size(), q = p;
            while (q < name.size() && q - p < 10 && name[q] >= '0' && name[q] <= '9') ++q;
            if (q == p || q >= name.size() || name[q] != '.') continue;
            best = std::max<int64_t>(best, std::stoll(name.substr(p, q - p)));
        }
    }
    return best;
}

const char* const kLayerCounts[] = {"block_count", "num_hidden_layers", "n_layer", "num_layers"};
// Keys that must be finite and > 0 (and, for epsilons, below 1).
const char* const kPositive[] = {"rope.freq_base", "rope_theta", "rope.scaling.factor", "rope_scaling.factor",
                                 "rope_parameters.rope_theta", "rope_parameters.factor"};
// Keys that must be finite and >= 0 (0: not set, as llama.cpp reads it).
const char* const kNonNegative[] = {"rope.scale_linear"};
const char* const kEpsilons[] = {"attention.layer_norm_rms_epsilon", "attention.layer_norm_epsilon", "rms_norm_eps",
                                 "layer_norm_eps", "layer_norm_epsilon"};

}  // namespace

int64_t blocks_in_tensors(const std::vector<TensorInfo>& tensors) {
    int64_t best = -1;
    for (const auto& t : tensors) best = std::max(best, block_index(t.name));
    return best + 1;
}

void check_hparam_bounds(const std::string& path, const Metadata& md, const std::vector<TensorInfo>& tensors,
                         bool gguf) {
    auto fail = [&](const std::string& key, const std::string& why) {
        throw Error(path + ": metadata key '" + display_text(key) + "' " + why);
    };
    // Each block has tensors of its own: the count is at most the blocks named in tensor names (blk.N), or, in a
    // file without such names, its tensor count. A file without tensors (a vocabulary) builds no model.
    const int64_t named = blocks_in_tensors(tensors);
    const int64_t blocks = tensors.empty() ? -1 : named > 0 ? named : int64_t(tensors.size());
    for (const auto& [key, v] : md.all()) {
        if (v.is_float() && !std::isfinite(std::get<double>(v.v))) fail(key, "is " + num(std::get<double>(v.v)) + ", not a finite number");
        if (!v.is_number()) continue;
        for (const char* k : kLayerCounts) {
            if (!is_key(key, k) || blocks < 0) continue;
            // A count the file's tensors cannot back would make an arch build that many layers before it looks
            // for their weights (2^31 layers: memory runs out first); a u64 above 2^32 would wrap when narrowed.
            const bool too_big = std::holds_alternative<uint64_t>(v.v) ? std::get<uint64_t>(v.v) > uint64_t(blocks)
                                 : std::holds_alternative<int64_t>(v.v) ? std::get<int64_t>(v.v) > blocks
                                                                        : std::get<double>(v.v) > double(blocks);
            if (too_big && named > 0)
                fail(key, "is " + v.to_display() + ", but the file holds tensors for " + std::to_string(blocks) +
                              " blocks (numbered 0 to " + std::to_string(blocks - 1) + ")");
            if (too_big)
                fail(key, "is " + v.to_display() + ", but the file holds only " + std::to_string(blocks) +
                              " tensors and no numbered blocks");
        }
        const double x = v.as_float(key);
        for (const char* k : kPositive)
            if (is_key(key, k) && !(x > 0)) fail(key, "is " + num(x) + ", must be > 0");
        for (const char* k : kNonNegative)
            if (is_key(key, k) && !(x >= 0)) fail(key, "is " + num(x) + ", must be >= 0");
        for (const char* k : kEpsilons)
            if (is_key(key, k) && !(x > 0 && x < 1)) fail(key, "is " + num(x) + ", must be in (0, 1)");
    }
    if (!gguf) return;
    const MetaValue* toks = md.find("tokenizer.ggml.tokens");
    if (!toks || !toks->is_array()) return;
    const int64_t n_vocab = int64_t(toks->as_array("tokenizer.ggml.tokens").size());
    for (const auto& t : tensors) {
        if (t.name != "token_embd.weight" && t.name != "output.weight") continue;
        if (!t.shape.empty() && t.shape[0] != n_vocab)
            throw Error(path + ": tensor '" + t.name + "' has " + std::to_string(t.shape[0]) +
                        " rows, but the vocabulary (tokenizer.ggml.tokens) has " + std::to_string(n_vocab) +
                        " tokens; they must be equal");
    }
}

}  // namespace imp
