// quant_fp8 / quant_nvfp4 tests: quantization configs made from JSON text, and the one error line a plan throws.
#pragma once
#include <string>

#include "imp/error.h"
#include "imp/executor.h"
#include "imp/quant_format.h"
#include "model/json.h"
#include "model/quant_config.h"

namespace imp::quant_test {

// A ModelOpt hf_quant_config.json whose "quantization" object is hf_quantization.
inline QuantConfig config(const std::string& hf_quantization) {
    const json::Value h = json::parse(R"({"producer": {"name": "modelopt"}, "quantization": )" + hf_quantization + "}",
                                      "hf_quant_config.json");
    return parse_quant_config(nullptr, "config.json", &h, "hf_quant_config.json");
}

// A config.json `quantization_config` (compressed-tensors, or ModelOpt's copy there): body is the whole config.json.
inline QuantConfig config_json(const std::string& body) {
    const json::Value q = json::parse(body, "config.json");
    return parse_quant_config(&q, "config.json", nullptr, "hf_quant_config.json");
}

// What f.plan(r, ex) throws ("" when it does not).
inline std::string error_of(const QuantFormat& f, const WeightRequest& r, const Executor& ex) {
    try {
        f.plan(r, ex);
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

}  // namespace imp::quant_test
