// Text from a file or the command line, made safe to echo in an error message or a table: control characters and
// bytes that are not UTF-8 written as escapes (\n, \t, \x1b ...), and anything longer than `max_bytes` shortened with
// a note of its full length, so a 4 MB key or a terminal escape sequence in metadata cannot flood or drive the
// terminal.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>

#include "imp/export.h"

namespace imp {

constexpr size_t kEchoMaxBytes = 200;

IMP_API std::string display_text(std::string_view s, size_t max_bytes = kEchoMaxBytes);

// The length of the longest prefix of `s` that is valid UTF-8 (s.size() when all of it is).
IMP_API size_t utf8_valid_prefix(std::string_view s);

// `s` itself when it is valid UTF-8; else throws imp::Error("<what>: byte N is not valid UTF-8 ...").
IMP_API std::string checked_utf8(const std::string& what, std::string s);

// The same, in single quotes: 'text'.
inline std::string quoted(std::string_view s, size_t max_bytes = kEchoMaxBytes) {
    return "'" + display_text(s, max_bytes) + "'";
}

}  // namespace imp
