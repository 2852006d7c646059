// The GPU weight layout (cuda/tile_layout.h) checked on the CPU: the host repack followed by the same decode
// functions the kernels run (fragment loads, codes, scales, the order of the float operations) gives back every
// element bit for bit equal to the reference dequantization, each element exactly once, and zero padding.
// Also the CUDA load errors that need no GPU. Compiled with -ffp-contract=off (the reference never fuses).
#include <catch2/catch.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "cuda_experts.h"
#include "cuda_weight.h"
#include "ggml_format.h"
#include "imp/error.h"
#include "random_weights.h"
#include "request_util.h"
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

// The dp4a form of Q8_0 reads four codes of one row per k-step with one byte_perm (LayoutQ8_0::dp4a_codes); the
// x it multiplies is staged in column order 0, 2, 1, 3 of the lane's four columns (gemv_dp4a.cuh).
TEST_CASE("quant_ggml: Q8_0 dp4a codes are the row's codes in the staged column order", "[quant_ggml][cuda_layout]") {
    std::mt19937 rng(4242);
    const TypeInfo& t = *find_type("Q8_0");
    const int64_t rows = 37, cols = 5 * 32;
    const auto raw = test::random_blocks(t, rows * cols / t.block, rng);
    const DeviceLayout d = device_layout(t.type, rows, cols);
    std::vector<uint8_t> dev(d.bytes, 0xAB);
    repack(d, raw.data(), raw.size() / size_t(rows), dev.data(), 3);
    const uint64_t row_bytes = raw.size() / size_t(rows);
    const int order[4] = {0, 2, 1, 3};
    int64_t checked = 0, bad = 0;
    for (int64_t rg = 0; rg < d.n_rg; ++rg)
        for (int64_t ch = 0; ch < d.chunks; ++ch)
            for (int lane = 0; lane < 32; ++lane) {
                LayoutQ8_0::Frag f;
                LayoutQ8_0::load(dev.data() + rg * d.rg_bytes + ch * LayoutQ8_0::kTileBytes, lane, f);
                for (int s = 0; s < 2; ++s)
                    for (int r = 0; r < 2; ++r) {
                        const int64_t row = rg * kTileRows + (lane >> 2) + 8 * r;
                        if (row >= rows) continue;
                        const uint32_t u = LayoutQ8_0::dp4a_codes(f, s, r);
                        for (int b = 0; b < 4; ++b) {
                            const int64_t col = ch * 32 + 16 * s + 4 * (lane & 3) + order[b];
                            const uint32_t want = LayoutQ8_0::code_of(raw.data() + row * int64_t(row_bytes), col);
                            bad += ((u >> (8 * b)) & 0xFF) != want;
                            ++checked;
                        }
                    }
            }
    CHECK(checked == rows * cols);
    CHECK(bad == 0);
}

TEST_CASE("quant_ggml: word-at-a-time repack equals the per-element reference byte for byte",
          "[quant_ggml][cuda_layout]") {
    std::mt19937 rng(24);
    struct Shape {
        int64_t rows, blocks;  // blocks per row
    };
    // Rows below, at and above one group and not a multiple of 16; one and several chunks, odd block counts.
    const Shape shapes[] = {{1, 1}, {7, 3}, {16, 2}, {37, 8}, {48, 5}, {83, 16}};
    for (const char* type : {"Q4_0", "Q4_1", "Q8_0", "Q4_K", "Q5_K", "Q6_K"}) {
        const TypeInfo& t = *find_type(type);
        for (const Shape& sh : shapes) {
            const int64_t cols = sh.blocks * t.block;
            const auto raw = test::random_blocks(t, sh.rows * sh.blocks, rng);
            const DeviceLayout d = device_layout(t.type, sh.rows, cols);
            const uint64_t row_bytes = uint64_t(sh.blocks * t.bytes);
            std::vector<uint8_t> ref(d.bytes, 0x5A), fast(d.bytes, 0xA5);  // different garbage: each byte written
            repack_reference(d, raw.data(), row_bytes, ref.data(), 1);
            for (const int threads : {1, 3}) {
                std::fill(fast.begin(), fast.end(), uint8_t(0xA5 + threads));
                repack(d, raw.data(), row_bytes, fast.data(), threads);
                size_t first_diff = d.bytes;
                for (size_t i = 0; i < d.bytes && first_diff == d.bytes; ++i)
                    if (ref[i] != fast[i]) first_diff = i;
                INFO("type " << type << " " << sh.rows << "x" << cols << " threads " << threads
                             << ": first difference at " << first_diff << " of " << d.bytes);
                CHECK(first_diff == d.bytes);
            }
        }
    }
}

