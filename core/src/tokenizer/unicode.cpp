#include "tokenizer/unicode.h"

#include <algorithm>
#include <array>

namespace imp::unicode {

namespace {

struct Latin1Flags {
    std::array<uint8_t, 256> f{};
    Latin1Flags() {
        for (uint32_t cp = 0; cp < 256; ++cp) {
            const uint32_t* it = std::upper_bound(kRanges, kRanges + kRangeCount, (cp << 8) | 0xFF);
            f[cp] = uint8_t(it[-1] & 0xFF);
        }
    }
};

// Printable bytes keep their own code point; the other 68 byte values take U+0100.. in byte order.
bool byte_is_printable(uint32_t b) { return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE; }

struct ByteMap {
    std::array<uint32_t, 256> to_cp{};
    std::array<int16_t, 324> to_byte{};  // code points 0..323 cover every mapped value
    ByteMap() {
        to_byte.fill(-1);
        uint32_t next = 256;
        for (uint32_t b = 0; b < 256; ++b) {
            to_cp[b] = byte_is_printable(b) ? b : next++;
            to_byte[to_cp[b]] = int16_t(b);
        }
    }
};

const ByteMap& byte_map() {
    static const ByteMap m;
    return m;
}

}  // namespace

uint8_t flags(uint32_t cp) {
    static const Latin1Flags latin1;
    if (cp < 256) return latin1.f[cp];
    if (cp > 0x10FFFF) return 0;
    const uint32_t* it = std::upper_bound(kRanges, kRanges + kRangeCount, (cp << 8) | 0xFF);
    return uint8_t(it[-1] & 0xFF);
}

uint32_t decode_utf8(std::string_view s, size_t i, int* len) {
    const auto* p = reinterpret_cast<const unsigned char*>(s.data()) + i;
    const size_t avail = s.size() - i;
    const unsigned c = p[0];
    *len = 1;
    if (c < 0x80) return c;
    int n;
    uint32_t cp, min;
    if ((c & 0xE0) == 0xC0) {
        n = 2, cp = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        n = 3, cp = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
        n = 4, cp = c & 0x07, min = 0x10000;
    } else {
        return kReplacement;
    }
    if (avail < size_t(n)) return kReplacement;
    for (int k = 1; k < n; ++k) {
        if ((p[k] & 0xC0) != 0x80) return kReplacement;
        cp = (cp << 6) | (p[k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return kReplacement;
    *len = n;
    return cp;
}

void append_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
        out += char(cp);
    } else if (cp < 0x800) {
        out += char(0xC0 | (cp >> 6));
        out += char(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += char(0xE0 | (cp >> 12));
        out += char(0x80 | ((cp >> 6) & 0x3F));
        out += char(0x80 | (cp & 0x3F));
    } else {
        out += char(0xF0 | (cp >> 18));
        out += char(0x80 | ((cp >> 12) & 0x3F));
        out += char(0x80 | ((cp >> 6) & 0x3F));
        out += char(0x80 | (cp & 0x3F));
    }
}

std::string valid_utf8(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size();) {
        int len = 1;
        const uint32_t cp = decode_utf8(s, i, &len);
        if (cp != kReplacement || len != 1) {
            out.append(s.substr(i, size_t(len)));
            i += size_t(len);
            continue;
        }
        // Bad at i: skip the continuation bytes that a valid sequence with this lead byte could have had.
        const unsigned c = static_cast<unsigned char>(s[i]);
        const int need = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 1;
        unsigned lo = 0x80, hi = 0xBF;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
        size_t k = 1;
        while (int(k) < need && i + k < s.size()) {
            const unsigned b = static_cast<unsigned char>(s[i + k]);
            if (b < lo || b > hi) break;
            lo = 0x80, hi = 0xBF;
            ++k;
        }
        append_utf8(out, kReplacement);
        i += k;
    }
    return out;
}

size_t complete_utf8_prefix(std::string_view s) {
    // Look back over at most three trailing continuation bytes for a lead byte whose sequence is still open.
    const size_t n = s.size();
    for (size_t back = 1; back <= 4 && back <= n; ++back) {
        const unsigned c = static_cast<unsigned char>(s[n - back]);
        if ((c & 0xC0) == 0x80) continue;  // continuation: keep looking for the lead
        int need = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 1;
        if (need > int(back)) {
            // Hold back only if what is there could still become a valid sequence.
            // Complete it with continuation bytes; one of these fills suits every lead byte's allowed range.
            for (unsigned fill : {0x80u, 0x90u, 0xA0u, 0xBFu}) {
                std::string probe(s.substr(n - back));
                probe.append(size_t(need) - back, char(fill));
                int len = 0;
                decode_utf8(probe, 0, &len);
                if (len == need) return n - back;
            }
        }
        return n;
    }
    return n;
}

uint32_t byte_to_cp(uint8_t b) { return byte_map().to_cp[b]; }

int cp_to_byte(uint32_t cp) { return cp < 324 ? byte_map().to_byte[cp] : -1; }

}  // namespace imp::unicode
