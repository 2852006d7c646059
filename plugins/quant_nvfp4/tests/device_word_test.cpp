// The load-time repack of NVFP4 codes into the CUDA device layout (quant_fp8/cuda/wo_layout.h): the bit-parallel
// wo::nvfp4_device_word against the layout's definition, code by code (element i of a canonical word, nibble i, goes
// to nibble kNibble[i]), on fresh random words and on every single-code word.
#include <catch2/catch.hpp>

#include <cstdint>
#include <random>

#include "wo_layout.h"

namespace {

uint32_t by_definition(uint32_t canonical) {
    uint32_t v = 0;
    for (int i = 0; i < 8; ++i) v |= ((canonical >> (4 * i)) & 0xFu) << (4 * imp::wo::kNibble[i]);
    return v;
}

}  // namespace

TEST_CASE("nvfp4 device word: the bit-parallel repack equals the layout's nibble order", "[nvfp4][layout]") {
    for (int i = 0; i < 8; ++i)
        for (uint32_t code = 1; code < 16; ++code) {
            const uint32_t w = code << (4 * i);
            INFO("element " << i << ", code " << code);
            CHECK(imp::wo::nvfp4_device_word(w) == by_definition(w));
        }
    std::mt19937 rng(std::random_device{}());
    int bad = 0;
    for (int n = 0; n < 1000000; ++n) {
        const uint32_t w = uint32_t(rng());
        if (imp::wo::nvfp4_device_word(w) != by_definition(w) && ++bad <= 3) {
            INFO("word 0x" << std::hex << w);
            CHECK(imp::wo::nvfp4_device_word(w) == by_definition(w));
        }
    }
    CHECK(bad == 0);
    static_assert(imp::wo::nvfp4_device_word(0x76543210u) == 0x13570246u);  // elements 0..7 hold codes 0..7
}
