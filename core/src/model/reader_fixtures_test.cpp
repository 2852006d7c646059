// Reads back the fixtures written by tests/tools/make_reader_fixtures.py and checks every metadata key (type and
// value), every tensor (type, shape, bytes, offset, SHA-256 of the data), and the container facts.
#include <catch2/catch.hpp>

#include <cstring>
#include <filesystem>
#include <set>

#include "imp/error.h"
#include "imp/model.h"
#include "model/gguf_reader.h"
#include "model/inspect.h"
#include "model/json.h"
#include "model/mapped_file.h"
#include "model/reader_test_util.h"
#include "model/safetensors_reader.h"

using imp::json::Value;
using imp::test::fixture_dir;

namespace {

Value load_expected() {
    auto f = imp::MappedFile::open(fixture_dir() + "/expected.json");
    return imp::json::parse(std::string_view(reinterpret_cast<const char*>(f->data()), f->size()), f->path());
}

const Value& at(const Value& v, const char* key) {
    const Value* p = v.get(key);
    INFO("expected.json key " << key);
    REQUIRE(p != nullptr);
    return *p;
}

void check_value(const imp::MetaValue& got, const std::string& type, const Value& want, const std::string& key) {
    INFO("metadata key " << key << " (" << type << ")");
    CHECK(got.type == type);
    if (type.rfind("arr[", 0) == 0) {
        REQUIRE(got.is_array());
        const auto& arr = got.as_array(key);
        REQUIRE(want.is_array());
        REQUIRE(arr.size() == want.items.size());
        std::string elem = type.substr(4, type.size() - 5);
        for (size_t i = 0; i < arr.size(); ++i) {
            // A mixed JSON array has per-element types; otherwise all elements carry the array's element type.
            std::string et = elem == "mixed" ? arr[i].type : elem;
            check_value(arr[i], et, want.items[i], key + "[" + std::to_string(i) + "]");
        }
        return;
    }
    switch (want.kind) {
        case Value::Kind::Bool:
            REQUIRE(got.is_bool());
            CHECK(got.as_bool(key) == want.b);
            break;
        case Value::Kind::Int:
        case Value::Kind::UInt:
            REQUIRE(got.is_int());
            if (type[0] == 'u') CHECK(got.v.index() == 1);  // unsigned GGUF types stay unsigned
            if (type[0] == 'i' && type != "int") CHECK(got.v.index() == 0);
            if (want.kind == Value::Kind::UInt) {
                REQUIRE(got.v.index() == 1);
                CHECK(std::get<uint64_t>(got.v) == want.u);
            } else if (got.v.index() == 1) {
                REQUIRE(want.i >= 0);
                CHECK(std::get<uint64_t>(got.v) == uint64_t(want.i));
            } else {
                CHECK(std::get<int64_t>(got.v) == want.i);
            }
            break;
        case Value::Kind::Float:
            REQUIRE(got.is_float());
            CHECK(got.as_float(key) == want.f);  // exact: the fixture stores the value the file holds
            break;
        case Value::Kind::String:
            REQUIRE(got.is_string());
            CHECK(got.as_string(key) == want.s);
            break;
        case Value::Kind::Null:  // null inside a config.json array
            CHECK(got.type == "null");
            break;
        default: FAIL("unexpected JSON kind in expected.json for " << key);
    }
}

void check_metadata(const imp::ModelSource& src, const Value& want) {
    const auto& md = src.metadata();
    CHECK(md.all().size() == want.items.size());
    for (const auto& e : want.items) {
        const std::string& key = at(e, "key").s;
        const imp::MetaValue* v = md.find(key);
        INFO("metadata key " << key);
        REQUIRE(v != nullptr);
        check_value(*v, at(e, "type").s, at(e, "value"), key);
    }
}

void check_tensors(const imp::ModelSource& src, const Value& want, bool gguf) {
    const auto& ts = src.tensors();
    REQUIRE(ts.size() == want.items.size());
    for (size_t i = 0; i < ts.size(); ++i) {
        const Value& w = want.items[i];
        const std::string& name = at(w, "name").s;
        INFO("tensor " << name);
        CHECK(ts[i].name == name);  // file order is kept
        const imp::TensorInfo* t = src.find(name);
        REQUIRE(t == &ts[i]);
        CHECK(t->type == at(w, "type").s);
        std::vector<int64_t> shape;
        for (const auto& d : at(w, "shape").items) shape.push_back(d.i);
        CHECK(t->shape == shape);
        uint64_t nbytes = 0, offset = 0;
        REQUIRE(at(w, "nbytes").as_u64(nbytes));
        REQUIRE(at(w, "offset").as_u64(offset));
        CHECK(t->nbytes == nbytes);
        CHECK(t->file_offset == offset);
        if (gguf) {
            uint64_t id = 0;
            REQUIRE(at(w, "ggml_type").as_u64(id));
            CHECK(t->ggml_type == id);
        } else {
            CHECK(t->ggml_type == UINT32_MAX);
            CHECK(std::filesystem::path(t->file).filename() == at(w, "file").s);
        }
        REQUIRE((t->data != nullptr || t->nbytes == 0));
        CHECK(imp::test::sha256_hex(t->data, t->nbytes) == at(w, "sha256").s);
    }
}

}  // namespace

