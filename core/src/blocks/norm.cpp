// Zero-centred RMSNorm weights folded at build time (imp/blocks/norm.h): w + offset as a computed Vector weight.
#include "imp/blocks/norm.h"

#include <cstring>

#include "imp/dtype.h"
#include "imp/error.h"

namespace imp::blocks {

namespace {

std::string shape_text(const std::vector<int64_t>& s) {
    std::string r = "[";
    for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
    return r + "]";
}

}  // namespace

WeightSpec norm_weight(const ModelSource* src, const std::string& name, int64_t n, float offset,
                       const std::string& user) {
    WeightSpec s;
    s.name = name;
    s.shape = {n};
    s.use = WeightSpec::Use::Vector;
    if (offset == 0.f) return s;
    if (!src)
        throw Error(user + ": norm weight '" + name + "' has an offset (zero-centred norm) but no model source was "
                    "given to read it from");
    const TensorInfo* t = src->find(name);
    if (!t) throw Error(src->path() + ": tensor '" + name + "' needed by " + user + " is missing");
    if (t->shape != s.shape)
        throw Error(src->path() + ": tensor '" + name + "' has shape " + shape_text(t->shape) + ", expected " +
                    shape_text(s.shape) + " (" + user + ")");
    const uint64_t es = t->type == "F32" ? 4 : (t->type == "F16" || t->type == "BF16") ? 2 : 0;
    if (es == 0)
        throw Error(src->path() + ": tensor '" + name + "' has type " + t->type +
                    "; norm weights must be F32, F16 or BF16 (" + user + ")");
    if (t->nbytes != uint64_t(n) * es)
        throw Error(src->path() + ": tensor '" + name + "' holds " + std::to_string(t->nbytes) + " bytes, expected " +
                    std::to_string(uint64_t(n) * es) + " for " + t->type + shape_text(s.shape));
    s.values.resize(size_t(n));
    for (int64_t i = 0; i < n; ++i) {
        float w;
        if (es == 4) {
            std::memcpy(&w, t->data + 4 * i, 4);
        } else {
            uint16_t h;
            std::memcpy(&h, t->data + 2 * i, 2);
            w = t->type == "BF16" ? bf16_to_f32(h) : fp16_to_f32(h);
        }
        s.values[size_t(i)] = w + offset;  // fp32, as HF's output * (1.0 + weight.float())
    }
    return s;
}

}  // namespace imp::blocks
