// synth-safetensors: the synthetic byte-level BPE tokenizer.json (see tokenizer_json.h).
#include "tokenizer_json.h"

#include <set>
#include <stdexcept>

namespace synth_st {
namespace {

// GPT-2 bytes_to_unicode: printable bytes map to themselves, the others to U+0100.. in order.
std::vector<std::string> byte_alphabet() {
    std::vector<std::string> out(256);
    int n = 0;
    for (int b = 0; b < 256; ++b) {
        const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
        const int cp = printable ? b : 256 + n++;
        std::string s;
        if (cp < 0x80) {
            s += char(cp);
        } else {
            s += char(0xC0 | (cp >> 6));
            s += char(0x80 | (cp & 0x3F));
        }
        out[size_t(b)] = s;
    }
    return out;
}

std::string escape(const std::string& s) {
    std::string r;
    for (unsigned char c : s) {
        if (c == '"' || c == '\\') {
            r += '\\';
            r += char(c);
        } else if (c < 0x20) {
            char b[8];
            std::snprintf(b, sizeof b, "\\u%04x", c);
            r += b;
        } else {
            r += char(c);
        }
    }
    return r;
}

}  // namespace

std::string tokenizer_json(int64_t vocab, const std::vector<std::pair<int64_t, std::string>>& special) {
    if (vocab < 256) throw std::runtime_error("tokenizer vocabulary below 256 byte tokens");
    const std::vector<std::string> bytes = byte_alphabet();
    std::vector<std::string> tokens(bytes.begin(), bytes.end());
    std::set<std::string> seen(tokens.begin(), tokens.end());
    std::vector<std::string> merges;
    const std::string letters = "etaoinshrdlucmfwypvbgkjqxz";
    const std::string space = bytes[' '];  // "Ġ"
    std::vector<std::string> stems{space};
    for (char c : letters) stems.push_back(std::string(1, c));
    // Breadth first: every stem followed by every letter, stems growing from the tokens just made.
    for (size_t i = 0; int64_t(tokens.size()) < vocab; ++i) {
        if (i >= stems.size()) throw std::runtime_error("tokenizer merges exhausted");
        for (char c : letters) {
            if (int64_t(tokens.size()) >= vocab) break;
            const std::string t = stems[i] + c;
            if (!seen.insert(t).second) continue;
            merges.push_back(stems[i] + " " + std::string(1, c));
            tokens.push_back(t);
            stems.push_back(t);
        }
    }
    std::string j = "{\"version\": \"1.0\", \"truncation\": null, \"padding\": null, \"added_tokens\": [";
    for (size_t i = 0; i < special.size(); ++i)
        j += std::string(i ? ", " : "") + "{\"id\": " + std::to_string(special[i].first) + ", \"content\": \"" +
             escape(special[i].second) +
             "\", \"single_word\": false, \"lstrip\": false, \"rstrip\": false, \"normalized\": false, "
             "\"special\": true}";
    j += "], \"normalizer\": null, \"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false, "
         "\"trim_offsets\": true, \"use_regex\": true}, \"post_processor\": null, \"decoder\": {\"type\": "
         "\"ByteLevel\", \"add_prefix_space\": true, \"trim_offsets\": true, \"use_regex\": true}, \"model\": "
         "{\"type\": \"BPE\", \"dropout\": null, \"unk_token\": null, \"continuing_subword_prefix\": null, "
         "\"end_of_word_suffix\": null, \"fuse_unk\": false, \"byte_fallback\": false, \"ignore_merges\": false, "
         "\"vocab\": {";
    for (size_t i = 0; i < tokens.size(); ++i)
        j += std::string(i ? ", " : "") + "\"" + escape(tokens[i]) + "\": " + std::to_string(i);
    j += "}, \"merges\": [";
    for (size_t i = 0; i < merges.size(); ++i) j += std::string(i ? ", " : "") + "\"" + escape(merges[i]) + "\"";
    j += "]}}\n";
    return j;
}

}  // namespace synth_st
