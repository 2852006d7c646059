// Unicode NFC normalization (canonical decomposition, canonical ordering, canonical composition), for the "NFC"
// normalizer of tokenizer.json files (Qwen2 and others). Tables: nfc_tables.cpp (generated).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

#include "imp/export.h"

namespace imp::unicode {

// NFC of valid UTF-8 text (malformed bytes pass through unchanged).
IMP_API std::string nfc(std::string_view text);

namespace nfc_data {
extern const uint32_t kCccCount, kDecompCount, kCompCount;
extern const uint32_t kCcc[], kDecompIndex[], kDecompData[], kComp[];
}  // namespace nfc_data

}  // namespace imp::unicode
