// The byte-level parser of the GGUF reader (gguf_reader.cpp): GGUF value types, imp's limits on what a file may
// declare, bounded reads that fail naming the file, offset and subject, metadata values, and skim(), which adds up the
// host memory a value will take without allocating it (the reader's budget check, model/host_budget.h).
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>

#include "imp/error.h"
#include "imp/metadata.h"
#include "model/display_text.h"
#include "model/mapped_file.h"

namespace imp::gguf {

// GGUF metadata value type ids (gguf_type).
enum : uint32_t {
    T_U8 = 0,
    T_I8,
    T_U16,
    T_I16,
    T_U32,
    T_I32,
    T_F32,
    T_BOOL,
    T_STR,
    T_ARR,
    T_U64,
    T_I64,
    T_F64,
    T_COUNT
};
inline const char* const kTypeName[T_COUNT] = {"u8",   "i8",  "u16", "i16", "u32", "i32", "f32",
                                        "bool", "str", "arr", "u64", "i64", "f64"};
// The fewest bytes a value of each type occupies (a string is at least its u64 length).
constexpr uint64_t kMinBytes[T_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 8, 12, 8, 8, 8};

constexpr uint64_t kMaxKeyBytes = 65535;  // GGUF spec: keys are at most 65535 bytes
constexpr uint64_t kMaxNameBytes = 64;    // GGUF spec: tensor names are at most 64 bytes
constexpr uint32_t kMaxDims = 4;
// imp's own limits, far above any real model (the largest vocabularies hold ~262k tokens; MoE files ~50k tensors),
// so that a small file cannot make the reader hold many times its size: a 1-byte u8 array element becomes a
// ~60-byte MetaValue, a 24-byte tensor info a ~200-byte TensorInfo.
constexpr uint64_t kMaxArrayElems = uint64_t(1) << 22;  // elements in one metadata array
constexpr uint64_t kMaxTensors = uint64_t(1) << 20;
constexpr uint64_t kMaxKeys = uint64_t(1) << 16;
constexpr uint64_t kMinKvBytes = 8 + 4 + 1;              // empty key, type, smallest value
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 4 + 8;  // empty name, n_dims = 0, type, offset

inline std::string sq(const std::string& s) { return imp::quoted(s); }

class Parser {
public:
    explicit Parser(const MappedFile& f) : p_(f.data()), n_(f.size()), path_(f.path()) {}

    [[noreturn]] void fail(const std::string& msg) const { throw Error(path_ + ": " + msg); }
    uint64_t pos() const { return pos_; }
    uint64_t left() const { return n_ - pos_; }
    void skip(uint64_t k) { pos_ += std::min(k, left()); }
    void seek(uint64_t at) { pos_ = std::min(at, n_); }

    void need(uint64_t k, const char* what, const std::string& subject) const {
        if (k > left())
            fail("truncated file: " + std::string(what) + (subject.empty() ? "" : " of " + subject) + " needs " +
                 std::to_string(k) + " bytes at offset " + std::to_string(pos_) + ", only " + std::to_string(left()) +
                 " remain");
    }
    template <class T>
    T get(const char* what, const std::string& subject = {}) {
        need(sizeof(T), what, subject);
        T v;
        std::memcpy(&v, p_ + pos_, sizeof(T));
        pos_ += sizeof(T);
        return v;
    }
    std::string str(const char* what, const std::string& subject, uint64_t max_len) {
        uint64_t len = get<uint64_t>("string length", subject.empty() ? what : subject);
        if (len > n_)
            fail(std::string(what) + " length " + std::to_string(len) + (subject.empty() ? "" : " in " + subject) +
                 " is larger than the whole file (" + std::to_string(n_) + " bytes)");
        if (len > left())
            fail(std::string(what) + (subject.empty() ? "" : " of " + subject) + ": " + std::to_string(len) +
                 " bytes at offset " + std::to_string(pos_) + " run past the end of the file");
        if (len > max_len)
            fail(std::string(what) + " of " + std::to_string(len) + " bytes exceeds the GGUF limit of " +
                 std::to_string(max_len) + " bytes");
        std::string s(reinterpret_cast<const char*>(p_ + pos_), size_t(len));
        pos_ += len;
        return s;
    }

