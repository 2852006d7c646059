// The text of `imp inspect FILE|FOLDER`: container, metadata (every key with type and value), tensor table, totals.
#pragma once
#include <string>

#include "imp/export.h"
#include "imp/model.h"

namespace imp {

IMP_API std::string inspect_model(const ModelSource& src);

}  // namespace imp