TEST_CASE("model: sha256 helper matches known vectors", "[model]") {
    CHECK(imp::test::sha256_hex(nullptr, 0) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    std::string abc = "abc";
    CHECK(imp::test::sha256_hex(reinterpret_cast<const uint8_t*>(abc.data()), 3) ==
          "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST_CASE("model gguf: GGUF fixtures read back exactly", "[model][gguf]") {
    Value exp = load_expected();
    const Value& files = at(exp, "gguf");
    REQUIRE(files.items.size() >= 2);
    for (const auto& f : files.items) {
        std::string path = fixture_dir() + "/" + at(f, "file").s;
        INFO(path);
        auto src = imp::open_model(path);
        REQUIRE(src->kind() == imp::ContainerKind::GGUF);
        CHECK(src->path() == path);
        CHECK(src->architecture() == at(f, "architecture").s);
        CHECK(int64_t(src->file_bytes()) == at(f, "size").i);
        auto* g = dynamic_cast<const imp::GgufSource*>(src.get());
        REQUIRE(g != nullptr);
        CHECK(int64_t(g->version()) == at(f, "version").i);
        CHECK(int64_t(g->alignment()) == at(f, "alignment").i);
        CHECK(g->data_offset() % g->alignment() == 0);
        check_metadata(*src, at(f, "metadata"));
        check_tensors(*src, at(f, "tensors"), true);
        for (const auto& t : src->tensors()) CHECK((t.file_offset - g->data_offset()) % g->alignment() == 0);
        CHECK(src->find("no.such.tensor") == nullptr);
        CHECK_THROWS_WITH(src->get("no.such.tensor"), Catch::Contains(path) && Catch::Contains("'no.such.tensor'"));
    }
}

TEST_CASE("model gguf: fixture covers every metadata type and common tensor types", "[model][gguf]") {
    auto src = imp::open_model(fixture_dir() + "/all_types.gguf");
    std::set<std::string> types, ttypes;
    for (const auto& [k, v] : src->metadata().all()) types.insert(v.type);
    for (const char* t :
         {"u8",       "i8",       "u16",      "i16",       "u32",      "i32",      "f32",      "bool",
          "str",      "u64",      "i64",      "f64",       "arr[u8]",  "arr[i8]",  "arr[u16]", "arr[i16]",
          "arr[u32]", "arr[i32]", "arr[f32]", "arr[bool]", "arr[str]", "arr[u64]", "arr[i64]", "arr[f64]"})
        CHECK(types.count(t) == 1);
    for (const auto& t : src->tensors()) ttypes.insert(t.type);
    for (const char* t : {"F32",  "F16",  "BF16", "F64",  "I8",   "I16",  "I32",  "I64",    "Q4_0",   "Q4_1", "Q5_0",
                          "Q5_1", "Q8_0", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "IQ4_NL", "IQ4_XS", "MXFP4"})
        CHECK(ttypes.count(t) == 1);
    // ggml ne order is reversed into outermost-first shapes
    CHECK(src->get("quant.q4_k").shape == std::vector<int64_t>{2, 256});
    CHECK(src->get("plain.f32_4d").shape == std::vector<int64_t>{1, 2, 3, 4});
    CHECK(src->get("plain.scalar").shape.empty());
    CHECK(src->get("plain.scalar").numel() == 1);
    float scalar;
    std::memcpy(&scalar, src->get("plain.scalar").data, 4);
    CHECK(scalar == 1.5f);
    CHECK(src->metadata().get_string("general.architecture") == "llama");
    CHECK(src->metadata().get_int("test.u32") == 4000000000LL);
    CHECK(src->metadata().get_array("tokenizer.ggml.tokens")[2].as_string("t") == "\xC4\xA0Paris");
}

TEST_CASE("model safetensors: file, sharded folder and single folder read back exactly", "[model][safetensors]") {
    Value exp = load_expected();
    const Value& entries = at(exp, "safetensors");
    REQUIRE(entries.items.size() == 3);
    for (const auto& e : entries.items) {
        std::string path = fixture_dir() + "/" + at(e, "path").s;
        INFO(path);
        auto src = imp::open_model(path);
        REQUIRE(src->kind() == imp::ContainerKind::Safetensors);
        CHECK(src->path() == path);
        CHECK(src->architecture() == at(e, "architecture").s);
        CHECK(int64_t(src->file_bytes()) == at(e, "size").i);
        check_metadata(*src, at(e, "metadata"));
        check_tensors(*src, at(e, "tensors"), false);
    }
}

TEST_CASE("model safetensors: config.json flattening keeps JSON number types", "[model][safetensors]") {
    auto src = imp::open_model(fixture_dir() + "/sharded");
    const auto& md = src->metadata();
    CHECK(md.get_float("rope_scaling.factor") == 8.0);
    CHECK(md.find("rope_scaling.factor")->type == "float");
    CHECK(md.find("rope_scaling.low_freq_factor")->type == "int");
    CHECK(md.get_int("rope_scaling.original.max") == 8192);
    CHECK(md.get_float("rms_norm_eps") == 1e-05);
    CHECK(md.get_array("eos_token_id").size() == 2);
    CHECK_FALSE(md.has("sliding_window"));  // null: absent
    CHECK(md.get_string("escapes") == "q\"b\\s/\t\n\xC3\xA9\xF0\x9F\x98\x80\xE2\x82\xAC");
    CHECK(md.get_string("__safetensors.format") == "pt");
    auto* st = dynamic_cast<const imp::SafetensorsSource*>(src.get());
    REQUIRE(st);
    CHECK(st->files().size() == 2);
    CHECK(src->get("lm_head.weight").file.find("model-00002-of-00002.safetensors") != std::string::npos);
}

TEST_CASE("model inspect: prints container, metadata and tensor table", "[model][inspect]") {
    auto g = imp::open_model(fixture_dir() + "/all_types.gguf");
    std::string text = imp::inspect_model(*g);
    CHECK_THAT(text, Catch::Contains("GGUF v3, alignment 32"));
    CHECK_THAT(text, Catch::Contains("architecture  llama"));
    CHECK_THAT(text, Catch::Contains("test.arr.long"));
    CHECK_THAT(text, Catch::Contains("... (40 items)"));
    CHECK_THAT(text, Catch::Contains("arr[str]"));
    CHECK_THAT(text, Catch::Contains("quant.q6_k"));
    CHECK_THAT(text, Catch::Contains("[2, 256]"));
    CHECK_THAT(text, Catch::Contains("tensors       " + std::to_string(g->tensors().size())));
    CHECK_THAT(text, Catch::Contains("total         " + std::to_string(g->tensors().size()) + " tensors"));
    auto s = imp::open_model(fixture_dir() + "/sharded");
    text = imp::inspect_model(*s);
    CHECK_THAT(text, Catch::Contains("safetensors, 2 files"));
    CHECK_THAT(text, Catch::Contains("model-00002-of-00002.safetensors"));
    CHECK_THAT(text, Catch::Contains("rope_scaling.factor"));
    CHECK_THAT(text, Catch::Contains("architecture  llama"));
}

TEST_CASE("model gguf: the real SmolLM2 Q4_1 file", "[model][gguf]") {
    std::string path = std::string(IMP_SOURCE_DIR) + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
    {
        INFO(path << " is fetched by scripts/fetch-model (scripts/test runs it first)");
        REQUIRE(std::filesystem::exists(path));
    }
    auto src = imp::open_model(path);
    CHECK(src->architecture() == "llama");
    CHECK(src->metadata().get_int("llama.block_count") == 30);
    CHECK(src->metadata().get_array("tokenizer.ggml.tokens").size() == 49152);
    CHECK(src->tensors().size() == 272);
    const auto& emb = src->get("token_embd.weight");
    CHECK(emb.type == "Q8_0");
    CHECK(emb.shape == std::vector<int64_t>{49152, 576});
    CHECK(emb.nbytes == 49152ull * 576 / 32 * 34);
    CHECK(src->get("blk.0.ffn_down.weight").shape == std::vector<int64_t>{576, 1536});
    uint64_t total = 0;
    for (const auto& t : src->tensors()) total += t.nbytes;
    CHECK(total <= src->file_bytes());
}
