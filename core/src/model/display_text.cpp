#include "model/display_text.h"

#include <cstdio>

#include "imp/error.h"

namespace imp {

namespace {
// Length of the valid UTF-8 sequence at s[i] (1-4), or 0 when the bytes there are not one.
size_t utf8_len(std::string_view s, size_t i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    size_t n;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) n = 2;
    else if (c >= 0xE0 && c <= 0xEF) n = 3;
    else if (c >= 0xF0 && c <= 0xF4) n = 4;
    else return 0;
    if (i + n > s.size()) return 0;
    for (size_t k = 1; k < n; ++k)
        if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return 0;
    const unsigned char c1 = static_cast<unsigned char>(s[i + 1]);
    if ((c == 0xE0 && c1 < 0xA0) || (c == 0xED && c1 > 0x9F) || (c == 0xF0 && c1 < 0x90) || (c == 0xF4 && c1 > 0x8F))
        return 0;  // overlong, surrogate, above U+10FFFF
    return n;
}
}  // namespace

size_t utf8_valid_prefix(std::string_view s) {
    size_t i = 0;
    while (i < s.size()) {
        const size_t n = utf8_len(s, i);
        if (n == 0) break;
        i += n;
    }
    return i;
}

std::string checked_utf8(const std::string& what, std::string s) {
    const size_t ok = utf8_valid_prefix(s);
    if (ok < s.size()) {
        char b[8];
        std::snprintf(b, sizeof b, "0x%02x", static_cast<unsigned char>(s[ok]));
        throw Error(what + ": byte " + std::to_string(ok) + " (" + b + ") is not valid UTF-8; the text must be UTF-8");
    }
    return s;
}

std::string display_text(std::string_view s, size_t max_bytes) {
    std::string out;
    size_t i = 0;
    for (; i < s.size() && out.size() < max_bytes;) {
        const unsigned char c = static_cast<unsigned char>(s[i]);
        const size_t n = utf8_len(s, i);
        if (n > 1 && !(c == 0xC2 && static_cast<unsigned char>(s[i + 1]) < 0xA0)) {  // not a C1 control
            out.append(s.substr(i, n));
            i += n;
            continue;
        }
        if (c == '\n') out += "\\n";
        else if (c == '\t') out += "\\t";
        else if (c == '\r') out += "\\r";
        else if (c >= 0x20 && c < 0x7f) out += char(c);
        else {
            char b[8];
            std::snprintf(b, sizeof b, "\\x%02x", n == 2 ? static_cast<unsigned char>(s[i + 1]) : c);
            if (n == 2) out += "\\xc2";
            out += b;
            i += n ? n : 1;
            continue;
        }
        ++i;
    }
    if (i < s.size()) out += "... (" + std::to_string(s.size()) + " bytes)";
    return out;
}

}  // namespace imp
