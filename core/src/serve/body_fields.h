// Reading the fields of a JSON request body (request.cpp, tokenize_api.cpp): null counts as absent, as in the OpenAI
// API, and a wrong type or value is a RequestError (400) naming the field.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "serve/request.h"

namespace imp::serve::body {

using json = nlohmann::json;

[[noreturn]] void bad(const std::string& field, const std::string& msg);
const char* type_of(const json& v);  // "an object", "a string", ... for messages
// The body as a JSON object ("the body is not valid JSON: ..." or "... must be a JSON object").
json parse_object(std::string_view body);
const json* field(const json& o, const char* name);  // null when absent (or null)
double number(const json& o, const char* name, double def, double lo, bool lo_open, double hi);
int64_t integer(const json& o, const char* name, int64_t def, int64_t lo, int64_t hi);
// `parent`: the object o is the value of ("stream_options"), named with the field: 'stream_options.include_usage'.
bool boolean(const json& o, const char* name, bool def, const std::string& parent = "");

}  // namespace imp::serve::body
