// NFC per UAX #15: decompose fully, put combining marks in canonical order, then compose starters with the marks
// that follow them (blocked marks skipped). Hangul syllables are decomposed and composed algorithmically.
#include "tokenizer/nfc.h"

#include <algorithm>
#include <vector>

#include "tokenizer/unicode.h"

namespace imp::unicode {

namespace {

using namespace nfc_data;

constexpr uint32_t SBase = 0xAC00, LBase = 0x1100, VBase = 0x1161, TBase = 0x11A7;
constexpr uint32_t LCount = 19, VCount = 21, TCount = 28, NCount = VCount * TCount, SCount = LCount * NCount;

uint8_t ccc(uint32_t cp) {
    const uint32_t* it = std::lower_bound(kCcc, kCcc + kCccCount, cp << 8);
    return it != kCcc + kCccCount && (*it >> 8) == cp ? uint8_t(*it & 0xFF) : 0;
}

void decompose(uint32_t cp, std::vector<uint32_t>& out) {
    if (cp >= SBase && cp < SBase + SCount) {
        const uint32_t s = cp - SBase;
        out.push_back(LBase + s / NCount);
        out.push_back(VBase + (s % NCount) / TCount);
        if (s % TCount) out.push_back(TBase + s % TCount);
        return;
    }
    size_t lo = 0, hi = kDecompCount;
    while (lo < hi) {
        const size_t mid = (lo + hi) / 2;
        if (kDecompIndex[2 * mid] < cp)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < kDecompCount && kDecompIndex[2 * lo] == cp) {
        const uint32_t v = kDecompIndex[2 * lo + 1];
        out.insert(out.end(), kDecompData + (v >> 3), kDecompData + (v >> 3) + (v & 7));
        return;
    }
    out.push_back(cp);
}

// The primary composite of (a, b), or 0.
uint32_t compose(uint32_t a, uint32_t b) {
    if (a >= LBase && a < LBase + LCount && b >= VBase && b < VBase + VCount)
        return SBase + ((a - LBase) * VCount + (b - VBase)) * TCount;
    if (a >= SBase && a < SBase + SCount && (a - SBase) % TCount == 0 && b > TBase && b < TBase + TCount)
        return a + (b - TBase);
    size_t lo = 0, hi = kCompCount;
    while (lo < hi) {
        const size_t mid = (lo + hi) / 2;
        const uint32_t f = kComp[3 * mid], s = kComp[3 * mid + 1];
        if (f < a || (f == a && s < b))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < kCompCount && kComp[3 * lo] == a && kComp[3 * lo + 1] == b ? kComp[3 * lo + 2] : 0;
}

}  // namespace

std::string nfc(std::string_view text) {
    bool simple = true;  // nothing below U+0300 decomposes to or composes with anything else below U+0300
    for (unsigned char c : text) simple = simple && c < 0xCC;
    if (simple) return std::string(text);

    // Runs of valid UTF-8 are normalized; a malformed byte ends a run and is copied as it is.
    std::string out;
    std::vector<uint32_t> cps;
    auto flush = [&] {
        for (size_t i = 0; i < cps.size();) {  // canonical ordering: stable sort of each run of non-starters
            if (ccc(cps[i]) == 0) {
                ++i;
                continue;
            }
            size_t j = i;
            while (j < cps.size() && ccc(cps[j]) != 0) ++j;
            std::stable_sort(cps.begin() + long(i), cps.begin() + long(j),
                             [](uint32_t a, uint32_t b) { return ccc(a) < ccc(b); });
            i = j;
        }
        // Composition.
        std::vector<uint32_t> res;
        long starter = -1;
        int last_ccc = -1;
        for (uint32_t cp : cps) {
            const int c = ccc(cp);
            if (starter >= 0) {
                const bool blocked = last_ccc != -1 && (last_ccc == 0 || last_ccc >= c);
                if (!blocked) {
                    if (uint32_t comp = compose(res[size_t(starter)], cp)) {
                        res[size_t(starter)] = comp;
                        continue;
                    }
                }
            }
            if (c == 0) {
                starter = long(res.size());
                last_ccc = -1;
            } else {
                last_ccc = c;
            }
            res.push_back(cp);
        }
        for (uint32_t cp : res) append_utf8(out, cp);
        cps.clear();
    };
    for (size_t i = 0; i < text.size();) {
        int len = 1;
        const uint32_t cp = decode_utf8(text, i, &len);
        if (cp == kReplacement && len == 1 && text.compare(i, 3, "\xEF\xBF\xBD") != 0) {
            flush();
            out += text[i];
        } else {
            decompose(cp, cps);
        }
        i += size_t(len);
    }
    flush();
    return out;
}

}  // namespace imp::unicode
