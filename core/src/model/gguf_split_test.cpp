// Split GGUFs as llama.cpp's gguf-split writes them (split.no u16, split.count u16, split.tensors.count i32; parts
// named <prefix>-0000K-of-0000N.gguf): opened from the first part, every part's tensors are there with their own
// bytes; a missing, misnamed, misnumbered or overlapping part, or a part opened on its own, is one clear error.
#include <catch2/catch.hpp>

#include <cstring>

#include "imp/error.h"
#include "imp/model.h"
#include "model/gguf_reader.h"
#include "model/inspect.h"
#include "model/mapped_file.h"
#include "model/reader_test_util.h"

using imp::test::Bytes;
using imp::test::gguf_header;
using imp::test::TempDir;

namespace {

constexpr uint32_t F32 = 0;

// One part: `names` tensors of 8 floats each, tensor k of part p filled with 100 p + k + 0.5.
std::string part(int no, int count, const std::vector<std::string>& names, int total_tensors, bool first_keys = true) {
    const bool first = no == 0 && first_keys;
    Bytes b = gguf_header(names.size(), first ? 4 : 3);
    if (first) b.kv_str("general.architecture", "llama");
    b.kv_u16("split.no", uint16_t(no)).kv_u16("split.count", uint16_t(count)).kv_i32("split.tensors.count", total_tensors);
    for (size_t k = 0; k < names.size(); ++k) b.tensor(names[k], {8}, F32, k * 32);
    b.pad(32);
    for (size_t k = 0; k < names.size(); ++k)
        for (int i = 0; i < 8; ++i) b.put(float(100 * no + int(k)) + 0.5f);
    return b.b;
}

float first_value(const imp::TensorInfo& t) {
    float v;
    std::memcpy(&v, t.data, sizeof v);
    return v;
}

}  // namespace

TEST_CASE("model gguf: a split GGUF opens from its first part with every part's tensors", "[model][gguf]") {
    TempDir d("gguf_split");
    const std::string p1 = d.file("m-00001-of-00003.gguf", part(0, 3, {"a", "b"}, 5));
    d.file("m-00002-of-00003.gguf", part(1, 3, {"c"}, 5));
    d.file("m-00003-of-00003.gguf", part(2, 3, {"d", "e"}, 5));
    auto src = imp::open_model(p1);
    REQUIRE(src->tensors().size() == 5);
    CHECK(src->architecture() == "llama");
    const std::vector<std::pair<std::string, float>> want = {{"a", 0.5f}, {"b", 1.5f}, {"c", 100.5f}, {"d", 200.5f},
                                                             {"e", 201.5f}};
    for (const auto& [name, v] : want) {
        const imp::TensorInfo* t = src->find(name);
        REQUIRE(t != nullptr);
        CHECK(first_value(*t) == v);
    }
    CHECK(src->find("c")->file.find("m-00002-of-00003.gguf") != std::string::npos);
    uint64_t bytes = 0;
    for (int k = 1; k <= 3; ++k)
        bytes += imp::MappedFile::open((d.dir / ("m-0000" + std::to_string(k) + "-of-00003.gguf")).string())->size();
    CHECK(src->file_bytes() == bytes);
    CHECK(imp::inspect_model(*src).find("split in 3 files") != std::string::npos);
}

TEST_CASE("model gguf: a broken split GGUF is one error naming the part", "[model][gguf]") {
    TempDir d("gguf_split_bad");
    auto expect = [](const std::string& path, const std::string& what) {
        INFO(path);
        CHECK_THROWS_WITH(imp::open_model(path), Catch::Contains(what));
    };
    // The second part opened on its own.
    d.file("a-00001-of-00002.gguf", part(0, 2, {"x"}, 2));
    const std::string a2 = d.file("a-00002-of-00002.gguf", part(1, 2, {"y"}, 2));
    expect(a2, "a-00002-of-00002.gguf: is part 2 of 2 of a split GGUF; open its first part");
    // A part missing.
    const std::string b1 = d.file("b-00001-of-00003.gguf", part(0, 3, {"x"}, 3));
    d.file("b-00002-of-00003.gguf", part(1, 3, {"y"}, 3));
    expect(b1, "b-00003-of-00003.gguf");
    // A first part whose name does not say where the others are.
    expect(d.file("renamed.gguf", part(0, 2, {"x"}, 2)),
           "renamed.gguf: split.count = 2, but the file name does not end in '-00001-of-00002.gguf'");
    // A part numbered for another place, a tensor in two parts, a tensor count that does not add up.
    const std::string c1 = d.file("c-00001-of-00002.gguf", part(0, 2, {"x"}, 2));
    d.file("c-00002-of-00002.gguf", part(0, 2, {"y"}, 2, false));
    expect(c1, "c-00002-of-00002.gguf: split.no = 0, split.count = 2; expected 1 and 2");
    const std::string e1 = d.file("e-00001-of-00002.gguf", part(0, 2, {"x"}, 2));
    d.file("e-00002-of-00002.gguf", part(1, 2, {"x"}, 2));
    expect(e1, "e-00002-of-00002.gguf: tensor 'x' is also in an earlier part");
    const std::string f1 = d.file("f-00001-of-00002.gguf", part(0, 2, {"x"}, 3));
    d.file("f-00002-of-00002.gguf", part(1, 2, {"y"}, 3));
    expect(f1, "split.tensors.count = 3, but its 2 parts hold 2 tensors");
}
