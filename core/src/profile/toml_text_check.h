// A check run on TOML text before toml++ parses it. toml++ 3.3 (the Debian package) asks whether a non-ASCII
// character is whitespace through a generated table that reaches __builtin_unreachable for most code points in
// U+00A1..U+0499, U+2C5E..U+3057 and U+FB26..U+FEFE, so `key = é` is undefined behaviour inside the parser instead
// of a parse error. It asks that question of characters outside strings and comments (where TOML 1.0 allows no
// non-ASCII character, so any there is reported); of the characters of a bare value (a number, boolean or date),
// which it reads up to a space, line break, ']', '}', ',' or '#' with quotes included (`a = 1"é"`), reported as
// outside strings too; and in a multi-line basic string, of the character after a backslash and, after a
// line-ending backslash, of each character it skips as whitespace and the first it does not (reported when the table
// is undefined for it). Upstream: marzer/tomlplusplus issues 190 and 295, fixed by pull request 305 (2026-07), after
// the packaged 3.3.0.
#pragma once
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "imp/export.h"

namespace imp {

struct IMP_API TomlTextIssue {
    size_t line = 0;    // 1-based
    size_t column = 0;  // 1-based, in code points (as toml++ counts)
    char32_t code_point = 0;
    std::string message;  // "non-ASCII character U+00E9 outside a string or comment ..."
};

// The first such place in `text`; nullopt when there is none. Malformed UTF-8 is left to toml++'s own error.
IMP_API std::optional<TomlTextIssue> find_toml_unsafe_char(std::string_view text);

// Whether toml++ 3.3's whitespace table is undefined for this code point.
IMP_API bool toml_whitespace_table_undefined(char32_t c);

}  // namespace imp
