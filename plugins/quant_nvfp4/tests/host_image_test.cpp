// The host side of the CUDA NVFP4 upload (cuda/nvfp4_cuda.h host_image): rows read in place from several runs (the
// file's per-expert, per-part tensors) give the same device image as one contiguous copy, and that image holds each
// code, scale and global where the device layout (quant_fp8/cuda/wo_layout.h) says. Runs on any machine.
#if __has_include("nvfp4_cuda.h")
#include <catch2/catch.hpp>

#include <cstring>
#include <random>
#include <vector>

#include "imp/error.h"
#include "nvfp4_cuda.h"
#include "wo_layout.h"

using imp::nvfp4::cuda::RowRun;

TEST_CASE("nvfp4 host image: rows in runs equal one contiguous copy, each code where the layout puts it",
          "[nvfp4][layout]") {
    std::mt19937 rng(std::random_device{}());
    std::uniform_int_distribution<int> byte(0, 255);
    const int64_t n = 3, part_rows[2] = {5, 7}, rows = 12, cols = 48;
    // Canonical contiguous arrays, and a separate copy of each (expert, part) as the file's tensors would be.
    std::vector<uint8_t> codes(size_t(n * rows * cols / 2)), scales(size_t(n * rows * cols / 16));
    for (auto& c : codes) c = uint8_t(byte(rng));
    for (auto& s : scales) s = uint8_t(byte(rng) & 0x7E);  // finite E4M3
    const std::vector<float> globals = {0.5f, 0.25f, 0.125f};
    std::vector<std::vector<uint8_t>> pc, ps;
    std::vector<RowRun> runs;
    for (int64_t e = 0, r0 = 0; e < n; ++e)
        for (const int64_t pr : part_rows) {
            pc.emplace_back(codes.begin() + (r0 * cols / 2), codes.begin() + ((r0 + pr) * cols / 2));
            ps.emplace_back(scales.begin() + (r0 * cols / 16), scales.begin() + ((r0 + pr) * cols / 16));
            r0 += pr;
        }
    for (size_t i = 0; i < pc.size(); ++i) runs.push_back({pc[i].data(), ps[i].data(), int64_t(pc[i].size()) * 2 / cols});
    const auto split = imp::nvfp4::cuda::host_image(n, rows, cols, runs, globals.data());
    const auto whole =
        imp::nvfp4::cuda::host_image(n, rows, cols, {{codes.data(), scales.data(), n * rows}}, globals.data());
    CHECK(split == whole);
    const imp::wo::Layout l = imp::wo::make_layout(imp::wo::Codec::NVFP4, rows, cols, 1, false);
    REQUIRE(split.size() == size_t(n) * l.bytes);
    int64_t bad = 0;
    for (int64_t e = 0; e < n; ++e) {
        const uint8_t* m = split.data() + uint64_t(e) * l.bytes;
        for (int64_t r = 0; r < rows; ++r)
            for (int64_t c = 0; c < cols; ++c) {
                const int64_t i = (e * rows + r) * cols + c;
                const uint32_t want = (codes[size_t(i / 2)] >> (4 * (i & 1))) & 0xFu;
                uint32_t w;
                std::memcpy(&w, m + r * l.ld + (c / 32) * 16 + ((c / 8) % 4) * 4, 4);
                bad += ((w >> (4 * imp::wo::kNibble[c % 8])) & 0xFu) != want;
                if (c % 16 == 0) bad += m[l.scale_off + r * l.scale_ld + c / 16] != scales[size_t(i / 16)];
            }
        float g;
        std::memcpy(&g, m + l.post_off, 4);
        CHECK(g == globals[size_t(e)]);
    }
    CHECK(bad == 0);
    runs.pop_back();
    CHECK_THROWS_WITH(imp::nvfp4::cuda::host_image(n, rows, cols, runs, globals.data()),
                      Catch::Contains("row runs hold 29 rows, expected 36"));
}
#endif
