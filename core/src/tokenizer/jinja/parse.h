// Jinja template text -> syntax tree (value.h). Errors: imp::Error("<name>:<line>: <what>").
#pragma once
#include <string>

#include "tokenizer/jinja/value.h"

namespace imp::jinja {

// The deepest nesting the parser takes: statement blocks inside each other, expressions inside each other (brackets,
// unary operators), and the height of an expression's tree (a chain like 1 + 1 + ... is as high as it is long).
// Past it the template is an error, not a deep recursion (the renderer stops at a nesting of 128 anyway).
constexpr int kMaxParseNest = 256;

NodeP parse(const std::string& source, const std::string& name);

}  // namespace imp::jinja
