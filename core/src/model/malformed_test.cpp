// Hand-built malformed GGUF / safetensors files and folders: each must be rejected by open_model with an
// imp::Error naming the file and its own specific problem; nothing may crash or allocate hugely.
#include <catch2/catch.hpp>

#include <map>
#include <random>

#include "imp/error.h"
#include "imp/model.h"
#include "model/gguf_reader.h"
#include "model/mapped_file.h"
#include "model/reader_test_util.h"
#include "model/safetensors_reader.h"

using imp::test::Bytes;
using imp::test::gguf_header;
using imp::test::safetensors_bytes;
using imp::test::TempDir;

namespace {

constexpr uint32_t F32 = 0, Q4_0 = 2, I64 = 27;
constexpr uint32_t T_U32 = 4, T_BOOL = 7, T_STR = 8, T_ARR = 9, T_U64 = 10;

// One valid tensor 'w' (32 x F32) after the given metadata; the base every GGUF case perturbs.
Bytes with_tensor(Bytes b, const std::string& name = "w", std::vector<uint64_t> ne = {32}, uint32_t type = F32,
                  uint64_t off = 0, size_t data = 128) {
    b.tensor(name, ne, type, off).pad(32).zeros(data);
    return b;
}

std::string gguf_valid() { return with_tensor(gguf_header(1, 1).kv_str("general.architecture", "llama")).b; }

struct Case {
    std::string name;  // file name in the temp folder (extension picks the reader when the magic does not)
    std::string bytes;
    std::string expect;  // distinctive substring of the error
};

std::vector<Case> gguf_cases() {
    const uint64_t big = uint64_t(1) << 62;
    std::vector<Case> c;
    auto kv1 = [] { return gguf_header(0, 1); };
    c.push_back({"bad_magic.gguf", "GGUX" + gguf_valid().substr(4), "bad magic 'GGUX', expected 'GGUF'"});
    c.push_back({"tiny.gguf", "GG", "is too small to be a GGUF file"});
    {  // four u8 arrays of 2^22 (16 MiB of file) would be 1.13 GiB of metadata values: refused before reading them
        Bytes b = gguf_header(1, 4);
        for (int i = 0; i < 4; ++i) b.str("huge" + std::to_string(i)).u32(T_ARR).u32(0).u64(1 << 22).zeros(1 << 22);
        c.push_back({"metadata_budget.gguf", with_tensor(b).b,
                     "reading the metadata (4 keys) and tensor table (1 tensors) needs 1.13 GiB"});
    }
    c.push_back({"v0.gguf", gguf_header(0, 0, 0).b, "GGUF version 0 is invalid"});
    c.push_back({"v1.gguf", gguf_header(0, 0, 1).b, "GGUF version 1 is no longer supported"});
    c.push_back({"v4.gguf", gguf_header(0, 0, 4).b, "GGUF version 4 is newer than this reader"});
    c.push_back(
        {"big_endian.gguf", gguf_header(0, 0, 0x03000000).b, "big-endian GGUF file (version field 0x03000000)"});
    c.push_back({"trunc_header.gguf", gguf_header(0, 0).b.substr(0, 12), "truncated file: tensor count"});
    c.push_back({"trunc_kv_count.gguf", gguf_header(0, 0).b.substr(0, 20), "truncated file: metadata key/value count"});
    c.push_back({"tensor_count_huge.gguf", gguf_header(big, 0).b, "tensor count 4611686018427387904 cannot fit"});
    c.push_back({"kv_count_huge.gguf", gguf_header(0, big).b, "metadata key/value count 4611686018427387904 cannot"});
    c.push_back({"str_past_eof.gguf", kv1().u64(20).raw("abcdef").b,
                 "metadata key of metadata entry #0: 20 bytes at offset 32 run past the end of the file"});
    c.push_back({"str_huge.gguf", kv1().u64(uint64_t(1) << 63).zeros(16).b,
                 "metadata key length 9223372036854775808 in metadata entry #0 is larger than the whole file"});
    c.push_back({"value_str_huge.gguf", kv1().str("k").u32(T_STR).u64(~uint64_t(0)).b,
                 "string value length 18446744073709551615 in metadata key 'k' is larger than the whole file"});
    c.push_back({"key_too_long.gguf", kv1().str(std::string(65536, 'k')).u32(T_U32).u32(1).b,
                 "metadata key of 65536 bytes exceeds the GGUF limit of 65535 bytes"});
    c.push_back({"array_huge.gguf", kv1().str("a").u32(T_ARR).u32(T_U32).u64(uint64_t(1) << 40).zeros(64).b,
                 "array count 1099511627776 of u32 cannot fit"});
    c.push_back({"array_str_huge.gguf", kv1().str("a").u32(T_ARR).u32(T_STR).u64(100).zeros(64).b,
                 "array count 100 of str cannot fit"});
    c.push_back({"bad_type.gguf", kv1().str("k").u32(13).u32(0).b, "metadata key 'k' has unknown value type 13"});
    c.push_back({"nested_array.gguf", kv1().str("k").u32(T_ARR).u32(T_ARR).u64(1).b, "is an array of arrays"});
    c.push_back({"array_bad_elem.gguf", kv1().str("k").u32(T_ARR).u32(77).u64(1).b,
                 "is an array with unknown element type 77"});
    c.push_back(
        {"bool_2.gguf", kv1().str("k").u32(T_BOOL).u8(2).b, "metadata key 'k' has bool value 2 (must be 0 or 1)"});
    c.push_back({"trunc_value.gguf", kv1().str("k").u32(T_U32).raw("ab").b,
                 "truncated file: u32 value of metadata key 'k' needs 4 bytes"});
    c.push_back({"dup_key.gguf", gguf_header(0, 2).kv_u32("a", 1).kv_u32("a", 2).b, "duplicate metadata key 'a'"});
    c.push_back({"align_u64.gguf", kv1().str("general.alignment").u32(T_U64).u64(32).b,
                 "general.alignment must be a u32, found u64"});
    c.push_back({"align_0.gguf", kv1().kv_u32("general.alignment", 0).b, "general.alignment is 0"});
    c.push_back(
        {"align_48.gguf", kv1().kv_u32("general.alignment", 48).b, "general.alignment 48 is not a power of two"});
    c.push_back({"arch_not_str.gguf", kv1().kv_u32("general.architecture", 7).b,
                 "general.architecture must be a string, found u32"});
    c.push_back({"name_65.gguf", with_tensor(gguf_header(1, 0), std::string(65, 'n')).b,
                 "tensor name of 65 bytes exceeds the GGUF limit of 64 bytes"});
    c.push_back({"dup_tensor.gguf",
                 gguf_header(2, 0).tensor("w", {32}, F32, 0).tensor("w", {32}, F32, 128).pad(32).zeros(256).b,
                 "duplicate tensor name 'w'"});
    c.push_back({"ndims_5.gguf", with_tensor(gguf_header(1, 0), "w", {32, 1, 1, 1, 1}).b,
                 "tensor 'w' has 5 dimensions (GGUF allows at most 4)"});
    c.push_back(
        {"dim_0.gguf", with_tensor(gguf_header(1, 0), "w", {32, 0}).b, "tensor 'w' has a zero-sized dimension ne[1]"});
    c.push_back({"dim_negative.gguf", with_tensor(gguf_header(1, 0), "w", {32, ~uint64_t(0)}).b,
                 "tensor 'w' dimension ne[1] = 18446744073709551615 is out of range"});
    c.push_back({"numel_overflow.gguf", with_tensor(gguf_header(1, 0), "w", {uint64_t(1) << 32, uint64_t(1) << 32}).b,
                 "tensor 'w' element count: size overflows 64 bits"});
    c.push_back({"numel_int64.gguf", with_tensor(gguf_header(1, 0), "w", {uint64_t(1) << 62, 2}).b,
                 "elements, more than int64 can count"});
    c.push_back({"bytes_overflow.gguf", with_tensor(gguf_header(1, 0), "w", {uint64_t(1) << 61, 2}, I64).b,
                 "tensor 'w' byte size: size overflows 64 bits"});
    c.push_back(
        {"type_removed.gguf", with_tensor(gguf_header(1, 0), "w", {32}, 4).b, "tensor 'w' has unknown ggml type 4"});
    c.push_back(
        {"type_99.gguf", with_tensor(gguf_header(1, 0), "w", {32}, 99).b, "tensor 'w' has unknown ggml type 99"});
    c.push_back({"block_33.gguf", with_tensor(gguf_header(1, 0), "w", {33}, Q4_0).b,
                 "ne[0] = 33 is not a multiple of the Q4_0 block size 32"});
    c.push_back({"misaligned.gguf", with_tensor(gguf_header(1, 0), "w", {32}, F32, 3).b,
                 "tensor 'w' data offset 3 is not a multiple of the alignment 32"});
    c.push_back({"past_eof.gguf", with_tensor(gguf_header(1, 0), "w", {1024}).b, "runs past the end of the file"});
    c.push_back({"offset_overflow.gguf", with_tensor(gguf_header(1, 0), "w", {32}, F32, ~uint64_t(31)).b,
                 "tensor 'w' data offset: size overflows 64 bits"});
    c.push_back({"overlap.gguf",
                 gguf_header(2, 0).tensor("a", {32}, F32, 0).tensor("b", {32}, F32, 96).pad(32).zeros(256).b,
                 "tensors 'a' and 'b' overlap"});
    c.push_back({"trunc_tensor_info.gguf", gguf_header(1, 0).str("w").u32(2).u64(32).zeros(4).b,
                 "truncated file: dimension of tensor 'w'"});
    c.push_back({"unknown.bin", "hello world, not a model", "not a GGUF or safetensors file"});
    return c;
}

std::string st(const std::string& json, size_t data) { return safetensors_bytes(json, data); }

std::vector<Case> safetensors_cases() {
    std::vector<Case> c;
    auto one = [](const std::string& entry) { return "{\"t\":" + entry + "}"; };
    c.push_back({"small.safetensors", "abc", "bytes is too small for a safetensors header"});
    c.push_back({"hdr_gt_file.safetensors", Bytes().u64(1000).raw("{}").b,
                 "safetensors header size 1000 is larger than the rest of the file (2 bytes)"});
    c.push_back(
        {"hdr_huge.safetensors", Bytes().u64(uint64_t(1) << 62).raw("{}").b, "exceeds the limit of 100000000 bytes"});
    c.push_back({"bad_json.safetensors", st("{\"t\": ", 0), "invalid JSON: unexpected end of input"});
    c.push_back({"trailing.safetensors", st("{} x", 0), "invalid JSON: unexpected trailing characters"});
    c.push_back({"deep.safetensors", st(std::string(100, '[') + std::string(100, ']'), 0), "nesting deeper than 64"});
    c.push_back({"bad_utf8.safetensors", st("{\"\xff\":1}", 0), "invalid UTF-8 byte"});
    c.push_back({"surrogate.safetensors", st("{\"\\ud800x\":1}", 0), "high surrogate not followed by a low surrogate"});
    c.push_back({"dup_json_key.safetensors", st("{\"a\":1,\"a\":2}", 0), "duplicate key \"a\""});
    c.push_back({"not_object.safetensors", st("[1,2]", 0), "safetensors header is not a JSON object"});
    c.push_back({"entry_not_object.safetensors", st(one("5"), 0), "tensor 't': header entry is not a JSON object"});
    c.push_back(
        {"no_dtype.safetensors", st(one("{\"shape\":[1],\"data_offsets\":[0,4]}"), 4), "tensor 't' has no dtype"});
    c.push_back({"dtype_not_str.safetensors", st(one("{\"dtype\":1,\"shape\":[1],\"data_offsets\":[0,4]}"), 4),
                 "tensor 't' dtype is not a string"});
    c.push_back({"unknown_dtype.safetensors", st(one("{\"dtype\":\"Q9\",\"shape\":[1],\"data_offsets\":[0,4]}"), 4),
                 "tensor 't' has unknown dtype 'Q9'"});
    c.push_back(
        {"no_shape.safetensors", st(one("{\"dtype\":\"F32\",\"data_offsets\":[0,4]}"), 4), "tensor 't' has no shape"});
    c.push_back({"shape_float.safetensors", st(one("{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}"), 8),
                 "tensor 't' shape entry #0 is not a non-negative integer"});
    c.push_back({"shape_overflow.safetensors",
                 st(one("{\"dtype\":\"F32\",\"shape\":[1099511627776,1099511627776],\"data_offsets\":[0,8]}"), 8),
                 "tensor 't' element count: size overflows 64 bits"});
    c.push_back(
        {"no_offsets.safetensors", st(one("{\"dtype\":\"F32\",\"shape\":[1]}"), 4), "tensor 't' has no data_offsets"});
    c.push_back({"offsets_arity.safetensors", st(one("{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}"), 4),
                 "tensor 't' data_offsets must be [begin, end]"});
    c.push_back({"offsets_neg.safetensors", st(one("{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}"), 4),
                 "data_offsets entries must be non-negative integers"});
    c.push_back({"begin_gt_end.safetensors", st(one("{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]}"), 8),
                 "tensor 't' data_offsets begin 8 > end 0"});
    c.push_back({"size_mismatch.safetensors", st(one("{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}"), 8),
                 "tensor 't' data_offsets span 4 bytes but F32 [2] needs 8"});
    c.push_back({"past_end.safetensors", st(one("{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}"), 8),
                 "tensor 't' data_offsets end 12 is past the end of the data buffer (8 bytes)"});
    c.push_back({"overlap.safetensors",
                 st("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                    "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                    12),
                 "tensors 'a' and 'b' overlap in the data buffer"});
    c.push_back({"f4_odd.safetensors", st(one("{\"dtype\":\"F4\",\"shape\":[3],\"data_offsets\":[0,1]}"), 2),
                 "3 elements of F4 do not fill whole bytes"});
    c.push_back({"meta_not_obj.safetensors", st("{\"__metadata__\":[1]}", 0), "__metadata__ is not a JSON object"});
    c.push_back(
        {"meta_not_str.safetensors", st("{\"__metadata__\":{\"x\":1}}", 0), "__metadata__ entry 'x' is not a string"});
    return c;
}

std::string shard_json(const std::string& name) {
    return "{\"" + name + "\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}";
}

// Folders: {file name -> bytes} plus the expected error.
struct FolderCase {
    std::string name;
    std::map<std::string, std::string> files;
    std::string expect;
};

std::vector<FolderCase> folder_cases() {
    const std::string cfg = "{\"model_type\":\"llama\"}";
    auto idx = [](const std::string& wm) { return "{\"metadata\":{},\"weight_map\":" + wm + "}"; };
    std::vector<FolderCase> c;
    c.push_back({"no_config", {{"model.safetensors", st(shard_json("a"), 4)}}, "no config.json (a safetensors model"});
    c.push_back({"no_weights", {{"config.json", cfg}}, "no model.safetensors or model.safetensors.index.json"});
    c.push_back({"config_not_obj",
                 {{"config.json", "[1]"}, {"model.safetensors", st(shard_json("a"), 4)}},
                 "config.json: top level is not a JSON object"});
    c.push_back({"config_bad_json",
                 {{"config.json", "{\"a\":tru}"}, {"model.safetensors", st(shard_json("a"), 4)}},
                 "config.json: invalid JSON: invalid literal"});
    c.push_back({"model_type_int",
                 {{"config.json", "{\"model_type\":3}"}, {"model.safetensors", st(shard_json("a"), 4)}},
                 "config.json: model_type is not a string"});
    c.push_back({"missing_shard",
                 {{"config.json", cfg}, {"model.safetensors.index.json", idx("{\"a\":\"s1.safetensors\"}")}},
                 "s1.safetensors: shard listed in model.safetensors.index.json does not exist"});
    c.push_back({"tensor_not_in_shard",
                 {{"config.json", cfg},
                  {"model.safetensors.index.json", idx("{\"a\":\"s1.safetensors\",\"b\":\"s1.safetensors\"}")},
                  {"s1.safetensors", st(shard_json("a"), 4)}},
                 "tensor 'b' is mapped to shard 's1.safetensors' but that shard does not contain it"});
    c.push_back({"tensor_wrong_shard",
                 {{"config.json", cfg},
                  {"model.safetensors.index.json", idx("{\"a\":\"s2.safetensors\",\"b\":\"s1.safetensors\"}")},
                  {"s1.safetensors", st(shard_json("a"), 4)},
                  {"s2.safetensors", st(shard_json("b"), 4)}},
                 "tensor 'a' is mapped to shard 's2.safetensors' but"});
    c.push_back({"tensor_twice",
                 {{"config.json", cfg},
                  {"model.safetensors.index.json", idx("{\"a\":\"s1.safetensors\",\"b\":\"s2.safetensors\"}")},
                  {"s1.safetensors", st(shard_json("a"), 4)},
                  {"s2.safetensors", st(shard_json("a"), 4)}},
                 "tensor 'a' is also in shard 's1.safetensors'"});
    c.push_back({"no_weight_map",
                 {{"config.json", cfg}, {"model.safetensors.index.json", "{\"metadata\":{}}"}},
                 "model.safetensors.index.json: no \"weight_map\" object"});
    c.push_back({"weight_map_int",
                 {{"config.json", cfg}, {"model.safetensors.index.json", idx("{\"a\":1}")}},
                 "weight_map entry 'a' is not a string"});
    c.push_back({"shard_escape",
                 {{"config.json", cfg}, {"model.safetensors.index.json", idx("{\"a\":\"../x.safetensors\"}")}},
                 "shard '../x.safetensors' must be a relative path inside the folder"});
    c.push_back({"bad_shard",
                 {{"config.json", cfg},
                  {"model.safetensors.index.json", idx("{\"a\":\"s1.safetensors\"}")},
                  {"s1.safetensors", st(shard_json("a"), 0)}},
                 "s1.safetensors: tensor 'a' data_offsets end 4 is past the end of the data buffer (0 bytes)"});
    c.push_back({"dotted_clash",
                 {{"config.json", "{\"a.b\":1,\"a\":{\"b\":2}}"}, {"model.safetensors", st(shard_json("a"), 4)}},
                 "key 'a.b' appears twice once nested keys are dotted"});
    return c;
}

// The message without its leading "<path>: ".
std::string problem(const std::string& msg) {
    auto k = msg.find(": ");
    return k == std::string::npos ? msg : msg.substr(k + 2);
}

std::string reject(const std::string& path) {
    try {
        auto src = imp::open_model(path);
    } catch (const imp::Error& e) {
        return e.what();
    }
    return "(accepted)";
}

}  // namespace

