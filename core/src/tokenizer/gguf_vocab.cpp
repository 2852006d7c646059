// Tokenizer::from_metadata: a GGUF vocabulary (tokenizer.ggml.*): "gpt2" byte-level BPE or "llama" SentencePiece.
#include "tokenizer/tokenizer.h"

#include <algorithm>

#include "imp/error.h"
#include "model/display_text.h"
#include "tokenizer/spm.h"
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

std::vector<std::string> string_array(const Metadata& md, const char* key, const std::string& src) {
    const MetaArray& a = md.get_array(key);
    std::vector<std::string> out;
    out.reserve(a.size());
    for (const MetaValue& v : a) out.push_back(in_file(src, [&] { return v.as_string(key); }));
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
    if (model != "gpt2" && model != "llama")
        throw Error(src + ": tokenizer model '" + model +
                    "' is not supported (only 'gpt2' byte-level BPE and 'llama' SentencePiece)");
    const bool spm = model == "llama";
    std::unique_ptr<Tokenizer> t(new Tokenizer());
    t->source_ = src;
    if (!spm) t->pre_ = pretok::lookup(md.get_string(kKeyPre, ""), src);
    if (spm) t->pre_.add_bos = true;
    t->tokens_ = string_array(md, kKeyTokens, src);
    const int64_t n = int64_t(t->tokens_.size());
    if (n == 0) throw Error(src + ": " + kKeyTokens + " is empty");
    if (n > INT32_MAX) throw Error(src + ": " + kKeyTokens + " has too many entries");
    std::vector<std::string> merges;
    if (!spm) {
        if (!md.has(kKeyMerges)) throw Error(src + ": missing metadata key '" + kKeyMerges + "' (BPE needs merges)");
        merges = string_array(md, kKeyMerges, src);
        for (size_t i = 0; i < merges.size(); ++i) {  // "left right": llama.cpp splits at the first space after byte 0
            const std::string& m = merges[i];
            const size_t sp = m.size() > 1 ? m.find(' ', 1) : std::string::npos;
            if (sp == std::string::npos || sp + 1 == m.size())
                throw Error(src + ": " + kKeyMerges + "[" + std::to_string(i) + "] = " + quoted(m) +
                            " is not two tokens separated by a space");
        }
    }

    t->types_.assign(size_t(n), kNormal);
    if (md.has(kKeyTypes)) {
        const MetaArray& a = md.get_array(kKeyTypes);
        if (int64_t(a.size()) != n)
            throw Error(src + ": " + kKeyTypes + " has " + std::to_string(a.size()) + " entries, expected " +
                        std::to_string(n));
        for (size_t i = 0; i < a.size(); ++i) {
            const int64_t ty = in_file(src, [&] { return a[i].as_int(kKeyTypes); });
            if (ty < 0 || ty > kByte)  // llama.cpp's llama_token_type: 0 (undefined) to 6
                throw Error(src + ": " + kKeyTypes + "[" + std::to_string(i) + "] = " + std::to_string(ty) +
                            " is not a token type (0 undefined, 1 normal, 2 unknown, 3 control, 4 user-defined, "
                            "5 unused, 6 byte)");
            t->types_[i] = int32_t(ty);
        }
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

    if (spm) {
        std::vector<float> scores;
        if (md.has("tokenizer.ggml.scores")) {
            const MetaArray& a = md.get_array("tokenizer.ggml.scores");
            if (int64_t(a.size()) != n)
                throw Error(src + ": tokenizer.ggml.scores has " + std::to_string(a.size()) + " entries, expected " +
                            std::to_string(n));
            for (const MetaValue& v : a)
                scores.push_back(float(in_file(src, [&] { return v.as_float("tokenizer.ggml.scores"); })));
        }
        t->spm_ = std::make_unique<Spm>(t->tokens_, scores, unk);
        t->add_space_prefix_ = md.get_bool("tokenizer.ggml.add_space_prefix", true);
        t->strip_leading_space_ = t->add_space_prefix_;
    } else {
        // A byte with no byte-level token is dropped (as llama.cpp and HF tokenizers do) rather than replaced by an
        // unknown_token_id that is a control token: SmolLM2 names <|endoftext|> there, and a 0x04 in a prompt became
        // an end-of-text token (found by fuzz/tokenizer_fuzz.cpp).
        const bool unk_is_control = unk >= 0 && size_t(unk) < t->types_.size() && t->types_[size_t(unk)] == kControl;
        t->bpe_ = std::make_unique<Bpe>(t->tokens_, merges, t->pre_.ignore_merges, unk_is_control ? -1 : unk);
    }
    if (t->bos_ >= 0) t->prefix_.push_back(t->bos_);  // encode(add_bos = true); add_bos() is the default
    if (md.get_bool("tokenizer.ggml.add_eos_token", false) && t->eos_ >= 0) {
        t->suffix_.push_back(t->eos_);
    }

    t->decoded_.resize(size_t(n));
    for (int32_t id = 0; id < int32_t(n); ++id) {
        const std::string& s = t->tokens_[size_t(id)];
        const int32_t type = t->types_[size_t(id)];
        if (spm && (type == kNormal || type == kUnused || type == kUserDefined)) {
            std::string d;
            for (size_t i = 0; i < s.size(); ++i) {
                if (s.compare(i, 3, "\xE2\x96\x81") == 0) d += ' ', i += 2;
                else d += s[i];
            }
            t->decoded_[size_t(id)] = d;
        } else if (type == kNormal || type == kUnused) {
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
    t->index_specials();

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

}  // namespace imp
