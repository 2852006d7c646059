// Tokenizer: the parts shared by every vocabulary kind: special-token matching, encode/decode, end-of-generation
// ids, streaming decode. Loading: gguf_vocab.cpp (GGUF metadata) and hf_tokenizer.cpp (tokenizer.json folders).
#include "tokenizer/tokenizer.h"

#include <algorithm>

#include "imp/error.h"
#include "tokenizer/hf_pipeline.h"
#include "tokenizer/spm.h"
#include "tokenizer/unicode.h"

namespace imp {

Tokenizer::Tokenizer() = default;
Tokenizer::~Tokenizer() = default;

void Tokenizer::index_specials() {
    special_by_byte_.assign(256, {});
    for (uint32_t i = 0; i < specials_.size(); ++i)
        special_by_byte_[static_cast<unsigned char>(specials_[i].text[0])].push_back(i);
    for (auto& bucket : special_by_byte_)
        std::stable_sort(bucket.begin(), bucket.end(), [&](uint32_t a, uint32_t b) {
            return specials_[a].text.size() > specials_[b].text.size();
        });
}

std::string Tokenizer::describe() const {
    if (hf_) return std::string("tokenizer.json BPE") + (hf_->byte_level() ? " (byte-level)" : "");
    if (spm_) return "llama (SentencePiece)";
    return std::string("gpt2 byte-level BPE (") + pretok::kind_name(pre_.kind) + ")";
}

bool Tokenizer::is_eog(int32_t id) const { return std::binary_search(eog_.begin(), eog_.end(), id); }

int32_t Tokenizer::token_type(int32_t id) const {
    if (id < 0 || id >= n_vocab())
        throw Error(source_ + ": token id " + std::to_string(id) + " is outside the vocab (" +
                    std::to_string(n_vocab()) + " tokens)");
    return types_[size_t(id)];
}

void Tokenizer::check_fits(int64_t model_rows, const std::string& model_what) const {
    if (n_vocab() > model_rows)
        throw Error(source_ + ": " + std::to_string(n_vocab()) + " tokens, more than the model's vocabulary of " +
                    std::to_string(model_rows) + " (" + model_what + ")");
}

int32_t Tokenizer::find_token(std::string_view text) const {
    for (const Special& s : specials_)
        if (s.text == text) return s.id;
    if (spm_ || (hf_ && !hf_->byte_level())) {
        for (size_t i = 0; i < tokens_.size(); ++i)
            if (tokens_[i] == text) return int32_t(i);
        return -1;
    }
    std::string enc;
    for (unsigned char b : text) unicode::append_utf8(enc, unicode::byte_to_cp(b));
    return bpe_->find(enc);
}

void Tokenizer::encode_text(std::string_view text, bool at_start, Bpe::Work& w, std::vector<pretok::Piece>& pieces,
                            std::vector<int32_t>& out) const {
    if (text.empty()) return;
    if (hf_) {
        std::vector<std::string> parts;
        hf_->pre_tokenize(hf_->normalize(text), at_start, parts);
        for (const std::string& p : parts) bpe_->encode(p, w, out);
        return;
    }
    if (spm_) {  // every segment starts the text or follows a special token: both get the prefix (llama.cpp)
        std::string s = add_space_prefix_ ? "\xE2\x96\x81" : "";
        for (char c : text) {
            if (c == ' ') s += "\xE2\x96\x81";
            else s += c;
        }
        spm_->encode(s, out);
        return;
    }
    pieces.clear();
    pretok::split(pre_.kind, text, pieces);
    for (const pretok::Piece& p : pieces) bpe_->encode(text.substr(p.begin, p.end - p.begin), w, out);
}

namespace {
// Byte length of the whitespace code point starting at text[i] (0: none): Unicode White_Space, what tokenizers'
// lstrip / rstrip strip (Rust's char::is_whitespace).
size_t space_at(std::string_view text, size_t i) {
    int len = 1;
    return unicode::flags(unicode::decode_utf8(text, i, &len)) & unicode::kWhitespace ? size_t(len) : 0;
}
// Byte length of the whitespace code point ending at text[end] (0: none), not reaching before `begin`.
size_t space_before(std::string_view text, size_t begin, size_t end) {
    for (size_t n = 1; n <= 3 && end >= begin + n; ++n)
        if (space_at(text, end - n) == n) return n;
    return 0;
}
}  // namespace

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_bos, bool parse_special,
                                       const std::vector<std::pair<size_t, size_t>>& literal) const {
    // Malformed UTF-8: each bad byte becomes U+FFFD (as Python's errors="replace" does for lone bytes), so the
    // pieces are always valid text and no byte missing from the vocab has to be dropped.
    std::string clean;
    std::vector<std::pair<size_t, size_t>> lit = literal;
    bool dirty = false;
    for (size_t i = 0; i < text.size();) {
        int len = 1;
        const uint32_t cp = unicode::decode_utf8(text, i, &len);
        const bool bad = cp == unicode::kReplacement && len == 1;
        if (bad && !dirty) {
            clean.assign(text.substr(0, i));
            dirty = true;
        }
        if (bad) {
            unicode::append_utf8(clean, cp);
            for (auto& [b, e] : lit) {  // the literal ranges move with the two inserted bytes
                if (b > clean.size() - 3) b += 2;
                if (e > clean.size() - 3) e += 2;
            }
        } else if (dirty) {
            clean.append(text.substr(i, size_t(len)));
        }
        i += size_t(len);
    }
    if (dirty) text = clean;
    auto in_literal = [&](size_t b, size_t e) {
        for (auto [lb, le] : lit)
            if (b < le && lb < e) return true;
        return false;
    };
    std::vector<int32_t> out;
    out.reserve(text.size() / 3 + 2);
    if (add_bos) out.insert(out.end(), prefix_.begin(), prefix_.end());
    Bpe::Work w;
    std::vector<pretok::Piece> pieces;
    size_t start = 0;         // first byte not yet encoded
    for (size_t i = 0; i < text.size();) {
        const Special* hit = nullptr;
        for (uint32_t idx : special_by_byte_[static_cast<unsigned char>(text[i])]) {
            const Special& s = specials_[idx];
            if ((parse_special || s.always) && text.compare(i, s.text.size(), s.text) == 0 &&
                !in_literal(i, i + s.text.size())) {
                hit = &s;
                break;
            }
        }
        if (!hit) {
            ++i;
            continue;
        }
        size_t seg_end = i;
        if (hit->lstrip)
            for (size_t n; (n = space_before(text, start, seg_end)) > 0;) seg_end -= n;
        encode_text(text.substr(start, seg_end - start), start == 0, w, pieces, out);
        out.push_back(hit->id);
        i += hit->text.size();
        if (hit->rstrip)
            for (size_t n; i < text.size() && (n = space_at(text, i)) > 0;) i += n;
        start = i;
    }
    encode_text(text.substr(start), start == 0, w, pieces, out);
    if (add_bos) out.insert(out.end(), suffix_.begin(), suffix_.end());
    return out;
}

const std::string& Tokenizer::token_text(int32_t id) const {
    token_type(id);  // range check
    return decoded_[size_t(id)];
}

const std::string& Tokenizer::token_piece(int32_t id) const {
    token_type(id);
    return tokens_[size_t(id)];
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const {
    std::string out;
    for (int32_t id : ids)
        if (id >= 0 && id < n_vocab()) out += decoded_[size_t(id)];  // padded-embedding ids: no text (as HF)
    if (strip_leading_space_ && !out.empty() && out[0] == ' ') out.erase(0, 1);
    return unicode::valid_utf8(out);
}

std::string StreamDecoder::push(int32_t id) {
    if (id < 0 || id >= tok_.n_vocab()) return "";  // a model with a padded embedding can sample ids with no text
    pending_ += tok_.token_text(id);
    const size_t n = unicode::complete_utf8_prefix(pending_);
    std::string out = unicode::valid_utf8(std::string_view(pending_).substr(0, n));
    pending_.erase(0, n);
    return out;
}

std::string StreamDecoder::flush() {
    std::string out = unicode::valid_utf8(pending_);
    pending_.clear();
    return out;
}

}  // namespace imp
