// The GPU weight layout (cuda/tile_layout.h) checked on the CPU: the host repack followed by the same decode
// functions the kernels run (fragment loads, codes, scales, the order of the float operations) gives back every
// element bit for bit equal to the reference dequantization, each element exactly once, and zero padding.
// Also the CUDA load errors that need no GPU. Compiled with -ffp-contract=off (the reference never fuses).
#include <catch2/catch.hpp>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "cuda_weight.h"
#include "ggml_format.h"
#include "imp/error.h"
#include "random_weights.h"
#include "repack.h"
#include "test_executor.h"
#include "tile_layout.h"

using namespace imp::ggml;
using namespace imp::ggml::cuda;

namespace {

uint32_t bits_of(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
}

// Decodes every element of the repacked weight through layout L into out[rows * cols]; counts visits per element.
template <class L>
void decode_all(const DeviceLayout& d, const std::vector<uint8_t>& dev, std::vector<float>& out,
                std::vector<int>& visits, int64_t& pad_nonzero) {
    for (int64_t rg = 0; rg < d.n_rg; ++rg)
        for (int64_t ch = 0; ch < d.chunks; ++ch) {
            const uint8_t* t = dev.data() + rg * d.rg_bytes + ch * L::kTileBytes;
            for (int lane = 0; lane < 32; ++lane) {
                typename L::Frag f;
                L::load(t, lane, f);
                for (int s = 0; s < L::kSteps; ++s)
                    for (int k = 0; k < 4; ++k) {
                        const RowScale sc = L::scale(f, s / L::kSubSteps, k & 1);
                        int q[2];
                        codes<L>(f, s, k, q[0], q[1]);
                        const int64_t row = rg * kTileRows + elem_row(lane, k);
                        for (int h = 0; h < 2; ++h) {
                            const int64_t col = ch * L::kChunkCols + elem_col(lane, s, k, h);
                            float v = sc.mul * float(q[h]);
                            if (L::kHasMin) v = v + sc.add;
                            if (row >= d.rows || col >= d.cols) {
                                pad_nonzero += v != 0.f;  // padding: zero scales, so the value is zero
                                continue;
                            }
                            out[size_t(row * d.cols + col)] = v;
                            ++visits[size_t(row * d.cols + col)];
                        }
                    }
            }
        }
}

template <class L>
void check_type(const char* type, int64_t rows, int64_t cols, std::mt19937& rng) {
    const TypeInfo& t = *find_type(type);
    const auto raw = test::random_blocks(t, rows * cols / t.block, rng);
    const DeviceLayout d = device_layout(t.type, rows, cols);
    REQUIRE(d.tiled);
    REQUIRE(d.bytes % 16 == 0);
    std::vector<uint8_t> dev(d.bytes, 0xAB);
    repack(d, raw.data(), raw.size() / size_t(rows), dev.data(), 3);
    std::vector<float> ref(size_t(rows * cols)), got(size_t(rows * cols), -1.f);
    std::vector<int> visits(size_t(rows * cols), 0);
    GgmlFormat().dequantize(type, raw.data(), rows * cols, ref.data());
    int64_t bad = 0, unvisited = 0, pad_nonzero = 0;
    decode_all<L>(d, dev, got, visits, pad_nonzero);
    for (size_t i = 0; i < ref.size(); ++i) {
        bad += bits_of(ref[i]) != bits_of(got[i]);
        unvisited += visits[i] != 1;
    }
    INFO("type " << type << " " << rows << "x" << cols);
    CHECK(unvisited == 0);
    CHECK(bad == 0);
    CHECK(pad_nonzero == 0);
}

}  // namespace

TEST_CASE("quant_ggml: CUDA layout round trip is bit exact for every CUDA block type", "[quant_ggml][cuda_layout]") {
    std::mt19937 rng(21);
    for (const int64_t rows : {int64_t(16), int64_t(37)}) {
        check_type<LayoutQ4_0>("Q4_0", rows, 7 * 32, rng);  // odd block count: half a chunk of padding
        check_type<LayoutQ4_0>("Q4_0", rows, 4 * 32, rng);
        check_type<LayoutQ4_1>("Q4_1", rows, 5 * 32, rng);
        check_type<LayoutQ8_0>("Q8_0", rows, 3 * 32, rng);
        check_type<LayoutQ4_K>("Q4_K", rows, 2 * 256, rng);
        check_type<LayoutQ5_K>("Q5_K", rows, 3 * 256, rng);
        check_type<LayoutQ6_K>("Q6_K", rows, 2 * 256, rng);
    }
}

TEST_CASE("quant_ggml: CUDA layout of plain types pads rows to 8 elements", "[quant_ggml][cuda_layout]") {
    std::mt19937 rng(22);
    for (const char* type : {"F32", "F16", "BF16"}) {
        const TypeInfo& t = *find_type(type);
        const int64_t rows = 5, cols = 13;
        const auto raw = test::random_blocks(t, rows * cols, rng);
        const DeviceLayout d = device_layout(t.type, rows, cols);
        CHECK(!d.tiled);
        CHECK(d.ld == 16);
        std::vector<uint8_t> dev(d.bytes, 0xAB);
        repack(d, raw.data(), uint64_t(cols * t.bytes), dev.data(), 2);
        for (int64_t r = 0; r < rows; ++r) {
            CHECK(std::memcmp(dev.data() + r * d.ld * t.bytes, raw.data() + r * cols * t.bytes,
                              size_t(cols * t.bytes)) == 0);
            for (int64_t b = cols * t.bytes; b < d.ld * t.bytes; ++b) CHECK(dev[size_t(r * d.ld * t.bytes + b)] == 0);
        }
    }
}

TEST_CASE("quant_ggml: CUDA load errors name the tensor and the type", "[quant_ggml][load]") {
    std::mt19937 rng(23);
    GgmlFormat f;
    test::FakeGpuExecutor gpu;  // reports DeviceKind::CUDA but gives no CUDA handles
    for (const char* type : {"Q5_0", "IQ4_XS", "Q2_K"}) {
        const TypeInfo& t = *find_type(type);
        const auto raw = test::random_blocks(t, 4 * 256 / t.block, rng);
        imp::TensorInfo ti;
        ti.name = "blk.3.attn_q.weight";
        ti.type = type;
        ti.shape = {4, 256};
        ti.data = raw.data();
        ti.nbytes = raw.size();
        imp::WeightSource s;
        s.main = &ti;
        CHECK_THROWS_WITH(f.load(s, gpu), Catch::Contains("blk.3.attn_q.weight") && Catch::Contains(type) &&
                                              Catch::Contains("no CUDA kernels"));
        CHECK_THROWS_WITH(f.device_bytes(s, gpu), Catch::Contains("blk.3.attn_q.weight") && Catch::Contains(type));
    }
    const auto raw = test::random_blocks(*find_type("Q4_K"), 40 * 2, rng);
    imp::TensorInfo ti;
    ti.name = "blk.0.ffn_down.weight";
    ti.type = "Q4_K";
    ti.shape = {40, 512};
    ti.data = raw.data();
    ti.nbytes = raw.size();
    imp::WeightSource s;
    s.main = &ti;
    CHECK(f.device_bytes(s, gpu) == 3 * 2 * 2304);  // 40 rows -> 3 groups of 16, 2 chunks of 256 columns
    CHECK_THROWS_WITH(f.load(s, gpu), Catch::Contains("blk.0.ffn_down.weight") && Catch::Contains("no CUDA handles"));
}
