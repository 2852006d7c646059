#include "imp/error.h"
#include "imp/model.h"

namespace imp {

const TensorInfo* ModelSource::find(const std::string& name) const {
    for (const auto& t : tensors())
        if (t.name == name) return &t;
    return nullptr;
}

const TensorInfo& ModelSource::get(const std::string& name) const {
    if (auto t = find(name)) return *t;
    throw Error(path() + ": tensor '" + name + "' not found");
}

}  // namespace imp
