// The text of `imp inspect FILE|FOLDER`: container, metadata (every key with type and value), tensor table, totals.
#pragma once
#include <string>

#include "imp/model.h"

namespace imp {

std::string inspect_model(const ModelSource& src);

}  // namespace imp
