// A compiled Unicode regular expression (PCRE2 in UTF + UCP mode) for the Split pre-tokenizers and Replace
// normalizers of tokenizer.json files, whose patterns are written for Oniguruma (\p{L}, (?i:...), (?!\S), ...), and
// for the "re:" module patterns of quantization configs (Python's re.match: anchored at the start). PCRE2 bounds a
// match's work (its match and heap limits) and refuses quantifier counts past 65535, so a pattern from a file can
// neither hang a match nor overflow while it is compiled.
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace imp {

class Regex {
public:
    // Throws imp::Error("<source>: regex /<pattern>/: <PCRE2 message> at offset N") (the pattern shortened and its
    // control characters escaped). `anchored`: every match must start where the search starts (Python's re.match).
    Regex(const std::string& pattern, const std::string& source, bool anchored = false);
    ~Regex();
    Regex(const Regex&) = delete;
    Regex& operator=(const Regex&) = delete;

    // Appends the [begin, end) byte ranges of all non-overlapping, non-empty matches in `text` (valid UTF-8).
    void find_all(std::string_view text, std::vector<std::pair<size_t, size_t>>& out) const;

    // Whether the pattern matches somewhere in `text` (at its start when anchored). `text` need not be valid UTF-8:
    // text that is not is an imp::Error, not undefined behaviour.
    bool search(std::string_view text) const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace imp
