// A compiled Unicode regular expression (PCRE2 in UTF + UCP mode) for the Split pre-tokenizers and Replace
// normalizers of tokenizer.json files, whose patterns are written for Oniguruma (\p{L}, (?i:...), (?!\S), ...).
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace imp {

class Regex {
public:
    // Throws imp::Error("<source>: regex /<pattern>/: <PCRE2 message> at offset N").
    Regex(const std::string& pattern, const std::string& source);
    ~Regex();
    Regex(const Regex&) = delete;
    Regex& operator=(const Regex&) = delete;

    // Appends the [begin, end) byte ranges of all non-overlapping, non-empty matches in `text` (valid UTF-8).
    void find_all(std::string_view text, std::vector<std::pair<size_t, size_t>>& out) const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace imp
