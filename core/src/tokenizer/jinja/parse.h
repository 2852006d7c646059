// Jinja template text -> syntax tree (value.h). Errors: imp::Error("<name>:<line>: <what>").
#pragma once
#include <string>

#include "tokenizer/jinja/value.h"

namespace imp::jinja {

NodeP parse(const std::string& source, const std::string& name);

}  // namespace imp::jinja
