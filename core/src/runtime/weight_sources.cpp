#include "runtime/weight_sources.h"

#include "imp/error.h"
#include "runtime/load_plan.h"

namespace imp {

TensorIndex::TensorIndex(const ModelSource& src) {
    for (const auto& t : src.tensors()) by_name_[t.name] = &t;
}

const TensorInfo* TensorIndex::find(const std::string& name) const {
    auto it = by_name_.find(name);
    return it == by_name_.end() ? nullptr : it->second;
}

void TensorIndex::add_under(const std::string& base, const TensorInfo* main, WeightSource& out) const {
    for (auto it = by_name_.lower_bound(base); it != by_name_.end() && it->first.compare(0, base.size(), base) == 0;
         ++it) {
        if (it->second == main) continue;
        out.aux.emplace(it->first.substr(base.size()), it->second);  // "<name>.<s>" wins over "<name>_<s>"
    }
}

WeightSource TensorIndex::source(const std::string& name) const {
    WeightSource s;
    s.main = find(name);
    const std::string suffix = ".weight";
    if (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
        add_under(name.substr(0, name.size() - suffix.size() + 1), s.main, s);  // "X."
    } else {
        add_under(name + ".", s.main, s);
        add_under(name + "_", s.main, s);
    }
    return s;
}

bool source_empty(const WeightSource& s) {
    return !s.main && s.aux.empty() && s.parts.empty() && s.experts.empty();
}

std::vector<const TensorInfo*> source_tensors(const WeightSource& s) {
    std::vector<const TensorInfo*> out;
    if (s.main) out.push_back(s.main);
    for (const auto& [k, t] : s.aux) out.push_back(t);
    for (const auto& p : s.parts)
        for (const auto* t : source_tensors(p)) out.push_back(t);
    for (const auto& e : s.experts)
        for (const auto* t : source_tensors(e)) out.push_back(t);
    return out;
}

std::string source_summary(const WeightSource& s) {
    if (!s.parts.empty()) {
        std::string r;
        for (const auto& p : s.parts) r += (r.empty() ? "" : "; ") + source_summary(p);
        return r;
    }
    if (!s.experts.empty())
        return "per expert " + source_summary(s.experts.front()) + " (" + std::to_string(s.experts.size()) +
               " experts)";
    std::string r;
    if (s.main) r = "'" + s.main->name + "' " + s.main->type + " " + shape_str(s.main->shape);
    else r = "no tensor of that name";
    for (const auto& [k, t] : s.aux) r += " + " + k + " " + t->type + " " + shape_str(t->shape);
    return r;
}

std::string expert_tensor_name(const std::string& pattern, int64_t e) {
    const size_t at = pattern.find("{e}");
    if (at == std::string::npos)
        throw Error("expert_pattern '" + pattern + "' has no \"{e}\" for the expert index");
    std::string r = pattern;
    r.replace(at, 3, std::to_string(e));
    return r;
}

}  // namespace imp
