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
