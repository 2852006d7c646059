// NVFP4 dequantization equals the producers' own (fixtures/dequant.safetensors from tests/tools/
// make_quant_fixtures.py: ModelOpt NVFP4QTensor and compressed-tensors NVFP4PackedCompressor + dequantize, fp32)
// bit for bit, through Nvfp4Format::dequantize; the number formats, nibble and block order by hand.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "imp/error.h"
#include "imp/model.h"
#include "nvfp4_format.h"
#include "nvfp4_ref.h"
#include "runtime/weight_sources.h"

using namespace imp;

namespace {

uint32_t bits(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
}

const std::string kFixture = std::string(IMP_SOURCE_DIR) + "/plugins/quant_nvfp4/tests/fixtures/dequant.safetensors";

// Compares dequantize(case.weight*) with case.expected. zero_sign: the sign of zeros must match too.
void check_case(const ModelSource& src, const TensorIndex& idx, const std::string& c, const std::string& main,
                bool zero_sign) {
    INFO("case " << c);
    const WeightSource s = idx.source(c + ".weight");
    const TensorInfo& exp = src.get(c + ".expected");
    REQUIRE(exp.type == "F32");
    const int64_t rows = exp.shape[0], cols = exp.shape[1];
    REQUIRE(src.get(c + "." + main).shape == std::vector<int64_t>{rows, cols / 2});
    std::vector<float> want(size_t(rows * cols)), got(size_t(rows * cols));
    std::memcpy(want.data(), exp.data, want.size() * 4);
    nvfp4::Nvfp4Format f;
    f.dequantize(s, 0, rows, got.data());
    int64_t bad = 0, zeros = 0;
    for (size_t i = 0; i < got.size(); ++i) {
        zeros += want[i] == 0.f;
        const bool same = zero_sign || want[i] != 0.f ? bits(got[i]) == bits(want[i]) : got[i] == 0.f;
        if (!same && bad++ < 5) UNSCOPED_INFO("element " << i << ": got " << got[i] << ", producer " << want[i]);
    }
    CHECK(bad == 0);
    CHECK(zeros > 0);
    // Rows from the middle give the same values.
    std::vector<float> part(size_t(2 * cols));
    f.dequantize(s, 3, 2, part.data());
    CHECK(std::memcmp(part.data(), got.data() + 3 * cols, part.size() * 4) == 0);
}

}  // namespace

TEST_CASE("nvfp4: E2M1 and E4M3 values", "[nvfp4][dequant]") {
    const float mag[8] = {0.f, .5f, 1.f, 1.5f, 2.f, 3.f, 4.f, 6.f};
    for (int c = 0; c < 16; ++c) {
        CHECK(nvfp4::e2m1_to_float(uint8_t(c)) == (c & 8 ? -mag[c & 7] : mag[c & 7]));
    }
    CHECK(std::signbit(nvfp4::e2m1_to_float(8)));  // the E2M1 encoding of -0
    CHECK(nvfp4::e4m3_to_float(0x7E) == 448.f);
    CHECK(nvfp4::e4m3_to_float(0xFE) == -448.f);
    CHECK(nvfp4::e4m3_to_float(0x38) == 1.f);
    CHECK(nvfp4::e4m3_to_float(0x01) == std::ldexp(1.f, -9));   // smallest subnormal
    CHECK(nvfp4::e4m3_to_float(0x07) == 7 * std::ldexp(1.f, -9));  // largest subnormal
    CHECK(nvfp4::e4m3_to_float(0x08) == std::ldexp(1.f, -6));   // smallest normal
    CHECK(std::isnan(nvfp4::e4m3_to_float(0x7F)));
    CHECK(std::signbit(nvfp4::e4m3_to_float(0x80)));
}

TEST_CASE("nvfp4: nibble and block order", "[nvfp4][dequant]") {
    // Two 16-element blocks: byte i holds element 2i low, 2i+1 high.
    std::vector<uint8_t> codes(16);
    for (int i = 0; i < 16; ++i) codes[size_t(i)] = uint8_t((i % 8) | (((i + 3) % 16) << 4));
    const uint8_t scales[2] = {0x38 /* 1 */, 0x40 /* 2 */};
    std::vector<float> out(32);
    nvfp4::dequant_row(codes.data(), scales, 0.5f, 32, out.data());
    for (int i = 0; i < 16; ++i) {
        const float s = (i < 8 ? 1.f : 2.f) * 0.5f;
        CHECK(out[size_t(2 * i)] == nvfp4::e2m1_to_float(uint8_t(i % 8)) * s);
        CHECK(out[size_t(2 * i + 1)] == nvfp4::e2m1_to_float(uint8_t((i + 3) % 16)) * s);
    }
    // compressed-tensors divides by its global scale.
    std::vector<float> ct(32);
    nvfp4::dequant_row_ct(codes.data(), scales, 2.f, 32, ct.data());
    CHECK(ct == out);
}

TEST_CASE("nvfp4: dequantization equals ModelOpt's and compressed-tensors' bit for bit", "[nvfp4][dequant]") {
    auto src = open_model(kFixture);
    TensorIndex idx(*src);
    // The fixture holds what the test is about: subnormal block scales and -0 codes.
    const TensorInfo& sc = src->get("mo0.weight_scale");
    bool subnormal = false;
    for (uint64_t i = 0; i < sc.nbytes; ++i) subnormal = subnormal || ((sc.data[i] & 0x78) == 0 && (sc.data[i] & 7));
    CHECK(subnormal);
    const TensorInfo& codes = src->get("ct0.weight_packed");
    bool neg_zero = false;
    for (uint64_t i = 0; i < codes.nbytes; ++i) neg_zero = neg_zero || (codes.data[i] & 0xF) == 8 || codes.data[i] >> 4 == 8;
    CHECK(neg_zero);
    for (const char* c : {"mo0", "mo1"}) check_case(*src, idx, c, "weight", false);  // ModelOpt's table: code 8 = +0
    // compressed-tensors' weight_global_scale is the reciprocal of the multiplier; -0 keeps its sign.
    for (const char* c : {"ct0", "ct1"}) {
        // TensorIndex puts weight_packed etc. under "<case>.weight" as aux (no "<case>.weight" tensor).
        check_case(*src, idx, c, "weight_packed", true);
    }
    // The canonical multiplier of compressed-tensors is 1 / weight_global_scale.
    const float gs = *reinterpret_cast<const float*>(src->get("ct1.weight_global_scale").data);
    std::vector<float> want(48), got(48);
    nvfp4::Nvfp4Format f;
    f.dequantize(idx.source("ct1.weight"), 0, 1, want.data());
    nvfp4::dequant_row(src->get("ct1.weight_packed").data, src->get("ct1.weight_scale").data, 1.f / gs, 48,
                       got.data());
    for (size_t i = 0; i < 48; ++i) CHECK(got[i] == Approx(want[i]).epsilon(1e-6));
    CHECK_THROWS_WITH(f.dequantize(idx.source("mo1.weight"), 7, 2, got.data()),
                      Catch::Contains("rows [7, 9) outside its 8 rows"));
}
