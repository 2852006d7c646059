// The text <-> token id converter: byte-level BPE (GGUF tokenizer.ggml.model = "gpt2"), SentencePiece (GGUF "llama")
// and Hugging Face tokenizer.json BPE (with its normalizer / pre-tokenizer / decoder), plus the chat prompt rendered
// by the model's Jinja template and a streaming detokenizer.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "imp/export.h"
#include "imp/metadata.h"
#include "model/json.h"
#include "tokenizer/bpe.h"
#include "tokenizer/pretokenize.h"

namespace imp::hf {
class Pipeline;
}

namespace imp {

class Spm;

class IMP_API Tokenizer {
public:
    // GGUF token types (tokenizer.ggml.token_type).
    enum TokenType : int32_t { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

    // Reads tokenizer.ggml.* keys (model "gpt2" byte-level BPE or "llama" SentencePiece; others -> imp::Error
    // naming the model type).
    static std::unique_ptr<Tokenizer> from_metadata(const Metadata& md);
    // Reads a Hugging Face folder: tokenizer.json (required), tokenizer_config.json, generation_config.json,
    // chat_template.jinja (each optional). `path` may also name the tokenizer.json file itself.
    static std::unique_ptr<Tokenizer> from_hf(const std::string& path);
    // The tokenizer of a model: its GGUF tokenizer.ggml.* metadata, else the tokenizer.json beside it (in the folder
    // `model_path`, or in the folder of the file `model_path`); nullptr if there is neither.
    static std::unique_ptr<Tokenizer> for_model(const std::string& model_path, const Metadata& md);
    ~Tokenizer();

    int32_t n_vocab() const { return int32_t(tokens_.size()); }
    int32_t bos() const { return bos_; }  // -1 if none
    int32_t eos() const { return eos_; }  // -1 if none
    // Whether encode(text, add_bos() ...) adds anything: tokenizer.ggml.add_bos_token (default per pre-tokenizer),
    // or the post-processor of a tokenizer.json (with tokenizer_config.json's add_bos_token / add_eos_token).
    bool add_bos() const { return add_bos_; }
    const std::string& chat_template() const { return chat_template_; }
    // Sampling defaults from generation_config.json (absent keys stay unset; do_sample = false gives temperature 0),
    // for a caller to use where the profile sets none.
    struct SamplingDefaults {
        std::optional<double> temperature, top_p, min_p, repetition_penalty;
        std::optional<int64_t> top_k;
    };
    const SamplingDefaults& sampling_defaults() const { return sampling_defaults_; }
    const std::string& source() const { return source_; }
    // "gpt2 (smollm)", "llama (SentencePiece)", "tokenizer.json BPE", ...
    std::string describe() const;
    // eos, eot, eom, and control tokens such as <|im_end|>, <|eot_id|>, <|endoftext|>.
    bool is_eog(int32_t id) const;
    // Throws imp::Error("<source>: N tokens, more than the model's vocabulary of M (<model_what>)") when the
    // tokenizer has ids past the model's embedding rows (a padded model may have more rows than tokens).
    void check_fits(int64_t model_rows, const std::string& model_what) const;
    pretok::Kind pre_kind() const { return pre_.kind; }
    int32_t token_type(int32_t id) const;
    int32_t find_token(std::string_view text) const;  // id of a control/user-defined/normal token text, -1 if none

    // User-defined tokens inside `text` always become their ids. With parse_special, control (and unknown-type)
    // token texts do too; without it they are tokenized as plain text. Matching is leftmost, longest first.
    // add_bos: the BOS (GGUF) or the post-processor's prefix and suffix tokens (tokenizer.json).
    // `literal`: byte ranges [begin, end) of `text` where no special token is matched (message content).
    std::vector<int32_t> encode(std::string_view text, bool add_bos, bool parse_special,
                                const std::vector<std::pair<size_t, size_t>>& literal = {}) const;
    // Decoded bytes of one token: byte-level decoded for normal tokens, the raw text for control/user-defined ones.
    // Throws imp::Error for an id outside [0, n_vocab).
    const std::string& token_text(int32_t id) const;
    const std::string& token_piece(int32_t id) const;  // the token as the vocab stores it ("Ġthe", "▁the")
    // The text of `ids` (the decoder's leading-space strip applied, as HF decode does), as valid UTF-8: malformed or
    // incomplete sequences become U+FFFD. Ids outside the vocab (a model's padded embedding rows) give no text.
    std::string decode(const std::vector<int32_t>& ids) const;

