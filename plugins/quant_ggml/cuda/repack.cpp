#include "repack.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <thread>
#include <type_traits>

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

// Row groups [rg0, rg1) of a tiled weight, one element at a time (the reference of repack_tiles_fast); dst is
// zero-filled.
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

// ---- Word-at-a-time repack. For lane (g, c) and k-step s, the columns 16 s + 4 c + {0, 1, 2, 3} of rows g and g + 8
// are 4 consecutive elements of one ggml block, so their codes come from one 32-bit load per row (+ nibble/bit
// extraction). The destination bits of column j of row g (row g + 8: one field up) follow from put_code
// (tile_layout.h):
//  - 4-bit plane (put_nib, bit 4 k + 16 h, k = 2 (j >> 1) + row-half, h = j & 1): nibbles 0, 4, 2, 6 of the word,
//    i.e. the bytes of the 4 codes with bytes 1 and 2 swapped, row g + 8 shifted up by 4;
//  - Q5_K fifth bits (bit 4 (s % 4) + k + 16 h): bits 0, 16, 2, 18 (+1 for row g + 8);
//  - Q6_K high bits (bit 8 (s % 2) + 2 k + 16 h): bit pairs 0, 16, 4, 20 (+2 for row g + 8);
//  - Q8_0 (word 2 s + (k >> 1), byte 2 (k & 1) + h): words {g0, g1, g8_0, g8_1} and {g2, g3, g8_2, g8_3}.
// Rows past the weight and blocks past its columns read from a block whose codes are 0 (pad_block).

// Two lanes at a time: lanes 4 g + c and 4 g + c + 1 (c even) read 8 consecutive bytes of each row, so the helpers
// below work on 64-bit values holding the 32-bit words of both lanes (no field crosses a 32-bit boundary).
uint64_t ld64(const uint8_t* p) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    return v;
}
void st32(uint8_t* p, uint32_t v) {
    std::memcpy(p, &v, 4);
}
// Stores the words of lanes l and l + 1: the low half at p, the high half at p + 16.
void st_pair(uint8_t* p, uint64_t v) {
    st32(p, uint32_t(v));
    st32(p + 16, uint32_t(v >> 32));
}
// Bytes 1 and 2 of each 32-bit word swapped.
uint64_t swap12(uint64_t x) {
    return (x & 0xFF0000FFFF0000FFull) | ((x >> 8) & 0x0000FF000000FF00ull) | ((x << 8) & 0x00FF000000FF0000ull);
}
// The plane words of 4 codes (< 16, one per byte) of row g (a) and row g + 8 (b).
uint64_t nib_word(uint64_t a, uint64_t b) {
    return swap12(a | b << 4);
}
// Nibbles (low: shift 0, high: shift 4) of the 8 bytes at p.
uint64_t nibs(const uint8_t* p, int shift) {
    return (ld64(p) >> shift) & 0x0F0F0F0F0F0F0F0Full;
}
// Q5_K fifth bits: bit `bit` of the 4 bytes (per word) at p, to bits 0, 16, 2, 18 of the word.
uint64_t bits1(const uint8_t* p, int bit) {
    const uint64_t v = swap12((ld64(p) >> bit) & 0x0101010101010101ull);
    return (v | v >> 6) & 0x0005000500050005ull;
}
// Q6_K high bits: bits `bit`, `bit` + 1 of the 4 bytes (per word) at p, to bits 0, 16, 4, 20 (2 bits each).
uint64_t bits2(const uint8_t* p, int bit) {
    const uint64_t v = swap12((ld64(p) >> bit) & 0x0303030303030303ull);
    return (v | v >> 4) & 0x0033003300330033ull;
}

// A block whose quants decode to code 0: zero bytes, but 0x80 for Q8_0 (code = byte ^ 0x80).
template <class L>
const uint8_t* pad_block() {
    static_assert(L::kBlockBytes <= 256);
    static const auto block = [] {
        std::array<uint8_t, 256> b{};
        if constexpr (std::is_same_v<L, LayoutQ8_0>) std::memset(b.data() + 2, 0x80, 32);
        return b;
    }();
    return block.data();
}

// Bytes of a tile before the metadata (quants, and Q5_K/Q6_K high bits): every one of them is written by fill_quants.
template <class L>
constexpr int quant_bytes() {
    if constexpr (std::is_same_v<L, LayoutQ4_K>) return 2048;
    else if constexpr (std::is_same_v<L, LayoutQ5_K>) return 2560;
    else if constexpr (std::is_same_v<L, LayoutQ6_K>) return 3072;
    else return 512;
}

