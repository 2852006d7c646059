// A Jinja2 interpreter for chat templates: the subset that model chat templates use (for / if / set / macro /
// namespace / break / continue, expressions with filters, tests, slicing, string and dict methods, loop variables,
// raise_exception), configured as transformers renders chat templates (trim_blocks, lstrip_blocks, tojson as
// json.dumps with ensure_ascii=False). A construct outside the subset is an imp::Error naming it and the line.
#pragma once
#include <memory>
#include <string>

#include "imp/export.h"
#include "model/json.h"

namespace imp::jinja {

struct Node;

class IMP_API Template {
public:
    // Parses `source`; `name` is used in error messages ("<name>:<line>: ...").
    Template(const std::string& source, const std::string& name);
    ~Template();
    // Renders with the JSON object `context` as the global variables (messages, add_generation_prompt, ...).
    std::string render(const json::Value& context) const;

private:
    std::string name_;
    std::shared_ptr<Node> root_;
};

}  // namespace imp::jinja
