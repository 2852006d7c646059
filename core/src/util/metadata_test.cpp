#include <catch2/catch.hpp>

#include "imp/dtype.h"
#include "imp/error.h"
#include "imp/metadata.h"

TEST_CASE("metadata getters check types and name the key", "[metadata]") {
    imp::Metadata m;
    m.source = "x.gguf";
    m.set("a.int", {uint64_t(7), "u32"});
    m.set("a.str", {std::string("hi"), "str"});
    CHECK(m.get_int("a.int") == 7);
    CHECK(m.get_float("a.int") == 7.0);
    CHECK(m.get_string("a.str") == "hi");
    CHECK(m.get_int("missing", 3) == 3);
    CHECK_THROWS_WITH(m.get_int("missing"), Catch::Contains("x.gguf") && Catch::Contains("'missing'"));
    CHECK_THROWS_WITH(m.get_int("a.str"), Catch::Contains("'a.str'") && Catch::Contains("str"));
}

TEST_CASE("metadata: an integer out of int64's range names the file, the key and the value", "[metadata]") {
    imp::Metadata m;
    m.source = "u.gguf";
    m.set("a.huge", {uint64_t(18446744073709551615ull), "u64"});
    CHECK_THROWS_WITH(m.get_int("a.huge"),
                      "u.gguf: metadata key 'a.huge' is 18446744073709551615, out of range (at most 9223372036854775807)");
    CHECK_THROWS_WITH(m.get_int("a.huge", 0), Catch::StartsWith("u.gguf: ") && Catch::Contains("18446744073709551615"));
    // imp::in_file puts the file in front of a MetaValue accessor's message, which knows only the key.
    const imp::MetaValue* v = m.find("a.huge");
    CHECK_THROWS_WITH(imp::in_file("f.json", [&] { return v->as_int("a.huge"); }),
                      Catch::StartsWith("f.json: metadata key 'a.huge' is 18446744073709551615"));
}

TEST_CASE("fp16 and bf16 conversions round-trip", "[dtype]") {
    for (uint32_t h = 0; h < 0x10000; ++h) {
        float f = imp::fp16_to_f32(uint16_t(h));
        if (f != f) continue;
        REQUIRE(imp::f32_to_fp16(f) == h);
    }
    CHECK(imp::bf16_to_f32(imp::f32_to_bf16(1.5f)) == 1.5f);
    CHECK(imp::fp8_e4m3_to_f32(0x7e) == 448.f);
    CHECK(imp::fp8_e4m3_to_f32(0x01) == 0.001953125f);
}

TEST_CASE("fp8 e4m3 encode round-trips every finite code", "[dtype]") {
    for (int c = 0; c < 256; ++c) {
        if ((c & 0x7f) == 0x7f) continue;
        const float f = imp::fp8_e4m3_to_f32(uint8_t(c));
        if (f == 0.f) continue;  // -0 and +0
        REQUIRE(imp::f32_to_fp8_e4m3(f) == uint8_t(c));
    }
    CHECK(imp::f32_to_fp8_e4m3(1000.f) == 0x7e);
    CHECK(imp::f32_to_fp8_e4m3(-1000.f) == 0xfe);
    CHECK(imp::fp8_e4m3_to_f32(imp::f32_to_fp8_e4m3(1.0625f)) == 1.f);   // tie -> even mantissa
    CHECK(imp::fp8_e4m3_to_f32(imp::f32_to_fp8_e4m3(1.1875f)) == 1.25f);  // tie -> even mantissa
}