// Hidden (run with "[.bench]"): host repack throughput of an 8B FFN matrix (14336 x 4096), per-element reference vs
// word at a time, one thread and all threads; MB/s of ggml bytes.
TEST_CASE("quant_ggml bench: host repack of a 14336x4096 weight", "[.bench]") {
    std::mt19937 rng(25);
    const int64_t rows = 14336, cols = 4096;
    for (const char* type : {"Q4_K", "Q6_K", "Q8_0", "Q5_K", "Q4_0"}) {
        const TypeInfo& t = *find_type(type);
        const auto raw = test::random_blocks(t, rows * cols / t.block, rng);
        const DeviceLayout d = device_layout(t.type, rows, cols);
        const uint64_t row_bytes = raw.size() / size_t(rows);
        std::vector<uint8_t> a(d.bytes, 1), b(d.bytes, 2);
        auto time_ms = [&](auto&& fn) {
            double best = 1e30;
            for (int it = 0; it < 3; ++it) {
                const auto t0 = std::chrono::steady_clock::now();
                fn();
                best = std::min(best, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                                          .count());
            }
            return best;
        };
        const double mb = double(raw.size()) / 1e6;
        for (const int threads : {1, 0}) {
            const double ref_ms = time_ms([&] { repack_reference(d, raw.data(), row_bytes, a.data(), threads); });
            const double fast_ms = time_ms([&] { repack(d, raw.data(), row_bytes, b.data(), threads); });
            std::printf("repack %s %lldx%lld (%.1f MB) threads %s: reference %.1f ms (%.0f MB/s), fast %.1f ms "
                        "(%.0f MB/s), %.2fx\n",
                        type, (long long)rows, (long long)cols, mb, threads ? "1" : "all", ref_ms, mb / ref_ms * 1e3,
                        fast_ms, mb / fast_ms * 1e3, ref_ms / fast_ms);
            CHECK(a == b);
        }
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
        CHECK_THROWS_WITH(f.load(test::request_for(s), gpu), Catch::Contains("blk.3.attn_q.weight") && Catch::Contains(type) &&
                                              Catch::Contains("no CUDA kernels"));
        const imp::WeightPlan p = f.plan(test::request_for(s), gpu);
        CHECK_FALSE(p.accepted);
        CHECK(p.reason == std::string("type ") + type + " has no CUDA kernels");
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
    CHECK(f.plan(test::request_for(s), gpu).device_bytes == 3 * 2 * 2304);  // 40 rows -> 3 groups of 16, 2 chunks of 256 columns
    CHECK_THROWS_WITH(f.load(test::request_for(s), gpu), Catch::Contains("blk.0.ffn_down.weight") && Catch::Contains("no CUDA handles"));
}

TEST_CASE("quant_ggml: CUDA experts in parts are checked before anything is loaded", "[quant_ggml][load]") {
    std::mt19937 rng(24);
    const auto raw = test::random_blocks(*find_type("Q8_0"), 2 * 24 * 256 / 32, rng);
    const uint64_t rb = 8 * 34;  // 256 columns of Q8_0
    test::FakeGpuExecutor gpu;
    using cuda::ExpertRows;
    auto parts = [&](int64_t r1, int64_t r2, bool null_second) {
        std::vector<std::vector<ExpertRows>> p(2);
        for (int64_t e = 0; e < 2; ++e)
            p[size_t(e)] = {{raw.data() + uint64_t(e * 24) * rb, r1},
                            {null_second ? nullptr : raw.data() + uint64_t(e * 24 + r1) * rb, r2}};
        return p;
    };
    CHECK_THROWS_WITH(cuda::load_experts("blk.1.ffn_gate_up_exps.weight", Type::Q8_0, 2, 24, 256, parts(8, 8, false), gpu),
                      Catch::Contains("blk.1.ffn_gate_up_exps.weight") && Catch::Contains("16 rows in its parts, not 24"));
    CHECK_THROWS_WITH(cuda::load_experts("blk.1.ffn_gate_up_exps.weight", Type::Q8_0, 2, 24, 256, parts(8, 20, false), gpu),
                      Catch::Contains("a part of 20 rows (24 rows in all)"));
    CHECK_THROWS_WITH(cuda::load_experts("blk.1.ffn_gate_up_exps.weight", Type::Q8_0, 2, 24, 256, parts(8, 16, true), gpu),
                      Catch::Contains("without data"));
    CHECK_THROWS_WITH(cuda::load_experts("blk.1.ffn_gate_up_exps.weight", Type::Q8_0, 2, 24, 256,
                                         std::vector<std::vector<ExpertRows>>(2), gpu),
                      Catch::Contains("no data for expert 0"));
    // Parts that add up pass the checks and stop at the executor, which has no CUDA handles.
    CHECK_THROWS_WITH(cuda::load_experts("blk.1.ffn_gate_up_exps.weight", Type::Q8_0, 2, 24, 256, parts(8, 16, false), gpu),
                      Catch::Contains("no CUDA handles"));
}