    MetaValue value(uint32_t type, const std::string& key, const std::string& subject) {
        switch (type) {
            case T_U8: return {uint64_t(get<uint8_t>("u8 value", subject)), "u8"};
            case T_I8: return {int64_t(get<int8_t>("i8 value", subject)), "i8"};
            case T_U16: return {uint64_t(get<uint16_t>("u16 value", subject)), "u16"};
            case T_I16: return {int64_t(get<int16_t>("i16 value", subject)), "i16"};
            case T_U32: return {uint64_t(get<uint32_t>("u32 value", subject)), "u32"};
            case T_I32: return {int64_t(get<int32_t>("i32 value", subject)), "i32"};
            case T_F32: return {double(get<float>("f32 value", subject)), "f32"};
            case T_U64: return {get<uint64_t>("u64 value", subject), "u64"};
            case T_I64: return {get<int64_t>("i64 value", subject), "i64"};
            case T_F64: return {get<double>("f64 value", subject), "f64"};
            case T_BOOL: {
                uint8_t b = get<uint8_t>("bool value", subject);
                if (b > 1)
                    fail("metadata key " + sq(key) + " has bool value " + std::to_string(b) + " (must be 0 or 1)");
                return {b == 1, "bool"};
            }
            case T_STR: return {str("string value", subject, UINT64_MAX), "str"};
            case T_ARR: return array(key, subject);
            default: fail("metadata key " + sq(key) + " has unknown value type " + std::to_string(type));
        }
    }

    // Host memory the value of `type` here takes once read (its MetaValue and heap), added to `bytes`; moves past
    // it. False when the value is malformed (the reading pass then says how), without allocating anything.
    bool skim(uint32_t type, uint64_t& bytes) {
        if (type >= T_COUNT || left() < kMinBytes[type]) return false;
        bytes += sizeof(MetaValue);
        if (type == T_STR) {
            const uint64_t len = raw<uint64_t>();
            if (len > left()) return false;
            pos_ += len;
            bytes += len > 15 ? len + 1 : 0;  // beyond the short-string buffer
            return true;
        }
        if (type != T_ARR) {
            pos_ += kMinBytes[type];
            return true;
        }
        const uint32_t et = raw<uint32_t>();
        const uint64_t count = raw<uint64_t>();
        if (et >= T_COUNT || et == T_ARR || count > kMaxArrayElems || count > left() / kMinBytes[et]) return false;
        bytes += sizeof(MetaArray) + 32;  // the vector and its shared_ptr control block
        if (et != T_STR) {
            pos_ += count * kMinBytes[et];
            bytes += count * sizeof(MetaValue);
            return true;
        }
        for (uint64_t i = 0; i < count; ++i)
            if (!skim(T_STR, bytes)) return false;
        return true;
    }

private:
    template <class T>
    T raw() {
        T v;
        std::memcpy(&v, p_ + pos_, sizeof(T));
        pos_ += sizeof(T);
        return v;
    }
    MetaValue array(const std::string& key, const std::string& subject) {
        uint32_t et = get<uint32_t>("array element type", subject);
        if (et == T_ARR) fail("metadata key " + sq(key) + " is an array of arrays, which GGUF readers do not support");
        if (et >= T_COUNT)
            fail("metadata key " + sq(key) + " is an array with unknown element type " + std::to_string(et));
        uint64_t count = get<uint64_t>("array count", subject);
        if (count > left() / kMinBytes[et])
            fail("metadata key " + sq(key) + ": array count " + std::to_string(count) + " of " + kTypeName[et] +
                 " cannot fit in the " + std::to_string(left()) + " bytes left in the file");
        if (count > kMaxArrayElems)
            fail("metadata key " + sq(key) + ": array of " + std::to_string(count) + " elements exceeds imp's limit of " +
                 std::to_string(kMaxArrayElems));
        auto arr = std::make_shared<MetaArray>();
        arr->reserve(size_t(count));
        for (uint64_t i = 0; i < count; ++i) arr->push_back(value(et, key, subject));
        return {std::move(arr), std::string("arr[") + kTypeName[et] + "]"};
    }

    const uint8_t* p_;
    uint64_t n_;
    uint64_t pos_ = 0;
    const std::string& path_;
};

}  // namespace imp::gguf