TEST_CASE("model malformed: the bases of the malformed cases are valid", "[model][malformed]") {
    TempDir tmp("base");
    auto g = imp::open_model(tmp.file("ok.gguf", gguf_valid()));
    CHECK(g->architecture() == "llama");
    REQUIRE(g->tensors().size() == 1);
    CHECK(g->tensors()[0].shape == std::vector<int64_t>{32});
    auto s = imp::open_model(tmp.file("ok.safetensors", st(shard_json("a"), 4)));
    CHECK(s->tensors().size() == 1);
    // Same bytes under another name are still recognised by content.
    CHECK(imp::open_model(tmp.file("ok.bin", st(shard_json("a"), 4)))->kind() == imp::ContainerKind::Safetensors);
    CHECK(imp::open_model(tmp.file("ok2.bin", gguf_valid()))->kind() == imp::ContainerKind::GGUF);
}

TEST_CASE("model gguf: unusual but valid GGUF files are accepted", "[model][gguf]") {
    TempDir tmp("unusual");
    // v2, alignment 8, tensors out of file order, a 0-dim (scalar) tensor, a gap between tensors
    Bytes b = gguf_header(3, 1, 2).kv_u32("general.alignment", 8);
    b.tensor("late", {4}, F32, 48).tensor("scalar", {}, F32, 0).tensor("mid", {2}, F32, 16).pad(8);
    size_t data = b.b.size();
    b.zeros(64);
    auto src = imp::open_model(tmp.file("unusual.gguf", b.b));
    REQUIRE(src->tensors().size() == 3);
    CHECK(src->get("late").file_offset == data + 48);
    CHECK(src->get("scalar").shape.empty());
    CHECK(src->get("scalar").nbytes == 4);
    CHECK(src->get("mid").shape == std::vector<int64_t>{2});
    CHECK(src->architecture().empty());
    // no tensors at all, no padding needed
    CHECK(imp::open_model(tmp.file("empty.gguf", gguf_header(0, 0).b))->tensors().empty());
}

