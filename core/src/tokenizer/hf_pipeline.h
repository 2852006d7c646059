// The text-side steps of a tokenizer.json (Hugging Face `tokenizers` format): its normalizer and pre-tokenizer,
// read from their JSON and applied to one stretch of text between added tokens. A type imp does not implement is
// an imp::Error naming the file, the section and the type.
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "model/json.h"
#include "tokenizer/regex.h"

namespace imp::hf {

// Where a split point matched text goes (tokenizers' SplitDelimiterBehavior).
enum class Behavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

struct Step;  // one normalizer or pre-tokenizer

class Pipeline {
public:
    // `normalizer` / `pre_tokenizer` may be null (JSON null or absent).
    Pipeline(const json::Value* normalizer, const json::Value* pre_tokenizer, const std::string& source);
    ~Pipeline();

    std::string normalize(std::string_view text) const;
    // Splits normalized text into pieces for the model. `at_start`: the text begins the input (Metaspace's
    // prepend_scheme "first").
    void pre_tokenize(std::string text, bool at_start, std::vector<std::string>& pieces) const;
    bool byte_level() const { return byte_level_; }  // a ByteLevel pre-tokenizer: the model works on bytes

private:
    std::vector<std::unique_ptr<Step>> norm_, pre_;
    bool byte_level_ = false;
};

}  // namespace imp::hf