    // Chat prompt rendered by the model's Jinja chat template (tokenizer.chat_template / tokenizer_config.json)
    // with messages, add_generation_prompt, bos_token and eos_token, as transformers renders it; a model without a
    // template gets ChatML if the vocab has <|im_start|>, else imp::Error. Template errors name the template line.
    struct Message {
        std::string role, content;
    };
    std::string apply_chat_template(const std::vector<Message>& msgs, bool add_generation_prompt) const;
    // The rendered prompt and where the message contents landed in it, for encode(..., literal): special-token text
    // inside a message stays text.
    struct ChatPrompt {
        std::string text;
        std::vector<std::pair<size_t, size_t>> literal;
    };
    ChatPrompt render_chat(const std::vector<Message>& msgs, bool add_generation_prompt) const;
    // The same with a whole template context as JSON (an OpenAI-style request: messages with any fields, tools,
    // enable_thinking, ...); add_generation_prompt (default false), bos_token and eos_token are added when absent.
    // Special-token text in any string under "messages" stays text.
    ChatPrompt render_chat(const json::Value& context) const;
    std::vector<int32_t> encode_prompt(const ChatPrompt& p) const;  // as encode_chat, for a rendered prompt
    // render_chat + encode with special tokens parsed outside message contents; BOS added by add_bos() unless the
    // template already wrote it.
    std::vector<int32_t> encode_chat(const std::vector<Message>& msgs, bool add_generation_prompt) const;

private:
    Tokenizer();
    void encode_text(std::string_view text, bool at_start, Bpe::Work& w, std::vector<pretok::Piece>& pieces,
                     std::vector<int32_t>& out) const;
    void index_specials();  // fills special_by_byte_ from specials_

    struct Special {
        std::string text;
        int32_t id;
        bool always;  // user-defined: matched even without parse_special
        bool lstrip = false, rstrip = false;  // tokenizer.json: absorbs whitespace on that side
    };

    std::string source_;
    std::vector<std::string> tokens_;   // as stored (byte-level form for normal tokens)
    std::vector<int32_t> types_;
    std::vector<std::string> decoded_;  // token_text() of each id
    std::unique_ptr<Bpe> bpe_;
    std::unique_ptr<Spm> spm_;       // GGUF "llama" vocabularies
    std::unique_ptr<hf::Pipeline> hf_;   // tokenizer.json normalizer + pre-tokenizer
    bool add_space_prefix_ = false;      // SentencePiece: "▁" before the text and after each special or
                                         // user-defined token, as llama.cpp and HF's legacy conversion do
    bool strip_leading_space_ = false;   // decode(): drop one leading space (SentencePiece-style decoders)
    std::vector<int32_t> prefix_, suffix_;  // added by encode(add_bos = true)
    pretok::Info pre_;
    std::vector<Special> specials_;
    std::vector<std::vector<uint32_t>> special_by_byte_;  // first byte -> indices into specials_, longest first
    std::vector<int32_t> eog_;
    int32_t bos_ = -1, eos_ = -1;
    bool add_bos_ = false;
    std::string chat_template_;
    std::string chat_template_source_;  // the template's file in messages ("" : source_ + ": chat template")
    SamplingDefaults sampling_defaults_;
};

// Streaming detokenizer for generated text: feed ids, get back only complete, valid UTF-8 (a multi-byte sequence is
// held back until its last byte arrives; bytes that can never form valid UTF-8 become U+FFFD). flush() at the end
// writes U+FFFD for an incomplete trailing sequence. No leading space is stripped (the text continues a prompt).
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