// Writes all quant bytes of tile t; blk[r * kBlocksPerChunk + b]: block b of the chunk in tile row r.
template <class L>
void fill_quants(uint8_t* t, const uint8_t* const* blk) {
    constexpr int nb = L::kChunkCols / L::kBlock;
    for (int g = 0; g < 8; ++g)
        for (int c = 0; c < 4; c += 2) {
            const int lane = 4 * g + c, c4 = 4 * c;
            const uint8_t* const* bg = blk + nb * g;
            const uint8_t* const* b8 = blk + nb * (g + 8);
            if constexpr (std::is_same_v<L, LayoutQ4_0> || std::is_same_v<L, LayoutQ4_1>) {
                constexpr int q0 = std::is_same_v<L, LayoutQ4_0> ? 2 : 4;  // quants after d (and m)
#pragma GCC unroll 4
                for (int s = 0; s < 4; ++s) {
                    const int b = s >> 1, sh = 4 * (s & 1), off = q0 + c4;
                    st_pair(t + 16 * lane + 4 * s, nib_word(nibs(bg[b] + off, sh), nibs(b8[b] + off, sh)));
                }
            } else if constexpr (std::is_same_v<L, LayoutQ8_0>) {
#pragma GCC unroll 2
                for (int s = 0; s < 2; ++s) {
                    const uint64_t a = ld64(bg[0] + 2 + 16 * s + c4) ^ 0x8080808080808080ull;
                    const uint64_t b = ld64(b8[0] + 2 + 16 * s + c4) ^ 0x8080808080808080ull;
                    // Per lane: {a0, a1, b0, b1} and {a2, a3, b2, b3}.
                    const uint64_t lo = (a & 0x0000FFFF0000FFFFull) | ((b << 16) & 0xFFFF0000FFFF0000ull);
                    const uint64_t hi = ((a >> 16) & 0x0000FFFF0000FFFFull) | (b & 0xFFFF0000FFFF0000ull);
                    st_pair(t + 16 * lane + 8 * s, lo);
                    st_pair(t + 16 * lane + 8 * s + 4, hi);
                }
            } else if constexpr (std::is_same_v<L, LayoutQ4_K> || std::is_same_v<L, LayoutQ5_K>) {
                // Element e = 16 s + 4 c + i: byte q0 + 32 (e / 64) + e % 32, high nibble when e % 64 >= 32.
                constexpr int q0 = std::is_same_v<L, LayoutQ4_K> ? 16 : 48;
                [[maybe_unused]] uint64_t qh[4] = {0, 0, 0, 0};
#pragma GCC unroll 16
                for (int s = 0; s < 16; ++s) {
                    const int off = q0 + 32 * (s >> 2) + 16 * (s & 1) + c4, sh = 4 * ((s >> 1) & 1);
                    st_pair(piece_word(t, lane, s), nib_word(nibs(bg[0] + off, sh), nibs(b8[0] + off, sh)));
                    if constexpr (std::is_same_v<L, LayoutQ5_K>) {
                        // Fifth bit: bit 2 (e / 64) + (e % 64 >= 32) = s / 2 of byte 16 + e % 32.
                        const int qo = 16 + 16 * (s & 1) + c4;
                        qh[s >> 2] |= (bits1(bg[0] + qo, s >> 1) | bits1(b8[0] + qo, s >> 1) << 1) << (4 * (s & 3));
                    }
                }
                if constexpr (std::is_same_v<L, LayoutQ5_K>)
                    for (int i = 0; i < 4; ++i) st_pair(t + 2048 + 16 * lane + 4 * i, qh[i]);
            } else {
                static_assert(std::is_same_v<L, LayoutQ6_K>);
                // Element e = 16 s + 4 c + i, half hh = e / 128 = s / 8, quarter = e % 128 / 32 = s / 2 % 4,
                // l = e % 32: low nibble from byte 64 hh + 32 (quarter & 1) + l (high nibble when quarter >= 2),
                // high 2 bits at 2 quarter of byte 128 + 32 hh + l.
                uint64_t qh[8] = {0, 0, 0, 0, 0, 0, 0, 0};
#pragma GCC unroll 16
                for (int s = 0; s < 16; ++s) {
                    const int hh = s >> 3, quarter = (s >> 1) & 3, l = 16 * (s & 1) + c4;
                    const int off = 64 * hh + 32 * (quarter & 1) + l, sh = quarter >= 2 ? 4 : 0;
                    st_pair(piece_word(t, lane, s), nib_word(nibs(bg[0] + off, sh), nibs(b8[0] + off, sh)));
                    const int ho = 128 + 32 * hh + l;
                    const uint64_t hb = bits2(bg[0] + ho, 2 * quarter) | bits2(b8[0] + ho, 2 * quarter) << 2;
                    qh[s >> 1] |= hb << (8 * (s & 1));
                }
                for (int w = 0; w < 8; ++w) st_pair(piece_word(t + 2048, lane, w), qh[w]);
            }
        }
}

