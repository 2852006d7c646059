// FP8 E4M3 dequantization equals the producers' own (fixtures/dequant.safetensors from tests/tools/
// make_quant_fixtures.py: ModelOpt FP8QTensor per tensor, compressed-tensors float-quantized per channel with F32
// and BF16 scales) bit for bit, through Fp8Format::dequantize; the E4M3 values by hand.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "fp8_format.h"
#include "fp8_ref.h"
#include "imp/model.h"
#include "runtime/weight_sources.h"

using namespace imp;

TEST_CASE("fp8: E4M3 values", "[fp8][dequant]") {
    CHECK(fp8::e4m3_to_float(0x7E) == 448.f);
    CHECK(fp8::e4m3_to_float(0x38) == 1.f);
    CHECK(fp8::e4m3_to_float(0x01) == std::ldexp(1.f, -9));
    CHECK(fp8::e4m3_to_float(0x0F) == 1.875f * std::ldexp(1.f, -6));
    CHECK(std::isnan(fp8::e4m3_to_float(0xFF)));
    CHECK(std::signbit(fp8::e4m3_to_float(0x80)));
    // Every code: the row function multiplies by the scale once.
    std::vector<uint8_t> q(256);
    for (int i = 0; i < 256; ++i) q[size_t(i)] = uint8_t(i);
    std::vector<float> out(256);
    fp8::dequant_row(q.data(), 0.75f, 256, out.data());
    for (int i = 0; i < 256; ++i) {
        const float v = fp8::e4m3_to_float(uint8_t(i)) * 0.75f;
        CHECK((std::isnan(v) ? std::isnan(out[size_t(i)]) : out[size_t(i)] == v));
    }
}

TEST_CASE("fp8: dequantization equals ModelOpt's and compressed-tensors' bit for bit", "[fp8][dequant]") {
    auto src = open_model(std::string(IMP_SOURCE_DIR) + "/plugins/quant_fp8/tests/fixtures/dequant.safetensors");
    TensorIndex idx(*src);
    fp8::Fp8Format f;
    for (const char* c : {"mo", "ct", "ctbf"}) {
        INFO("case " << c);
        const TensorInfo& exp = src->get(std::string(c) + ".expected");
        const int64_t rows = exp.shape[0], cols = exp.shape[1];
        std::vector<float> want(size_t(rows * cols)), got(want.size());
        std::memcpy(want.data(), exp.data, want.size() * 4);
        f.dequantize(idx.source(std::string(c) + ".weight"), 0, rows, got.data());
        int64_t bad = 0, subnormal = 0;
        for (size_t i = 0; i < got.size(); ++i) {
            uint32_t a, b;
            std::memcpy(&a, &got[i], 4);
            std::memcpy(&b, &want[i], 4);
            bad += a != b;
        }
        const TensorInfo& q = src->get(std::string(c) + ".weight");
        for (uint64_t i = 0; i < q.nbytes; ++i) subnormal += (q.data[i] & 0x78) == 0 && (q.data[i] & 7);
        CHECK(bad == 0);
        CHECK(subnormal > 0);
    }
    CHECK(src->get("ctbf.weight_scale").type == "BF16");
    CHECK(src->get("ct.weight_scale").shape == std::vector<int64_t>{16, 1});
}
