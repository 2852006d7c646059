// quant_fp8 / quant_nvfp4: the format steps both take alike (format_common.h).
#include "format_common.h"

#include "hf_quant_util.h"
#include "imp/error.h"

namespace imp::quant_hf {

std::vector<const WeightSource*> source_units(const WeightSource& src, std::string& refusal) {
    std::vector<const WeightSource*> units;
    for (const auto& p : src.parts) units.push_back(&p);
    for (const auto& e : src.experts) units.push_back(&e);
    if (units.empty()) units.push_back(&src);
    for (const WeightSource* u : units)
        if (u != &src && (!u->parts.empty() || !u->experts.empty())) {
            refusal = "nested row concatenations or expert lists are not supported";
            return {};
        }
    return units;
}

WeightPlan accepted_plan(const Executor& ex, const std::string& plugin, bool cuda_built, const std::string& type,
                         const std::vector<int64_t>& shape, std::vector<const TensorInfo*> consumed) {
    const bool cuda = ex.kind() == DeviceKind::CUDA;
    if (!cuda && ex.kind() != DeviceKind::CPU) return WeightPlan::refuse("executor " + ex.name() + " not supported");
    if (cuda && !cuda_built) return WeightPlan::refuse("this build of " + plugin + " has no CUDA kernels");
    WeightPlan p;
    p.accepted = true;
    p.type = type;
    p.shape = shape;
    p.consumed = std::move(consumed);
    return p;
}

void require_matrix(const std::string& plugin, const std::string& name, const std::vector<int64_t>& shape) {
    if (shape.size() != 2)
        throw Error(plugin + ": '" + name + "' is " + shape_str(shape) + ", not a [rows, cols] matrix");
}

void require_experts(const std::string& plugin, const std::string& name, const std::vector<int64_t>& shape) {
    if (shape.size() != 3)
        throw Error(plugin + ": experts '" + name + "' is " + shape_str(shape) + ", not [n_expert, rows, cols]");
}

void check_dequantize(const std::string& plugin, const WeightSource& src, const std::string& refusal, int64_t row0,
                      int64_t nrows, int64_t total) {
    if (!refusal.empty()) throw Error(plugin + ": cannot read " + src.describe() + ": " + refusal);
    if (row0 < 0 || nrows < 0 || row0 > total - nrows)
        throw Error(plugin + ": dequantize " + src.describe() + ": rows [" + std::to_string(row0) + ", " +
                    std::to_string(row0 + nrows) + ") outside its " + std::to_string(total) + " rows");
}

void no_cuda(const std::string& plugin, const std::string& name, const std::string& type) {
    throw Error(plugin + ": '" + name + "' is " + type + " on a CUDA executor, but this build of " + plugin +
                " has no CUDA kernels");
}

}  // namespace imp::quant_hf