// Row groups [rg0, rg1) of a tiled weight, word at a time; writes every byte of them (dst need not be cleared).
template <class L>
void repack_tiles_fast(const DeviceLayout& d, const uint8_t* src, uint64_t row_bytes, uint8_t* dst, int64_t rg0,
                       int64_t rg1) {
    constexpr int nb = L::kChunkCols / L::kBlock;
    constexpr int qb = quant_bytes<L>();
    const uint8_t* pad = pad_block<L>();
    const uint8_t* blk[kTileRows * nb];
    for (int64_t rg = rg0; rg < rg1; ++rg) {
        const int64_t row0 = rg * kTileRows;
        const int nr = int(std::min<int64_t>(kTileRows, d.rows - row0));
        for (int64_t ch = 0; ch < d.chunks; ++ch) {
            uint8_t* t = dst + rg * d.rg_bytes + ch * L::kTileBytes;
            const int64_t blk0 = ch * nb, n_blk = d.cols / L::kBlock;
            const bool full = nr == kTileRows && blk0 + nb <= n_blk;
            if (!full) std::memset(t + qb, 0, size_t(L::kTileBytes - qb));  // metadata of padding stays zero
            for (int r = 0; r < kTileRows; ++r)
                for (int b = 0; b < nb; ++b) {
                    const uint8_t*& p = blk[r * nb + b];
                    p = pad;
                    if (r >= nr || blk0 + b >= n_blk) continue;
                    p = src + uint64_t(row0 + r) * row_bytes + uint64_t(blk0 + b) * L::kBlockBytes;
                    L::put_meta(t, r, b, p);
                }
            fill_quants<L>(t, blk);
        }
    }
}

void repack_plain(const DeviceLayout& d, const uint8_t* src, uint64_t row_bytes, uint8_t* dst, int64_t r0, int64_t r1) {
    const uint64_t ld_bytes = uint64_t(d.ld) * (d.type == Type::F32 ? 4 : 2);
    for (int64_t r = r0; r < r1; ++r) {
        std::memcpy(dst + uint64_t(r) * ld_bytes, src + uint64_t(r) * row_bytes, row_bytes);
        if (ld_bytes > row_bytes) std::memset(dst + uint64_t(r) * ld_bytes + row_bytes, 0, ld_bytes - row_bytes);
    }
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

namespace {

// f(L{}) for the layout of block type t; false for the plain types.
template <class F>
bool with_layout(Type t, F&& f) {
    switch (t) {
        case Type::Q4_0: f(LayoutQ4_0{}); return true;
        case Type::Q4_1: f(LayoutQ4_1{}); return true;
        case Type::Q8_0: f(LayoutQ8_0{}); return true;
        case Type::Q4_K: f(LayoutQ4_K{}); return true;
        case Type::Q5_K: f(LayoutQ5_K{}); return true;
        case Type::Q6_K: f(LayoutQ6_K{}); return true;
        default: return false;
    }
}

}  // namespace

void repack(const DeviceLayout& d, const uint8_t* src, uint64_t row_bytes, uint8_t* dst, int threads) {
    // Every byte of dst is written (padding included), so a reused buffer needs no clearing first.
    const bool tiled = with_layout(d.type, [&](auto l) {
        using L = decltype(l);
        run_split(d.n_rg, threads,
                  [&](int64_t a, int64_t b) { repack_tiles_fast<L>(d, src, row_bytes, dst, a, b); });
    });
    if (!tiled) run_split(d.rows, threads, [&](int64_t a, int64_t b) { repack_plain(d, src, row_bytes, dst, a, b); });
}

void repack_reference(const DeviceLayout& d, const uint8_t* src, uint64_t row_bytes, uint8_t* dst, int threads) {
    // Padding must read as zero and dst may be a reused buffer: clear it, in parallel (1 MiB pieces).
    const int64_t piece = int64_t(1) << 20, n_pieces = int64_t((d.bytes + uint64_t(piece) - 1) / uint64_t(piece));
    run_split(n_pieces, threads, [&](int64_t a, int64_t b) {
        const uint64_t lo = uint64_t(a) * uint64_t(piece);
        const uint64_t hi = std::min<uint64_t>(d.bytes, uint64_t(b) * uint64_t(piece));
        if (hi > lo) std::memset(dst + lo, 0, hi - lo);
    });
    const bool tiled = with_layout(d.type, [&](auto l) {
        using L = decltype(l);
        run_split(d.n_rg, threads, [&](int64_t a, int64_t b) { repack_tiles<L>(d, src, row_bytes, dst, a, b); });
    });
    if (!tiled) run_split(d.rows, threads, [&](int64_t a, int64_t b) { repack_plain(d, src, row_bytes, dst, a, b); });
}

}  // namespace imp::ggml::cuda
