#include "repack.h"

#include <algorithm>
#include <cstring>
#include <thread>

#include "imp/error.h"
#include "tile_layout.h"

namespace imp::ggml::cuda {
namespace {

template <class L>
void tile_geometry(DeviceLayout& d) {
    d.tiled = true;
    d.n_rg = (d.rows + kTileRows - 1) / kTileRows;
    d.chunks = (d.cols + L::kChunkCols - 1) / L::kChunkCols;
    d.rg_bytes = d.chunks * L::kTileBytes;
    d.bytes = checked_mul(uint64_t(d.n_rg), uint64_t(d.rg_bytes), "quant_ggml: device layout");
}

// Row groups [rg0, rg1) of a tiled weight; dst is zero-filled.
template <class L>
void repack_tiles(const DeviceLayout& d, const uint8_t* src, uint64_t row_bytes, uint8_t* dst, int64_t rg0,
                  int64_t rg1) {
    constexpr int kBlocksPerChunk = L::kChunkCols / L::kBlock;
    for (int64_t rg = rg0; rg < rg1; ++rg) {
        const int64_t row0 = rg * kTileRows;
        const int nr = int(std::min<int64_t>(kTileRows, d.rows - row0));
        for (int64_t ch = 0; ch < d.chunks; ++ch) {
            uint8_t* t = dst + rg * d.rg_bytes + ch * L::kTileBytes;
            const int64_t col0 = ch * L::kChunkCols;
            for (int r = 0; r < nr; ++r) {
                const uint8_t* row = src + uint64_t(row0 + r) * row_bytes;
                for (int b = 0; b < kBlocksPerChunk; ++b) {
                    const int64_t col = col0 + int64_t(b) * L::kBlock;
                    if (col < d.cols) L::put_meta(t, r, b, row + (col / L::kBlock) * L::kBlockBytes);
                }
            }
            for (int lane = 0; lane < 32; ++lane)
                for (int s = 0; s < L::kSteps; ++s)
                    for (int k = 0; k < 4; ++k) {
                        const int r = elem_row(lane, k);
                        if (r >= nr) continue;
                        const uint8_t* row = src + uint64_t(row0 + r) * row_bytes;
                        for (int h = 0; h < 2; ++h) {
                            const int64_t col = col0 + elem_col(lane, s, k, h);
                            if (col < d.cols) L::put_code(t, lane, s, k, h, L::code_of(row, col));
                        }
                    }
        }
    }
}

void repack_plain(const DeviceLayout& d, const uint8_t* src, uint64_t row_bytes, uint8_t* dst, int64_t r0, int64_t r1) {
    const uint64_t ld_bytes = uint64_t(d.ld) * (d.type == Type::F32 ? 4 : 2);
    for (int64_t r = r0; r < r1; ++r)
        std::memcpy(dst + uint64_t(r) * ld_bytes, src + uint64_t(r) * row_bytes, row_bytes);
}

template <class F>
void run_split(int64_t n, int threads, F&& fn) {
    if (threads <= 0) threads = int(std::max(1u, std::thread::hardware_concurrency()));
    threads = int(std::min<int64_t>(threads, std::max<int64_t>(1, n / 4)));
    if (threads <= 1) {
        fn(int64_t(0), n);
        return;
    }
    std::vector<std::thread> pool;
    for (int i = 0; i < threads; ++i) pool.emplace_back([&, i] { fn(n * i / threads, n * (i + 1) / threads); });
    for (auto& t : pool) t.join();
}

}  // namespace

bool cuda_supports(Type t) {
    switch (t) {
        case Type::F32:
        case Type::F16:
        case Type::BF16:
        case Type::Q4_0:
        case Type::Q4_1:
        case Type::Q8_0:
        case Type::Q4_K:
        case Type::Q5_K:
        case Type::Q6_K: return true;
        default: return false;
    }
}

DeviceLayout device_layout(Type t, int64_t rows, int64_t cols) {
    DeviceLayout d;
    d.type = t;
    d.rows = rows;
    d.cols = cols;
    switch (t) {
        case Type::Q4_0: tile_geometry<LayoutQ4_0>(d); break;
        case Type::Q4_1: tile_geometry<LayoutQ4_1>(d); break;
        case Type::Q8_0: tile_geometry<LayoutQ8_0>(d); break;
        case Type::Q4_K: tile_geometry<LayoutQ4_K>(d); break;
        case Type::Q5_K: tile_geometry<LayoutQ5_K>(d); break;
        case Type::Q6_K: tile_geometry<LayoutQ6_K>(d); break;
        case Type::F32:
        case Type::F16:
        case Type::BF16:
            d.ld = (cols + 7) / 8 * 8;
            d.bytes = checked_mul(checked_mul(uint64_t(rows), uint64_t(d.ld), "quant_ggml: device layout"),
                                  t == Type::F32 ? 4 : 2, "quant_ggml: device layout");
            break;
        default: throw Error(std::string("quant_ggml: no CUDA layout for type ") + type_info(t).name);
    }
    return d;
}

void repack(const DeviceLayout& d, const uint8_t* src, uint64_t row_bytes, uint8_t* dst, int threads) {
    // Padding must read as zero and dst may be a reused buffer: clear it, in parallel (1 MiB pieces).
    const int64_t piece = int64_t(1) << 20, n_pieces = int64_t((d.bytes + uint64_t(piece) - 1) / uint64_t(piece));
    run_split(n_pieces, threads, [&](int64_t a, int64_t b) {
        const uint64_t lo = uint64_t(a) * uint64_t(piece), hi = std::min<uint64_t>(d.bytes, uint64_t(b) * uint64_t(piece));
        if (hi > lo) std::memset(dst + lo, 0, hi - lo);
    });
    switch (d.type) {
        case Type::Q4_0:
            run_split(d.n_rg, threads,
                      [&](int64_t a, int64_t b) { repack_tiles<LayoutQ4_0>(d, src, row_bytes, dst, a, b); });
            break;
        case Type::Q4_1:
            run_split(d.n_rg, threads,
                      [&](int64_t a, int64_t b) { repack_tiles<LayoutQ4_1>(d, src, row_bytes, dst, a, b); });
            break;
        case Type::Q8_0:
            run_split(d.n_rg, threads,
                      [&](int64_t a, int64_t b) { repack_tiles<LayoutQ8_0>(d, src, row_bytes, dst, a, b); });
            break;
        case Type::Q4_K:
            run_split(d.n_rg, threads,
                      [&](int64_t a, int64_t b) { repack_tiles<LayoutQ4_K>(d, src, row_bytes, dst, a, b); });
            break;
        case Type::Q5_K:
            run_split(d.n_rg, threads,
                      [&](int64_t a, int64_t b) { repack_tiles<LayoutQ5_K>(d, src, row_bytes, dst, a, b); });
            break;
        case Type::Q6_K:
            run_split(d.n_rg, threads,
                      [&](int64_t a, int64_t b) { repack_tiles<LayoutQ6_K>(d, src, row_bytes, dst, a, b); });
            break;
        default: run_split(d.rows, threads, [&](int64_t a, int64_t b) { repack_plain(d, src, row_bytes, dst, a, b); });
    }
}

}  // namespace imp::ggml::cuda
