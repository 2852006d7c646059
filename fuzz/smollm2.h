// The SmolLM2 tokenizer (tests/fixtures/tokenizer/smollm2.gguf: the default model's vocabulary), loaded once, for
// the tokenizer and chat-template fuzz targets.
#pragma once
#include <memory>

#include "model/gguf_reader.h"
#include "model/mapped_file.h"
#include "tokenizer/tokenizer.h"

namespace imp::fuzz {

inline const Tokenizer& smollm2() {
    static const std::unique_ptr<Tokenizer> tok = [] {
        GgufSource src(MappedFile::open(IMP_SOURCE_DIR "/tests/fixtures/tokenizer/smollm2.gguf"));
        return Tokenizer::from_metadata(src.metadata());
    }();
    return *tok;
}

}  // namespace imp::fuzz
