// quant_ggml tests: the WeightRequest the engine would build for a hand-made source (role Linear unless given;
// logical shape = the main tensor's, the parts' stacked rows, or [n_expert, rows, cols] of per-expert tensors).
#pragma once
#include <cstdint>
#include <cstdlib>
#include <string>

#include "ggml_settings.h"
#include "imp/quant_format.h"
#include "kernels.h"

namespace imp::ggml::test {

// The CPU kernel set under test: IMP_TEST_GGML_KERNELS (ctest runs the matmul suite a second time with "generic"),
// else the fastest. The test harness reads it; the plugin reads only its settings.
inline const char* test_kernels_name() {
    const char* e = std::getenv("IMP_TEST_GGML_KERNELS");
    return e && *e ? e : "auto";
}
inline const Kernels& test_kernels() { return kernels_named(test_kernels_name()); }
// quant_ggml's settings as the engine would pass them, cpu_kernels = test_kernels_name().
inline const Settings& test_settings() {
    static const Settings s = [] {
        Registry reg;
        reg.set_current_plugin("quant_ggml");
        declare_ggml_settings(reg);
        reg.configure("quant_ggml", "cpu_kernels", std::string(test_kernels_name()));
        return reg.settings("quant_ggml");
    }();
    return s;
}

inline WeightRequest request_for(const WeightSource& s, WeightRole role = WeightRole::Linear) {
    WeightRequest r;
    r.role = role;
    r.source = s;
    if (!s.parts.empty()) {
        int64_t rows = 0;
        for (const auto& p : s.parts) rows += p.main ? p.main->shape[0] : 0;
        r.name = s.parts[0].main ? s.parts[0].main->name : "";
        r.shape = {rows, s.parts[0].main ? s.parts[0].main->shape.back() : 0};
    } else if (!s.experts.empty()) {
        const auto& e0 = *s.experts[0].main;
        r.name = e0.name;
        r.shape = {int64_t(s.experts.size()), e0.shape[0], e0.shape[1]};
    } else if (s.main) {
        r.name = s.main->name;
        r.shape = s.main->shape;
    }
    static const QuantConfig none;
    r.config = &none;
    r.settings = &test_settings();
    return r;
}

}  // namespace imp::ggml::test
