// The text <-> token id converter for byte-level BPE vocabularies (tokenizer.ggml.model = "gpt2"), built from a
// model's tokenizer.ggml.* metadata, plus a chat-prompt formatter and a streaming detokenizer.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "imp/export.h"
#include "imp/metadata.h"
#include "tokenizer/bpe.h"
#include "tokenizer/pretokenize.h"

namespace imp {

class IMP_API Tokenizer {
public:
    // GGUF token types (tokenizer.ggml.token_type).
    enum TokenType : int32_t { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

    // Reads tokenizer.ggml.* keys (model must be "gpt2" byte-level BPE; others -> imp::Error naming the model type).
    static std::unique_ptr<Tokenizer> from_metadata(const Metadata& md);

    int32_t n_vocab() const { return int32_t(tokens_.size()); }
    int32_t bos() const { return bos_; }  // -1 if none
    int32_t eos() const { return eos_; }  // -1 if none
    bool add_bos() const { return add_bos_; }  // tokenizer.ggml.add_bos_token, default per pre-tokenizer
    // eos, eot, eom, and control tokens such as <|im_end|>, <|eot_id|>, <|endoftext|>.
    bool is_eog(int32_t id) const;
    pretok::Kind pre_kind() const { return pre_.kind; }
    int32_t token_type(int32_t id) const;
    int32_t find_token(std::string_view text) const;  // id of a control/user-defined/normal token text, -1 if none

    // User-defined tokens inside `text` always become their ids. With parse_special, control (and unknown-type)
    // token texts do too; without it they are tokenized as plain text. Matching is leftmost, longest first.
    std::vector<int32_t> encode(std::string_view text, bool add_bos, bool parse_special) const;
    // Decoded bytes of one token: byte-level decoded for normal tokens, the raw text for control/user-defined ones.
    // Throws imp::Error for an id outside [0, n_vocab).
    const std::string& token_text(int32_t id) const;
    std::string decode(const std::vector<int32_t>& ids) const;

    // Chat prompt from tokenizer.chat_template: ChatML (<|im_start|>) or Llama-3 (<|start_header_id|>) style,
    // detected from the template, else ChatML if the vocab has <|im_start|>, else imp::Error. A default system
    // prompt written as a literal in the template is used when the first message is not a system message. The
    // BOS token is not part of the result: encode with add_bos().
    struct Message {
        std::string role, content;
    };
    std::string apply_chat_template(const std::vector<Message>& msgs, bool add_generation_prompt) const;

private:
    Tokenizer() = default;
    void encode_text(std::string_view text, Bpe::Work& w, std::vector<pretok::Piece>& pieces,
                     std::vector<int32_t>& out) const;

    struct Special {
        std::string text;
        int32_t id;
        bool always;  // user-defined: matched even without parse_special
    };

    std::string source_;
    std::vector<std::string> tokens_;   // as stored (byte-level form for normal tokens)
    std::vector<int32_t> types_;
    std::vector<std::string> decoded_;  // token_text() of each id
    std::unique_ptr<Bpe> bpe_;
    pretok::Info pre_;
    std::vector<Special> specials_;
    std::vector<std::vector<uint32_t>> special_by_byte_;  // first byte -> indices into specials_, longest first
    std::vector<int32_t> eog_;
    int32_t bos_ = -1, eos_ = -1;
    bool add_bos_ = false;
    std::string chat_template_;
};

// Streaming detokenizer: feed ids, get back only complete UTF-8 (a multi-byte sequence is held back until its last
// byte arrives; bytes that can never form valid UTF-8 are passed through). push()es plus flush() == decode(ids).
class IMP_API StreamDecoder {
public:
    explicit StreamDecoder(const Tokenizer& tok) : tok_(tok) {}
    std::string push(int32_t id);
    std::string flush();

private:
    const Tokenizer& tok_;
    std::string pending_;
};

}  // namespace imp