TEST_CASE("model malformed: bad files are rejected, each with its own message", "[model][malformed]") {
    TempDir tmp("malformed");
    std::map<std::string, std::string> seen;  // problem text -> case, to prove the messages are distinct
    size_t n = 0;
    auto check = [&](const std::string& name, const std::string& path, const std::string& expect) {
        std::string msg = reject(path);
        INFO("case " << name << ": " << msg);
        CHECK_THAT(msg, Catch::Contains(expect));
        CHECK(msg.find('\n') == std::string::npos);
        CHECK(msg.rfind(tmp.dir.string(), 0) == 0);  // starts with the offending path
        auto [it, fresh] = seen.emplace(problem(msg), name);
        INFO("same message as case " << it->second);
        CHECK(fresh);
        ++n;
    };
    for (const auto& c : gguf_cases()) check(c.name, tmp.file(c.name, c.bytes), c.expect);
    for (const auto& c : safetensors_cases()) check(c.name, tmp.file(c.name, c.bytes), c.expect);
    for (const auto& c : folder_cases()) {
        for (const auto& [f, bytes] : c.files) tmp.file(c.name + "/" + f, bytes);
        check(c.name, (tmp.dir / c.name).string(), c.expect);
    }
    check("no_such_path", (tmp.dir / "does_not_exist.gguf").string(), "does_not_exist.gguf: no such file or directory");
    CHECK(n >= 80);
}

