// See body_fields.h.
#include "serve/body_fields.h"

#include <cmath>
#include <limits>

namespace imp::serve::body {

void bad(const std::string& field, const std::string& msg) { throw RequestError(400, field, msg); }

const char* type_of(const json& v) {
    switch (v.type()) {
        case json::value_t::object: return "an object";
        case json::value_t::array: return "an array";
        case json::value_t::string: return "a string";
        case json::value_t::boolean: return "a boolean";
        case json::value_t::number_float: return "a number";
        case json::value_t::number_integer:
        case json::value_t::number_unsigned: return "an integer";
        default: return "null";
    }
}

// The field, or null when absent.
const json* field(const json& o, const char* name) {
    auto it = o.find(name);
    return it == o.end() || it->is_null() ? nullptr : &*it;
}

double number(const json& o, const char* name, double def, double lo, bool lo_open, double hi) {
    const json* v = field(o, name);
    if (!v) return def;
    if (!v->is_number()) bad(name, std::string("'") + name + "' must be a number, got " + type_of(*v));
    const double x = v->get<double>();
    if (!std::isfinite(x) || x < lo || (lo_open && x == lo) || x > hi)
        bad(name, std::string("'") + name + "' is " + v->dump() + ", must be in " + (lo_open ? "(" : "[") +
                      json(lo).dump() + ", " + json(hi).dump() + "]");
    return x;
}

int64_t integer(const json& o, const char* name, int64_t def, int64_t lo, int64_t hi) {
    const json* v = field(o, name);
    if (!v) return def;
    const auto out_of_range = [&] {
        bad(name, std::string("'") + name + "' is " + v->dump() + ", must be in [" + std::to_string(lo) + ", " +
                      std::to_string(hi) + "]");
    };
    if (v->is_number_float()) {
        // An integer past 64 bits is read as a double (18446744073709551616 -> 1.8446744073709552e+19): too large,
        // not "not an integer".
        const double x = v->get<double>();
        if (std::isfinite(x) && x == std::trunc(x) && std::fabs(x) >= 0x1p63) out_of_range();
        bad(name, std::string("'") + name + "' must be an integer, got " + v->dump());
    }
    if (!v->is_number_integer()) bad(name, std::string("'") + name + "' must be an integer, got " + type_of(*v));
    if (v->is_number_unsigned() && v->get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max())) out_of_range();
    const int64_t x = v->get<int64_t>();
    if (x < lo || x > hi) out_of_range();
    return x;
}

bool boolean(const json& o, const char* name, bool def, const std::string& parent) {
    const json* v = field(o, name);
    if (!v) return def;
    const std::string path = parent.empty() ? name : parent + "." + name;
    if (!v->is_boolean()) bad(path, "'" + path + "' must be a boolean, got " + type_of(*v));
    return v->get<bool>();
}

json parse_object(std::string_view body) {
    json o;
    try {
        o = json::parse(body);
    } catch (const json::exception& e) {  // a syntax error, or a number beyond a double (out_of_range)
        bad("", std::string("the body is not valid JSON: ") + e.what());
    }
    if (!o.is_object()) bad("", std::string("the body must be a JSON object, got ") + type_of(o));
    return o;
}

}  // namespace imp::serve::body
