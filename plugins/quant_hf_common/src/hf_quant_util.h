// quant_fp8 / quant_nvfp4: helpers both Hugging Face quantized-checkpoint formats share: the quantization config's
// algorithm for one module (quantized_layers, exclude patterns, the multimodal `model.language_model.` prefix),
// fp32 scale tensors, shapes for messages. Library quant_hf_common.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "imp/model.h"
#include "imp/quant_format.h"

namespace imp::quant_hf {

std::string shape_str(const std::vector<int64_t>& s);

// What the config says about one module (a weight name without ".weight").
struct ModuleAlgo {
    std::string algo;        // quant_algo for it ("" when excluded or when the config has none)
    bool listed = false;     // it has a quantized_layers entry (MIXED_PRECISION)
    bool excluded = false;   // an exclude_modules / ignore pattern matches it
    int64_t group_size = 0;  // its quantized_layers group_size, else the config's
    std::string key;         // where that came from, for messages ("quantized_layers.<name>", "quant_algo")
};
// Looks the module up as named and with the HF multimodal prefix swapped ("model.language_model.X" <-> "model.X"),
// since configs and tensor names do not always agree on it: a quantized_layers entry under either name or an
// ancestor of it wins ("...mlp.experts" covers "...mlp.experts.5.gate_proj"), then an exclude pattern matching
// either, then the config's quant_algo.
ModuleAlgo module_algo(const QuantConfig& q, const std::string& module);
// The config's files for messages: "config.json, hf_quant_config.json", or "no quantization config".
std::string config_files(const QuantConfig& q);

// How one format reads the quantization config, for check_module / check_missing.
struct FormatRules {
    std::string plugin;                   // "quant_fp8" (prefixes every message)
    std::string holds;                    // what a tensor of the format is, in messages: "is FP8"
    std::string kind;                     // "FP8" ("no FP8 entry", "not FP8")
    std::vector<std::string> algos;       // the quant_algo values the format reads
    std::vector<std::string> ct_formats;  // compressed-tensors `format` values read besides "" and mixed-precision
    std::string reads;                    // "(it reads FP8 and FP8_PER_CHANNEL_PER_TOKEN)"
    bool reads_algo(const std::string& a) const;
};
// The config's word on a module whose tensors are the format's (m = module_algo(*q, module); tensor names the file
// tensor): returns when the config agrees, else throws one imp::Error naming the key: the module is excluded, the
// compressed-tensors format is another, the module has no entry, or its quant_algo is one the format does not read.
void check_module(const FormatRules& r, const QuantConfig& q, const ModuleAlgo& m, const std::string& tensor,
                  const std::string& module);
// A module that the config's quantized_layers gives one of the format's algorithms but whose tensors are not the
// format's (have: what they are): throws naming the key. No config or no quantized_layers: returns.
void check_missing(const FormatRules& r, const QuantConfig* q, const std::string& module, const std::string& have);

// The values of an F32 tensor (scales), checked: type F32 and nbytes == 4 * numel; `want` elements unless -1.
std::vector<float> read_f32(const TensorInfo& t, const std::string& plugin, int64_t want = -1);
// Like read_f32, but also BF16 and F16 (converted exactly): compressed-tensors writes scales in the model dtype.
std::vector<float> read_floats(const TensorInfo& t, const std::string& plugin);

}  // namespace imp::quant_hf
