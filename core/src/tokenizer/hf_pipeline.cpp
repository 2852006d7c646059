// tokenizer.json normalizers (Sequence, Prepend, Replace, Strip, NFC) and pre-tokenizers (Sequence, Split, ByteLevel,
// Digits, Metaspace, Punctuation, WhitespaceSplit), following the semantics of HF `tokenizers` 0.2x.
#include "tokenizer/hf_pipeline.h"

#include <algorithm>
#include <cctype>

#include "imp/error.h"
#include "tokenizer/nfc.h"
#include "tokenizer/unicode.h"

namespace imp::hf {

namespace {

// GPT-2's pre-tokenizer regex, which ByteLevel(use_regex = true) applies.
const char* const kGpt2Regex = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

enum class Type { Prepend, Replace, Strip, Nfc, Split, Digits, Metaspace, ByteLevel, Punctuation, WhitespaceSplit };
enum class Scheme { Always, First, Never };

struct Range {
    size_t b, e;
    bool match;
};

}  // namespace

struct Step {
    Type type;
    std::string text;           // Prepend: prefix; Replace: content; Metaspace: replacement
    std::string lit;            // Split / Replace with a String pattern
    std::unique_ptr<Regex> re;  // Split / Replace with a Regex pattern
    Behavior behavior = Behavior::Isolated;
    bool invert = false;
    bool flag = false;                 // Digits: individual_digits; ByteLevel: add_prefix_space; Metaspace: split
    bool left = false, right = false;  // Strip
    bool use_regex = true;             // ByteLevel
    Scheme scheme = Scheme::Always;    // Metaspace
};

namespace {

[[noreturn]] void bad(const std::string& src, const std::string& what) { throw Error(src + ": " + what); }

const json::Value& member(const json::Value& v, const char* key, const std::string& where) {
    const json::Value* m = v.get(key);
    if (!m) bad(where, std::string("missing key '") + key + "'");
    return *m;
}
std::string str(const json::Value& v, const char* key, const std::string& where) {
    const json::Value& m = member(v, key, where);
    if (!m.is_string()) bad(where, std::string("'") + key + "' is not a string");
    return m.s;
}
bool boolean(const json::Value& v, const char* key, bool dflt) {
    const json::Value* m = v.get(key);
    return m && m->kind == json::Value::Kind::Bool ? m->b : dflt;
}

// {"String": "x"} or {"Regex": "..."}
void pattern(Step& s, const json::Value& v, const std::string& where) {
    const json::Value& p = member(v, "pattern", where);
    if (const json::Value* lit = p.get("String"); lit && lit->is_string())
        s.lit = lit->s;
    else if (const json::Value* re = p.get("Regex"); re && re->is_string())
        s.re = std::make_unique<Regex>(re->s, where);
    else
        bad(where, "pattern must be {\"String\": ...} or {\"Regex\": ...}");
}

Behavior behavior(const std::string& name, const std::string& where) {
    if (name == "Removed") return Behavior::Removed;
    if (name == "Isolated") return Behavior::Isolated;
    if (name == "MergedWithPrevious") return Behavior::MergedWithPrevious;
    if (name == "MergedWithNext") return Behavior::MergedWithNext;
    if (name == "Contiguous") return Behavior::Contiguous;
    bad(where, "unknown split behavior '" + name + "'");
}

void read_steps(const json::Value* v, bool pre, const std::string& src, std::vector<std::unique_ptr<Step>>& out,
                bool& byte_level) {
    if (!v || v->kind == json::Value::Kind::Null) return;
    const std::string section = pre ? "pre_tokenizer" : "normalizer";
    const std::string where = src + ": " + section;
    const std::string type = str(*v, "type", where);
    const std::string at = where + " " + type;
    if (type == "Sequence") {
        const json::Value& list = member(*v, pre ? "pretokenizers" : "normalizers", at);
        if (!list.is_array()) bad(at, "the step list is not an array");
        for (const json::Value& e : list.items) read_steps(&e, pre, src, out, byte_level);
        return;
    }
    auto s = std::make_unique<Step>();
    if (!pre && type == "Prepend") {
        s->type = Type::Prepend, s->text = str(*v, "prepend", at);
    } else if (!pre && type == "Replace") {
        s->type = Type::Replace, s->text = str(*v, "content", at);
        pattern(*s, *v, at);
    } else if (!pre && type == "Strip") {
        s->type = Type::Strip, s->left = boolean(*v, "strip_left", true), s->right = boolean(*v, "strip_right", true);
    } else if (!pre && type == "NFC") {
        s->type = Type::Nfc;
    } else if (pre && type == "Split") {
        s->type = Type::Split;
        pattern(*s, *v, at);
        s->behavior = behavior(str(*v, "behavior", at), at);
        s->invert = boolean(*v, "invert", false);
    } else if (pre && type == "ByteLevel") {
        s->type = Type::ByteLevel, s->flag = boolean(*v, "add_prefix_space", true);
        s->use_regex = boolean(*v, "use_regex", true);
        if (s->use_regex) s->re = std::make_unique<Regex>(kGpt2Regex, at);
        byte_level = true;
    } else if (pre && type == "Digits") {
        s->type = Type::Digits, s->flag = boolean(*v, "individual_digits", false);
    } else if (pre && type == "Metaspace") {
        s->type = Type::Metaspace, s->text = str(*v, "replacement", at), s->flag = boolean(*v, "split", true);
        if (const json::Value* ps = v->get("prepend_scheme"); ps && ps->is_string()) {
            if (ps->s == "always")
                s->scheme = Scheme::Always;
            else if (ps->s == "first")
                s->scheme = Scheme::First;
            else if (ps->s == "never")
                s->scheme = Scheme::Never;
            else
                bad(at, "unknown prepend_scheme '" + ps->s + "'");
        } else {
            s->scheme = boolean(*v, "add_prefix_space", true) ? Scheme::Always : Scheme::Never;
        }
    } else if (pre && type == "Punctuation") {
        s->type = Type::Punctuation;
        s->behavior = v->get("behavior") ? behavior(str(*v, "behavior", at), at) : Behavior::Isolated;
    } else if (pre && type == "WhitespaceSplit") {
        s->type = Type::WhitespaceSplit;
    } else {
        bad(where, "type '" + type + "' is not supported");
    }
    out.push_back(std::move(s));
}

void replace_all(std::string& s, const std::string& from, const std::string& to) {
    if (from.empty()) return;
    std::string out;
    size_t p = 0;
    for (size_t q; (q = s.find(from, p)) != std::string::npos; p = q + from.size()) out.append(s, p, q - p) += to;
    out.append(s, p);
    s.swap(out);
}

bool starts_with(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }

// Every character of `s` is a match or not by `pred`; each matching character is its own range, the others run
// together (tokenizers' `impl Pattern for Fn(char) -> bool`).
template <class Pred>
void char_ranges(const std::string& s, Pred pred, std::vector<Range>& out) {
    size_t last = 0;
    for (size_t i = 0; i < s.size();) {
        int len = 1;
        const uint32_t cp = unicode::decode_utf8(s, i, &len);
        if (pred(cp)) {
            if (last < i) out.push_back({last, i, false});
            out.push_back({i, i + size_t(len), true});
            last = i + size_t(len);
        }
        i += size_t(len);
    }
    if (last < s.size()) out.push_back({last, s.size(), false});
}

void regex_ranges(const std::string& s, const Step& st, std::vector<Range>& out) {
    std::vector<std::pair<size_t, size_t>> m;
    if (st.re) {
        st.re->find_all(s, m);
    } else if (!st.lit.empty()) {
        for (size_t p = s.find(st.lit); p != std::string::npos; p = s.find(st.lit, p + st.lit.size()))
            m.emplace_back(p, p + st.lit.size());
    }
    size_t last = 0;
    for (auto [b, e] : m) {
        if (last < b) out.push_back({last, b, false});
        out.push_back({b, e, true});
        last = e;
    }
    if (last < s.size()) out.push_back({last, s.size(), false});
}

// tokenizers' NormalizedString::split: turns match ranges into pieces by the behavior.
void split_by(const std::string& s, std::vector<Range> r, Behavior how, bool invert, std::vector<std::string>& out) {
    if (invert)
        for (Range& x : r) x.match = !x.match;
    std::vector<std::pair<size_t, size_t>> acc;
    bool prev = false;
    switch (how) {
        case Behavior::Isolated:
            for (const Range& x : r) acc.emplace_back(x.b, x.e);
            break;
        case Behavior::Removed:
            for (const Range& x : r)
                if (!x.match) acc.emplace_back(x.b, x.e);
            break;
        case Behavior::MergedWithPrevious:
            for (const Range& x : r) {
                if (x.match && !prev && !acc.empty())
                    acc.back().second = x.e;
                else
                    acc.emplace_back(x.b, x.e);
                prev = x.match;
            }
            break;
        case Behavior::MergedWithNext:
            for (size_t k = r.size(); k-- > 0;) {
                const Range& x = r[k];
                if (x.match && !prev && !acc.empty())
                    acc.back().first = x.b;
                else
                    acc.emplace_back(x.b, x.e);
                prev = x.match;
            }
            std::reverse(acc.begin(), acc.end());
            break;
        case Behavior::Contiguous:
            for (size_t k = 0; k < r.size(); ++k) {
                if (k > 0 && r[k].match == prev)
                    acc.back().second = r[k].e;
                else
                    acc.emplace_back(r[k].b, r[k].e);
                prev = r[k].match;
            }
            break;
    }
    for (auto [b, e] : acc)
        if (e > b) out.emplace_back(s, b, e - b);
}

bool is_punct(uint32_t cp) { return (cp < 128 && std::ispunct(int(cp))) || (unicode::flags(cp) & unicode::kPunct); }

}  // namespace

Pipeline::Pipeline(const json::Value* normalizer, const json::Value* pre_tokenizer, const std::string& source) {
    bool unused = false;
    read_steps(normalizer, false, source, norm_, unused);
    read_steps(pre_tokenizer, true, source, pre_, byte_level_);
}

Pipeline::~Pipeline() = default;

std::string Pipeline::normalize(std::string_view text) const {
    std::string s(text);
    for (const auto& st : norm_) {
        switch (st->type) {
            case Type::Prepend:
                if (!s.empty()) s = st->text + s;
                break;
            case Type::Replace: {
                std::vector<Range> r;
                regex_ranges(s, *st, r);
                std::string o;
                for (const Range& x : r) o += x.match ? st->text : s.substr(x.b, x.e - x.b);
                s.swap(o);
                break;
            }
            case Type::Strip: {
                auto ws = [&](size_t i, int* len) {
                    return unicode::flags(unicode::decode_utf8(s, i, len)) & unicode::kWhitespace;
                };
                size_t b = 0, e = s.size();
                int len = 1;
                while (st->left && b < e && ws(b, &len)) b += size_t(len);
                while (st->right && e > b) {
                    size_t k = e - 1;
                    while (k > b && (static_cast<unsigned char>(s[k]) & 0xC0) == 0x80) --k;
                    if (!ws(k, &len)) break;
                    e = k;
                }
                s = s.substr(b, e - b);
                break;
            }
            case Type::Nfc:
                s = unicode::nfc(s);
                break;
            default:
                break;
        }
    }
    return s;
}

void Pipeline::pre_tokenize(std::string text, bool at_start, std::vector<std::string>& pieces) const {
    std::vector<std::string> cur, next;
    if (!text.empty()) cur.push_back(std::move(text));
    std::vector<Range> r;
    for (const auto& st : pre_) {
        next.clear();
        for (size_t k = 0; k < cur.size(); ++k) {
            std::string& p = cur[k];
            r.clear();
            switch (st->type) {
                case Type::Split:
                    regex_ranges(p, *st, r);
                    split_by(p, r, st->behavior, st->invert, next);
                    break;
                case Type::ByteLevel:
                    if (st->flag && !starts_with(p, " ")) p.insert(0, " ");
                    if (st->use_regex) {
                        regex_ranges(p, *st, r);
                        split_by(p, r, Behavior::Isolated, false, next);
                    } else {
                        next.push_back(p);
                    }
                    break;
                case Type::Digits:
                    char_ranges(
                        p, [](uint32_t cp) { return (unicode::flags(cp) & unicode::kNumber) != 0; }, r);
                    split_by(p, r, st->flag ? Behavior::Isolated : Behavior::Contiguous, false, next);
                    break;
                case Type::Punctuation:
                    char_ranges(p, is_punct, r);
                    split_by(p, r, st->behavior, false, next);
                    break;
                case Type::WhitespaceSplit:
                    char_ranges(
                        p, [](uint32_t cp) { return (unicode::flags(cp) & unicode::kWhitespace) != 0; }, r);
                    split_by(p, r, Behavior::Removed, false, next);
                    break;
                case Type::Metaspace: {
                    replace_all(p, " ", st->text);
                    const bool first = at_start && k == 0;
                    if ((st->scheme == Scheme::Always || (st->scheme == Scheme::First && first)) &&
                        !starts_with(p, st->text))
                        p.insert(0, st->text);
                    if (st->flag) {
                        Step lit;
                        lit.lit = st->text;
                        regex_ranges(p, lit, r);
                        split_by(p, r, Behavior::MergedWithNext, false, next);
                    } else {
                        next.push_back(p);
                    }
                    break;
                }
                default:
                    next.push_back(p);
                    break;
            }
        }
        cur.swap(next);
    }
    for (auto& p : cur)
        if (!p.empty()) pieces.push_back(std::move(p));
}

}  // namespace imp::hf
