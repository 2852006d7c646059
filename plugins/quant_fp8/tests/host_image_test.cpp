// The host side of the CUDA FP8 upload (cuda/fp8_cuda.h host_image): rows read in place from several runs (the file's
// per-expert, per-part tensors) give the same device image as one contiguous copy, and that image holds each code and
// scale where the device layout (quant_fp8/cuda/wo_layout.h) says. Runs on any machine.
#if __has_include("fp8_cuda.h")
#include <catch2/catch.hpp>

#include <cstring>
#include <random>
#include <vector>

#include "fp8_cuda.h"
#include "imp/error.h"
#include "wo_layout.h"

using imp::fp8::cuda::RowRun;

TEST_CASE("fp8 host image: rows in runs equal one contiguous copy, each code and scale where the layout puts it",
          "[fp8][layout]") {
    std::mt19937 rng(std::random_device{}());
    std::uniform_int_distribution<int> byte(0, 255);
    const int64_t n = 3, part_rows[2] = {5, 7}, rows = 12, cols = 37;
    std::vector<uint8_t> q(size_t(n * rows * cols));
    for (auto& c : q) c = uint8_t(byte(rng));
    std::vector<float> scales(size_t(n * rows));  // per row
    for (size_t i = 0; i < scales.size(); ++i) scales[i] = 0.01f * float(i + 1);
    std::vector<std::vector<uint8_t>> parts;
    std::vector<RowRun> runs;
    for (int64_t e = 0, r0 = 0; e < n; ++e)
        for (const int64_t pr : part_rows) {
            parts.emplace_back(q.begin() + r0 * cols, q.begin() + (r0 + pr) * cols);
            r0 += pr;
        }
    for (const auto& p : parts) runs.push_back({p.data(), int64_t(p.size()) / cols});
    const auto split = imp::fp8::cuda::host_image(n, rows, cols, runs, scales.data(), rows);
    const auto whole = imp::fp8::cuda::host_image(n, rows, cols, {{q.data(), n * rows}}, scales.data(), rows);
    CHECK(split == whole);
    const imp::wo::Layout l = imp::wo::make_layout(imp::wo::Codec::FP8, rows, cols, rows, false);
    REQUIRE(split.size() == size_t(n) * l.bytes);
    int64_t bad = 0;
    for (int64_t e = 0; e < n; ++e) {
        const uint8_t* m = split.data() + uint64_t(e) * l.bytes;
        for (int64_t r = 0; r < rows; ++r) {
            for (int64_t c = 0; c < cols; ++c) bad += m[r * l.ld + c] != q[size_t((e * rows + r) * cols + c)];
            float s;
            std::memcpy(&s, m + l.post_off + 4 * r, 4);
            bad += s != scales[size_t(e * rows + r)];
        }
    }
    CHECK(bad == 0);
    runs.pop_back();
    CHECK_THROWS_WITH(imp::fp8::cuda::host_image(n, rows, cols, runs, scales.data(), rows),
                      Catch::Contains("row runs hold 29 rows, expected 36"));
}
#endif
