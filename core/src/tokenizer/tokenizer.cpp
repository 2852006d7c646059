#include "tokenizer/tokenizer.h"

#include <algorithm>

#include "imp/error.h"
#include "tokenizer/unicode.h"

namespace imp {

namespace {

constexpr const char* kKeyModel = "tokenizer.ggml.model";
constexpr const char* kKeyPre = "tokenizer.ggml.pre";
constexpr const char* kKeyTokens = "tokenizer.ggml.tokens";
constexpr const char* kKeyTypes = "tokenizer.ggml.token_type";
constexpr const char* kKeyMerges = "tokenizer.ggml.merges";

// End-of-generation token texts recognised among control and user-defined tokens.
const char* const kEogTexts[] = {"<|eot_id|>", "<|eom_id|>", "<|im_end|>", "<|endoftext|>", "<|end_of_text|>",
                                 "<|end|>", "<|return|>", "<|call|>", "<end_of_turn>", "<|EOT|>", "<EOT>",
                                 "<｜end▁of▁sentence｜>", "<end_of_utterance>"};

std::vector<std::string> string_array(const Metadata& md, const char* key) {
    const MetaArray& a = md.get_array(key);
    std::vector<std::string> out;
    out.reserve(a.size());
    for (const MetaValue& v : a) out.push_back(v.as_string(key));
    return out;
}

// Byte-level decoding: each code point of a normal token stands for one byte (code points outside the mapping,
// which a malformed vocab might hold, are kept as UTF-8).
std::string byte_decode(const std::string& text) {
    std::string out;
    out.reserve(text.size());
    for (size_t i = 0; i < text.size();) {
        int len = 1;
        const uint32_t cp = unicode::decode_utf8(text, i, &len);
        const int b = unicode::cp_to_byte(cp);
        if (b >= 0) out += char(b);
        else out.append(text, i, size_t(len));
        i += size_t(len);
    }
    return out;
}

int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

}  // namespace

std::unique_ptr<Tokenizer> Tokenizer::from_metadata(const Metadata& md) {
    const std::string src = md.source.empty() ? "metadata" : md.source;
    const std::string& model = md.get_string(kKeyModel);
    if (model != "gpt2")
        throw Error(src + ": tokenizer model '" + model + "' is not supported (only 'gpt2' byte-level BPE)");
    std::unique_ptr<Tokenizer> t(new Tokenizer());
    t->source_ = src;
    t->pre_ = pretok::lookup(md.get_string(kKeyPre, ""), src);
    t->tokens_ = string_array(md, kKeyTokens);
    const int64_t n = int64_t(t->tokens_.size());
    if (n == 0) throw Error(src + ": " + kKeyTokens + " is empty");
    if (n > INT32_MAX) throw Error(src + ": " + kKeyTokens + " has too many entries");
    if (!md.has(kKeyMerges)) throw Error(src + ": missing metadata key '" + kKeyMerges + "' (BPE needs merges)");
    const std::vector<std::string> merges = string_array(md, kKeyMerges);

    t->types_.assign(size_t(n), kNormal);
    if (const MetaValue* tv = md.find(kKeyTypes)) {
        const MetaArray& a = tv->as_array(kKeyTypes);
        if (int64_t(a.size()) != n)
            throw Error(src + ": " + kKeyTypes + " has " + std::to_string(a.size()) + " entries, expected " +
                        std::to_string(n));
        for (size_t i = 0; i < a.size(); ++i) t->types_[i] = int32_t(a[i].as_int(kKeyTypes));
    }

    auto token_id = [&](const char* name, int32_t fallback) -> int32_t {
        const std::string key = std::string("tokenizer.ggml.") + name + "_token_id";
        const int64_t id = md.get_int(key, fallback);
        if (id < -1 || id >= n)
            throw Error(src + ": " + key + " = " + std::to_string(id) + " is outside the vocab (" +
                        std::to_string(n) + " tokens)");
        return int32_t(id);
    };
    t->bos_ = token_id("bos", -1);
    t->eos_ = token_id("eos", -1);
    const int32_t unk = token_id("unknown", -1);
    t->add_bos_ = md.get_bool("tokenizer.ggml.add_bos_token", t->pre_.add_bos);
    if (t->add_bos_ && t->bos_ < 0) t->add_bos_ = false;
    t->chat_template_ = md.get_string("tokenizer.chat_template", "");

    t->bpe_ = std::make_unique<Bpe>(t->tokens_, merges, t->pre_.ignore_merges, unk);

    t->decoded_.resize(size_t(n));
    t->special_by_byte_.resize(256);
    for (int32_t id = 0; id < int32_t(n); ++id) {
        const std::string& s = t->tokens_[size_t(id)];
        const int32_t type = t->types_[size_t(id)];
        if (type == kNormal || type == kUnused) {
            t->decoded_[size_t(id)] = byte_decode(s);
        } else if (type == kByte && s.size() == 6 && s.compare(0, 3, "<0x") == 0 && s[5] == '>' &&
                   hex_digit(s[3]) >= 0 && hex_digit(s[4]) >= 0) {
            t->decoded_[size_t(id)] = std::string(1, char(hex_digit(s[3]) * 16 + hex_digit(s[4])));
        } else {
            t->decoded_[size_t(id)] = s;
        }
        if ((type == kControl || type == kUserDefined || type == kUnknown) && !s.empty())
            t->specials_.push_back({s, id, type == kUserDefined});
    }
    for (uint32_t i = 0; i < t->specials_.size(); ++i)
        t->special_by_byte_[static_cast<unsigned char>(t->specials_[i].text[0])].push_back(i);
    for (auto& bucket : t->special_by_byte_)
        std::stable_sort(bucket.begin(), bucket.end(), [&](uint32_t a, uint32_t b) {
            return t->specials_[a].text.size() > t->specials_[b].text.size();
        });

    for (const char* k : {"eos", "eot", "eom"}) {
        const int32_t id = token_id(k, -1);
        if (id >= 0) t->eog_.push_back(id);
    }
    for (const Special& s : t->specials_)
        for (const char* e : kEogTexts)
            if (s.text == e) t->eog_.push_back(s.id);
    std::sort(t->eog_.begin(), t->eog_.end());
    t->eog_.erase(std::unique(t->eog_.begin(), t->eog_.end()), t->eog_.end());
    return t;
}

bool Tokenizer::is_eog(int32_t id) const { return std::binary_search(eog_.begin(), eog_.end(), id); }

int32_t Tokenizer::token_type(int32_t id) const {
    if (id < 0 || id >= n_vocab())
        throw Error(source_ + ": token id " + std::to_string(id) + " is outside the vocab (" +
                    std::to_string(n_vocab()) + " tokens)");
    return types_[size_t(id)];
}

int32_t Tokenizer::find_token(std::string_view text) const {
    for (const Special& s : specials_)
        if (s.text == text) return s.id;
    std::string enc;
    for (unsigned char b : text) unicode::append_utf8(enc, unicode::byte_to_cp(b));
    return bpe_->find(enc);
}

void Tokenizer::encode_text(std::string_view text, Bpe::Work& w, std::vector<pretok::Piece>& pieces,
                            std::vector<int32_t>& out) const {
    pieces.clear();
    pretok::split(pre_.kind, text, pieces);
    for (const pretok::Piece& p : pieces) bpe_->encode(text.substr(p.begin, p.end - p.begin), w, out);
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_bos, bool parse_special) const {
    // Malformed UTF-8: each bad byte becomes U+FFFD (as Python's errors="replace" does for lone bytes), so the
    // pieces are always valid text and no byte missing from the vocab has to be dropped.
    std::string clean;
    bool dirty = false;
    for (size_t i = 0; i < text.size();) {
        int len = 1;
        const uint32_t cp = unicode::decode_utf8(text, i, &len);
        const bool bad = cp == unicode::kReplacement && len == 1;
        if (bad && !dirty) {
            clean.assign(text.substr(0, i));
            dirty = true;
        }
        if (bad) unicode::append_utf8(clean, cp);
        else if (dirty) clean.append(text.substr(i, size_t(len)));
        i += size_t(len);
    }
    if (dirty) text = clean;
    std::vector<int32_t> out;
    out.reserve(text.size() / 3 + 2);
    if (add_bos && bos_ >= 0) out.push_back(bos_);
    Bpe::Work w;
    std::vector<pretok::Piece> pieces;
    size_t start = 0;  // first byte not yet encoded
    for (size_t i = 0; i < text.size();) {
        const Special* hit = nullptr;
        for (uint32_t idx : special_by_byte_[static_cast<unsigned char>(text[i])]) {
            const Special& s = specials_[idx];
            if ((parse_special || s.always) && text.compare(i, s.text.size(), s.text) == 0) {
                hit = &s;
                break;
            }
        }
        if (!hit) {
            ++i;
            continue;
        }
        encode_text(text.substr(start, i - start), w, pieces, out);
        out.push_back(hit->id);
        i += hit->text.size();
        start = i;
    }
    encode_text(text.substr(start), w, pieces, out);
    return out;
}

const std::string& Tokenizer::token_text(int32_t id) const {
    token_type(id);  // range check
    return decoded_[size_t(id)];
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const {
    std::string out;
    for (int32_t id : ids) out += token_text(id);
    return out;
}

std::string StreamDecoder::push(int32_t id) {
    pending_ += tok_.token_text(id);
    const size_t n = unicode::complete_utf8_prefix(pending_);
    std::string out = pending_.substr(0, n);
    pending_.erase(0, n);
    return out;
}

std::string StreamDecoder::flush() {
    std::string out;
    out.swap(pending_);
    return out;
}

}  // namespace imp
