// Dequantization of every type equals gguf-py's gguf.quants.dequantize bit for bit (fixtures from
// make_fixtures.py), for every kernel build this CPU runs, and through GgmlFormat::dequantize.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "ggml_format.h"
#include "ggml_types.h"
#include "imp/dtype.h"
#include "imp/error.h"
#include "kernels.h"

using namespace imp::ggml;

namespace {

std::vector<uint8_t> read_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw std::runtime_error("cannot open fixture " + path);
    return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

std::string fixture(const std::string& name) {
    return std::string(IMP_SOURCE_DIR) + "/plugins/quant_ggml/tests/fixtures/" + name;
}

struct Fixture {
    std::vector<uint8_t> raw;
    std::vector<float> expected;
};

Fixture load_fixture(const TypeInfo& t) {
    Fixture fx;
    fx.raw = read_file(fixture(std::string(t.name) + ".bin"));
    const auto exp = read_file(fixture(std::string(t.name) + ".f32"));
    REQUIRE(exp.size() % 4 == 0);
    fx.expected.resize(exp.size() / 4);
    std::memcpy(fx.expected.data(), exp.data(), exp.size());
    REQUIRE(!fx.expected.empty());
    REQUIRE(fx.expected.size() % size_t(t.block) == 0);
    REQUIRE(fx.raw.size() == fx.expected.size() / size_t(t.block) * size_t(t.bytes));
    return fx;
}

// Index of the first element whose bits differ, or -1.
int64_t first_mismatch(const std::vector<float>& a, const std::vector<float>& b) {
    for (size_t i = 0; i < a.size(); ++i)
        if (std::memcmp(&a[i], &b[i], 4) != 0) return int64_t(i);
    return -1;
}

}  // namespace

TEST_CASE("quant_ggml: dequantize equals gguf-py bit for bit, every type and kernel build", "[quant_ggml][dequant]") {
    const auto builds = kernels_available();
    REQUIRE(!builds.empty());
    for (int ti = 0; ti < kTypeCount; ++ti) {
        const TypeInfo& t = type_info(Type(ti));
        const Fixture fx = load_fixture(t);
        const int64_t nb = int64_t(fx.expected.size()) / t.block;
        for (const Kernels* k : builds) {
            INFO("type " << t.name << ", kernels " << k->name);
            std::vector<float> out(fx.expected.size() + 8, -12345.f);
            k->dequant[ti](fx.raw.data(), nb, out.data());
            for (size_t i = fx.expected.size(); i < out.size(); ++i) REQUIRE(out[i] == -12345.f);  // no overrun
            out.resize(fx.expected.size());
            const int64_t bad = first_mismatch(out, fx.expected);
            INFO("first mismatch at " << bad << ": got " << (bad >= 0 ? out[bad] : 0.f) << ", expected "
                                      << (bad >= 0 ? fx.expected[bad] : 0.f));
            CHECK(bad == -1);
        }
    }
}

TEST_CASE("quant_ggml: F16 conversion is exact for all 65536 patterns, every kernel build", "[quant_ggml][dequant]") {
    std::vector<uint16_t> all(65536);
    for (uint32_t i = 0; i < 65536; ++i) all[i] = uint16_t(i);
    for (const Kernels* k : kernels_available()) {
        std::vector<float> out(65536);
        k->dequant[int(Type::F16)](reinterpret_cast<const uint8_t*>(all.data()), 65536, out.data());
        int64_t bad = 0;
        for (uint32_t i = 0; i < 65536; ++i) {
            const float ref = imp::fp16_to_f32(uint16_t(i));
            if (std::isnan(ref) ? !std::isnan(out[i]) : std::memcmp(&ref, &out[i], 4) != 0) ++bad;  // F16C quiets sNaN
        }
        INFO("kernels " << k->name);
        CHECK(bad == 0);
    }
}

TEST_CASE("quant_ggml: GgmlFormat::dequantize matches the fixtures and rejects bad input", "[quant_ggml][dequant]") {
    GgmlFormat f;
    for (int ti = 0; ti < kTypeCount; ++ti) {
        const TypeInfo& t = type_info(Type(ti));
        const Fixture fx = load_fixture(t);
        // Dequantize a slice starting at the second block, as a caller would for part of a tensor.
        const int64_t n = int64_t(fx.expected.size()) - t.block;
        std::vector<float> out(static_cast<size_t>(n));
        f.dequantize(t.name, fx.raw.data() + t.bytes, n, out.data());
        INFO("type " << t.name);
        CHECK(std::memcmp(out.data(), fx.expected.data() + t.block, size_t(n) * 4) == 0);
    }
    float dummy[64];
    uint8_t raw[64] = {};
    CHECK_THROWS_WITH(f.dequantize("Q4_1", raw, 31, dummy), Catch::Contains("Q4_1") && Catch::Contains("31"));
    CHECK_THROWS_WITH(f.dequantize("IQ2_XXS", raw, 256, dummy), Catch::Contains("IQ2_XXS"));
    CHECK_THROWS_AS(f.dequantize("Q8_1", raw, 32, dummy), imp::Error);
}

TEST_CASE("quant_ggml: type table matches ggml's ids and block sizes", "[quant_ggml][types]") {
    // FORMATS.md 1.4
    struct Row {
        const char* name;
        uint32_t id;
        int block, bytes;
    };
    const Row rows[] = {
        {"F32", 0, 1, 4},       {"F16", 1, 1, 2},       {"BF16", 30, 1, 2},       {"Q4_0", 2, 32, 18},
        {"Q4_1", 3, 32, 20},    {"Q5_0", 6, 32, 22},    {"Q5_1", 7, 32, 24},      {"Q8_0", 8, 32, 34},
        {"Q2_K", 10, 256, 84},  {"Q3_K", 11, 256, 110}, {"Q4_K", 12, 256, 144},   {"Q5_K", 13, 256, 176},
        {"Q6_K", 14, 256, 210}, {"IQ4_NL", 20, 32, 18}, {"IQ4_XS", 23, 256, 136}, {"MXFP4", 39, 32, 17}};
    for (const auto& r : rows) {
        const TypeInfo* t = find_type(r.name);
        REQUIRE(t);
        CHECK(t->ggml_id == r.id);
        CHECK(t->block == r.block);
        CHECK(t->bytes == r.bytes);
    }
    CHECK(find_type("Q8_K") == nullptr);
    CHECK(find_type("q4_1") == nullptr);
    CHECK(GgmlFormat().types().size() == size_t(kTypeCount));
}
