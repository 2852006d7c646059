// quant_ggml tests: the WeightRequest the engine would build for a hand-made source (role Linear unless given;
// logical shape = the main tensor's, the parts' stacked rows, or [n_expert, rows, cols] of per-expert tensors).
#pragma once
#include <cstdint>

#include "imp/quant_format.h"

namespace imp::ggml::test {

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
    return r;
}

}  // namespace imp::ggml::test
