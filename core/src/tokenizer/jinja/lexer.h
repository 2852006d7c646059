// Jinja lexing: a template's text split into text / {{ }} / {% %} chunks with the whitespace control transformers
// configures (trim_blocks, lstrip_blocks, plus {%- -%} markers; {% raw %} kept literal), and a tag's inside split into
// tokens. Errors: imp::Error("<name>:<line>: <what>").
#pragma once
#include <string>
#include <vector>

namespace imp::jinja {

struct Tok {
    enum Kind { Name, Str, Int, Float, Op, End } kind;
    std::string s;
    int line;
};

// One tag or text chunk of the template.
struct Chunk {
    enum Kind { Text, Var, Block } kind;
    std::string body;
    int line;
};

std::vector<Chunk> split_template(const std::string& src, const std::string& name);
std::vector<Tok> lex_tag(const std::string& body, int line, const std::string& name);
std::string first_word(const std::string& s);  // the leading name of a tag ("if", "endfor", ...)

}  // namespace imp::jinja
