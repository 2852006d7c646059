// Regex over PCRE2 (8-bit, UTF, Unicode properties), JIT-compiled when the library supports it.
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/regex.h"

#include <pcre2.h>

#include "imp/error.h"
#include "model/display_text.h"

namespace imp {

struct Regex::Impl {
    pcre2_code* code = nullptr;
    std::string shown;  // "<source>: regex /<pattern>/" for errors
    ~Impl() {
        if (code) pcre2_code_free(code);
    }
    // A failed match (rc < 0, not NOMATCH: a limit, text that is not UTF-8) as an error naming the pattern and text.
    [[noreturn]] void match_failed(int rc, std::string_view text) const {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(rc, msg, sizeof msg);
        std::string what = shown;
        what += ": match on '";
        what += display_text(text);
        what += "' failed: ";
        what += reinterpret_cast<const char*>(msg);
        throw Error(what);
    }
};

Regex::Regex(const std::string& pattern, const std::string& source, bool anchored) : impl_(std::make_unique<Impl>()) {
    int err = 0;
    PCRE2_SIZE off = 0;
    const uint32_t options = PCRE2_UTF | PCRE2_UCP | (anchored ? PCRE2_ANCHORED : 0u);
    impl_->code =
        pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), options, &err, &off, nullptr);
    impl_->shown = source + ": regex /" + display_text(pattern) + "/";
    if (!impl_->code) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        throw Error(impl_->shown + ": " + reinterpret_cast<const char*>(msg) + " at offset " + std::to_string(off));
    }
    pcre2_jit_compile(impl_->code, PCRE2_JIT_COMPLETE);  // optional: interpretation is used when JIT is unavailable
}

Regex::~Regex() = default;

bool Regex::search(std::string_view text) const {
    pcre2_match_data* md = pcre2_match_data_create_from_pattern(impl_->code, nullptr);
    if (!md) throw Error("regex: out of memory");
    // No PCRE2_NO_UTF_CHECK: the library checks the text and reports invalid UTF-8 as an error.
    const int rc = pcre2_match(impl_->code, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), 0, 0, md, nullptr);
    pcre2_match_data_free(md);
    if (rc >= 0) return true;
    if (rc == PCRE2_ERROR_NOMATCH) return false;
    impl_->match_failed(rc, text);
}

void Regex::find_all(std::string_view text, std::vector<std::pair<size_t, size_t>>& out) const {
    pcre2_match_data* md = pcre2_match_data_create_from_pattern(impl_->code, nullptr);
    if (!md) throw Error("regex: out of memory");
    size_t pos = 0;
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
    while (pos <= text.size()) {
        const int rc = pcre2_match(impl_->code, subject, text.size(), pos, PCRE2_NO_UTF_CHECK, md, nullptr);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            pcre2_match_data_free(md);
            impl_->match_failed(rc, text);
        }
        const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
        size_t b = ov[0], e = ov[1];
        if (e > b) {
            out.emplace_back(b, e);
            pos = e;
        } else {  // empty match: step one code point
            pos = b + 1;
            while (pos < text.size() && (static_cast<unsigned char>(text[pos]) & 0xC0) == 0x80) ++pos;
        }
    }
    pcre2_match_data_free(md);
}

}  // namespace imp
