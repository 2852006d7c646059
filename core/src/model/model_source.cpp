#include "imp/error.h"
#include "imp/model.h"

namespace imp {

void ModelSource::build_name_index() {
    name_index_.clear();
    const auto& ts = tensors();
    name_index_.reserve(ts.size());
    for (size_t i = 0; i < ts.size(); ++i) name_index_.emplace(ts[i].name, i);
}

const TensorInfo* ModelSource::find(const std::string& name) const {
    const auto& ts = tensors();
    if (!name_index_.empty()) {
        auto it = name_index_.find(name);
        if (it != name_index_.end() && it->second < ts.size() && ts[it->second].name == name) return &ts[it->second];
        if (it == name_index_.end() && name_index_.size() == ts.size()) return nullptr;
    }
    for (const auto& t : ts)
        if (t.name == name) return &t;
    return nullptr;
}

const TensorInfo& ModelSource::get(const std::string& name) const {
    if (auto t = find(name)) return *t;
    throw Error(path() + ": tensor '" + name + "' not found");
}

}  // namespace imp
