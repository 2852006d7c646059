#include "tokenizer/pretokenize.h"

#include "imp/error.h"
#include "tokenizer/unicode.h"

namespace imp::pretok {

namespace {

using namespace imp::unicode;

struct Cp {
    uint32_t cp;
    uint8_t f;
};

bool is_letter(const Cp& c) { return c.f & kLetter; }
bool is_letter_or_mark(const Cp& c) { return c.f & (kLetter | kMark); }
bool is_number(const Cp& c) { return c.f & kNumber; }
bool is_space(const Cp& c) { return c.f & kWhitespace; }
bool is_other(const Cp& c) { return !(c.f & (kLetter | kNumber | kWhitespace)); }           // [^\s\p{L}\p{N}]
bool is_other_nm(const Cp& c) { return !(c.f & (kLetter | kNumber | kMark | kWhitespace)); }  // ... and not \p{M}
bool is_newline(const Cp& c) { return c.cp == '\r' || c.cp == '\n'; }

template <class Pred>
size_t run(const Cp* c, size_t i, size_t n, Pred pred) {
    while (i < n && pred(c[i])) ++i;
    return i;
}

// \s+(?!\S)|\s+ at a whitespace code point: the run, less its last code point when a non-space follows it.
size_t space_run(const Cp* c, size_t i, size_t n) {
    size_t j = run(c, i, n, is_space);
    if (j < n && j - i >= 2) --j;
    return j - i;
}

uint32_t lower_ascii(uint32_t cp) { return cp >= 'A' && cp <= 'Z' ? cp + 32 : cp; }

// 's|'t|'re|'ve|'m|'ll|'d (ASCII letters; case-insensitive for the Llama-3 family). Returns the length or 0.
size_t contraction(const Cp* c, size_t i, size_t n, bool fold) {
    if (c[i].cp != '\'' || i + 1 >= n) return 0;
    auto at = [&](size_t k) { return fold ? lower_ascii(c[k].cp) : c[k].cp; };
    const uint32_t a = at(i + 1);
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
    if (i + 2 >= n) return 0;
    const uint32_t b = at(i + 2);
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
    return 0;
}

// GPT-2: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
size_t match_gpt2(const Cp* c, size_t i, size_t n) {
    if (size_t k = contraction(c, i, n, false)) return k;
    const size_t s = (c[i].cp == ' ' && i + 1 < n) ? i + 1 : i;  // after the optional space
    if (is_letter(c[s])) return run(c, s, n, is_letter) - i;
    if (is_number(c[s])) return run(c, s, n, is_number) - i;
    if (is_other(c[s])) return run(c, s, n, is_other) - i;
    if (is_space(c[i])) return space_run(c, i, n);
    return 1;
}

// Llama-3 / Qwen2 / Qwen3.5:
// (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,D}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
// with D = 3 (Llama-3) or 1 (Qwen); Qwen3.5 uses [\p{L}\p{M}]+ for letters and also excludes \p{M} from the third
// class.
template <size_t MaxDigits, bool Marks>
size_t match_llama3(const Cp* c, size_t i, size_t n) {
    if (size_t k = contraction(c, i, n, true)) return k;
    auto letter = Marks ? is_letter_or_mark : is_letter;
    auto other = Marks ? is_other_nm : is_other;
    const Cp& x = c[i];
    if (letter(x)) return run(c, i, n, letter) - i;
    if (!is_newline(x) && !(x.f & (kLetter | kNumber)) && i + 1 < n && letter(c[i + 1]))
        return run(c, i + 1, n, letter) - i;
    if (is_number(x)) {
        size_t j = i + 1;
        while (j < n && j - i < MaxDigits && is_number(c[j])) ++j;
        return j - i;
    }
    size_t s = n;
    if (x.cp == ' ' && i + 1 < n && other(c[i + 1])) s = i + 1;
    else if (other(x)) s = i;
    if (s < n) return run(c, run(c, s, n, other), n, is_newline) - i;
    if (is_space(x)) {
        const size_t j = run(c, i, n, is_space);
        for (size_t k = j; k > i; --k)
            if (is_newline(c[k - 1])) return k - i;  // \s*[\r\n]+ ends at the run's last newline
        return space_run(c, i, n);
    }
    return 1;
}

size_t match_number(const Cp* c, size_t i, size_t) { return is_number(c[i]) ? 1 : 0; }

size_t match_number_run(const Cp* c, size_t i, size_t n) { return run(c, i, n, is_number) - i; }

bool is_default_punct(const Cp& c) {
    if (c.f & kPunct) return true;
    switch (c.cp) {
        case '$': case '+': case '<': case '=': case '>': case '^': case '~': case '|': return true;
        default: return false;
    }
}

size_t match_default_punct(const Cp* c, size_t i, size_t n) { return run(c, i, n, is_default_punct) - i; }

size_t match_three_digits(const Cp* c, size_t i, size_t n) {
    if (i + 3 > n) return 0;
    for (size_t k = i; k < i + 3; ++k)
        if (c[k].cp < '0' || c[k].cp > '9') return 0;
    return 3;
}

using Matcher = size_t (*)(const Cp*, size_t, size_t);
struct Span {
    uint32_t begin, end;
};

// Splits every span by the matcher: each match is a span, and so is each gap between matches.
void split_pass(const std::vector<Cp>& cps, const std::vector<Span>& in, Matcher m, std::vector<Span>& out) {
    out.clear();
    for (const Span& sp : in) {
        const Cp* c = cps.data() + sp.begin;
        const size_t n = sp.end - sp.begin;
        size_t gap = 0, i = 0;
        while (i < n) {
            const size_t len = m(c, i, n);
            if (len == 0) {
                ++i;
                continue;
            }
            if (gap < i) out.push_back({uint32_t(sp.begin + gap), uint32_t(sp.begin + i)});
            out.push_back({uint32_t(sp.begin + i), uint32_t(sp.begin + i + len)});
            i += len;
            gap = i;
        }
        if (gap < n) out.push_back({uint32_t(sp.begin + gap), sp.end});
    }
}

struct NameEntry {
    const char* name;
    Kind kind;
};

const NameEntry kNames[] = {
    {"default", Kind::Default},   {"llama3", Kind::Llama3},      {"llama-v3", Kind::Llama3},
    {"llama-bpe", Kind::Llama3},  {"falcon3", Kind::Llama3},     {"falcon-h1", Kind::Llama3},
    {"pixtral", Kind::Llama3},    {"midm-2.0", Kind::Llama3},    {"lfm2", Kind::Llama3},
    {"qwen2", Kind::Qwen2},       {"deepseek-r1-qwen", Kind::Qwen2}, {"kormo", Kind::Qwen2},
    {"f2llmv2", Kind::Qwen2},     {"megrez", Kind::Qwen2},       {"qwen35", Kind::Qwen35},
    {"smollm", Kind::Smollm},     {"starcoder", Kind::Smollm},   {"refact", Kind::Smollm},
    {"command-r", Kind::Smollm},  {"codeshell", Kind::Smollm},   {"exaone", Kind::Smollm},
    {"minerva-7b", Kind::Smollm}, {"gpt-2", Kind::Gpt2},         {"phi-2", Kind::Gpt2},
    {"mpt", Kind::Gpt2},          {"olmo", Kind::Gpt2},          {"jais", Kind::Gpt2},
    {"exaone4", Kind::Gpt2},      {"jina-es", Kind::Gpt2},       {"jina-de", Kind::Gpt2},
    {"jina-v2-es", Kind::Gpt2},   {"jina-v2-de", Kind::Gpt2},    {"gigachat", Kind::Gpt2},
    {"a.x-4.0", Kind::Gpt2},      {"mellum", Kind::Gpt2},        {"modern-bert", Kind::Gpt2},
};

}  // namespace

Info lookup(const std::string& name, const std::string& source) {
    if (name.empty()) return {};
    for (const auto& e : kNames) {
        if (name != e.name) continue;
        const bool llama3 = e.kind == Kind::Llama3;
        return {e.kind, llama3, llama3};
    }
    throw Error(source + ": unknown pre-tokenizer '" + name + "' (tokenizer.ggml.pre)");
}

const char* kind_name(Kind kind) {
    switch (kind) {
        case Kind::Default: return "default";
        case Kind::Llama3: return "llama3";
        case Kind::Qwen2: return "qwen2";
        case Kind::Qwen35: return "qwen35";
        case Kind::Smollm: return "smollm";
        case Kind::Gpt2: return "gpt-2";
    }
    return "?";
}

void split(Kind kind, std::string_view text, std::vector<Piece>& out) {
    if (text.empty()) return;
    std::vector<Cp> cps;
    std::vector<uint32_t> offs;  // byte offset of each code point, plus the end
    cps.reserve(text.size());
    offs.reserve(text.size() + 1);
    for (size_t i = 0; i < text.size();) {
        int len = 1;
        const uint32_t cp = decode_utf8(text, i, &len);
        cps.push_back({cp, flags(cp)});
        offs.push_back(uint32_t(i));
        i += size_t(len);
    }
    offs.push_back(uint32_t(text.size()));

    std::vector<Matcher> passes;
    switch (kind) {
        case Kind::Default:
            passes = {match_default_punct, match_gpt2, match_number_run, match_three_digits};
            break;
        case Kind::Llama3: passes = {match_llama3<3, false>}; break;
        case Kind::Qwen2: passes = {match_llama3<1, false>}; break;
        case Kind::Qwen35: passes = {match_llama3<1, true>}; break;
        case Kind::Smollm: passes = {match_number, match_gpt2}; break;
        case Kind::Gpt2: passes = {match_gpt2}; break;
    }
    std::vector<Span> cur{{0, uint32_t(cps.size())}}, next;
    for (Matcher m : passes) {
        split_pass(cps, cur, m, next);
        cur.swap(next);
    }
    out.reserve(out.size() + cur.size());
    for (const Span& s : cur) out.push_back({offs[s.begin], offs[s.end]});
}

}  // namespace imp::pretok
