// The model-level quantization config (imp::QuantConfig, quant_format.h) of an opened model: a safetensors folder's
// config.json "quantization_config" and ModelOpt's hf_quant_config.json "quantization", normalized into one struct
// the quant formats read from every WeightRequest. GGUF files and single .safetensors files have none.
#pragma once
#include <string>

#include "imp/export.h"
#include "imp/model.h"
#include "imp/quant_format.h"
#include "model/json.h"

namespace imp {

// Reads the config of src (for a folder: re-reads <dir>/config.json and <dir>/hf_quant_config.json, which the
// reader validated as JSON when it opened the folder). Throws imp::Error naming the file and key on a wrong type.
IMP_API QuantConfig read_quant_config(const ModelSource& src);

// The same from parsed documents (either may be null): config.json's "quantization_config" object and the whole
// hf_quant_config.json. `where` names the files in messages.
IMP_API QuantConfig parse_quant_config(const json::Value* quantization_config, const std::string& config_file,
                               const json::Value* hf_quant_config, const std::string& hf_file);

}  // namespace imp