TEST_CASE("model malformed: every truncation and random corruption fails cleanly", "[model][malformed]") {
    std::vector<std::string> inputs;
    for (const char* f : {"all_types.gguf", "align64.gguf", "tiny.safetensors"}) {
        auto m = imp::MappedFile::open(imp::test::fixture_dir() + "/" + f);
        inputs.emplace_back(reinterpret_cast<const char*>(m->data()), m->size());
    }
    std::mt19937_64 rng(42);
    size_t accepted = 0, rejected = 0, bad = 0;
    // In memory (no temp files): the readers see exactly what open_model would hand them.
    auto attempt = [&](const std::string& bytes, bool gguf) {
        try {
            auto file = imp::MappedFile::from_bytes("fuzz.bin", bytes);
            std::unique_ptr<imp::ModelSource> src;
            if (gguf)
                src = std::make_unique<imp::GgufSource>(file);
            else
                src = imp::SafetensorsSource::open_file(file);
            for (const auto& t : src->tensors())  // whatever was accepted must be in bounds
                if (t.file_offset + t.nbytes > bytes.size() || t.data != file->data() + t.file_offset) ++bad;
            ++accepted;
        } catch (const imp::Error& e) {
            if (std::string(e.what()).rfind("fuzz.bin: ", 0) != 0) ++bad;
            ++rejected;
        }
    };
    for (size_t i = 0; i < inputs.size(); ++i) {
        const std::string& in = inputs[i];
        const bool gguf = i < 2;
        for (size_t len = 0; len < in.size(); len += (len < 2048 ? 1 : 7)) attempt(in.substr(0, len), gguf);
        for (int k = 0; k < 2000; ++k) {
            std::string m = in;
            size_t pos = rng() % std::min<size_t>(m.size(), 2048);  // corrupt the header region
            int mode = int(rng() % 3);
            if (mode == 0) m[pos] = char(rng());
            if (mode == 1) m[pos] ^= char(1 << (rng() % 8));
            if (mode == 2)
                for (size_t j = 0; j < 8 && pos + j < m.size(); ++j) m[pos + j] = char(0xff);
            attempt(m, gguf);
        }
    }
    CHECK(bad == 0);
    CHECK(rejected > 5000);
    CHECK(accepted > 0);  // some corruptions only touch values, not structure
}
