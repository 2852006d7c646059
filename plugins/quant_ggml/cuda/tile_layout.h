// quant_ggml CUDA: the tiled layout that block-quantized weights take on the GPU, shared by the host repack (load),
// the device kernels and the CPU round-trip test.
//
// Why repack. The decode GEMV feeds the tensor cores (mma.m16n8k16, bf16 in, fp32 accumulate) straight from the
// quantized bytes: a warp multiplies 16 weight rows by 16 columns per k-step, and lane (g = lane / 4, c = lane % 4)
// must hold the A-fragment elements of rows g and g + 8. In the ggml layout those elements are scattered over
// unaligned 18/20/34/210-byte blocks. Here, a tile of 16 rows x kChunkCols columns keeps each lane's quants
// contiguous (one or more 16-byte loads per lane, the warp's loads coalesced over 512 bytes), with the scale fields
// of the tile's 16 rows after the quants. Rows are padded to a multiple of 16 and columns to a whole chunk with zero
// bytes (zero scales: padding contributes 0). Bytes per weight stay those of the file, plus that padding.
//
// Column order inside a k-step. The MMA sums over k, so any permutation of the 16 columns applied to both A and B
// gives the same result. Lane c takes the 4 consecutive columns 4c..4c+3 (A/B registers 0/2 of the fragment: logical
// k = 2c, 2c+1 and 2c+8, 2c+9), so its activations are one 16-byte load. A-register k (0..3) of lane (g, c) in
// k-step s holds row g + 8 (k & 1), columns 16 s + 4 c + 2 (k >> 1) + {0, 1}.
//
// Values. Each element has an unsigned code; value = mul * (code - kOffset) + add, with (mul, add) per row and
// scale block, computed in the order of the CPU reference (gguf-py), so a dequantization through this layout is
// bit for bit the reference. The GEMV turns codes into bf16 with the 0x4300 trick (bf16 0x4300 | q == 128 + q
// exactly for q < 128), subtracts 128 + kOffset exactly, and applies mul (and add times the column sum of x) to the
// fp32 accumulator of each scale block.
#pragma once
#include <cstdint>
#include <cstring>

#include "imp/dtype.h"

#ifdef __CUDACC__
#include <cuda_fp16.h>
#define IMP_HD __host__ __device__ __forceinline__
#else
#define IMP_HD inline
#endif

namespace imp::ggml::cuda {

constexpr int kTileRows = 16;

struct RowScale {
    float mul, add;
};

IMP_HD float bits_to_float(uint32_t u) {
#ifdef __CUDA_ARCH__
    return __uint_as_float(u);
#else
    float f;
    std::memcpy(&f, &u, 4);
    return f;
#endif
}

// __byte_perm: byte i of the result is byte (sel >> 4i) & 7 of the 8-byte value {b, a}.
IMP_HD uint32_t byte_perm(uint32_t a, uint32_t b, uint32_t sel) {
#ifdef __CUDA_ARCH__
    return __byte_perm(a, b, sel);
#else
    const uint64_t v = uint64_t(b) << 32 | a;
    uint32_t r = 0;
    for (int i = 0; i < 4; ++i) r |= uint32_t((v >> (8 * ((sel >> (4 * i)) & 7))) & 0xFF) << (8 * i);
    return r;
#endif
}

IMP_HD float f16_to_float(uint32_t h) {
#ifdef __CUDA_ARCH__
    return __half2float(__ushort_as_half(static_cast<unsigned short>(h & 0xFFFF)));
#else
    return imp::fp16_to_f32(static_cast<uint16_t>(h & 0xFFFF));
#endif
}

// Byte i of w (0..255) as a float, exact: 2^23 + v has v in its low mantissa bits.
IMP_HD float byte_to_float(uint32_t w, int i) {
    return bits_to_float(byte_perm(w, 0x4B, 0x4550 | i)) - 8388608.f;
}

// Copies of 4/8/16 bytes into words; on the device, 16-byte quant loads bypass L1 (streamed once).
IMP_HD void load_words(const uint8_t* p, uint32_t* w, int n) {
#ifdef __CUDA_ARCH__
    for (int i = 0; i < n; i += 4) {
        const uint4 v = __ldg(reinterpret_cast<const uint4*>(p + 4 * i));
        w[i] = v.x, w[i + 1] = v.y, w[i + 2] = v.z, w[i + 3] = v.w;
    }
#else
    std::memcpy(w, p, size_t(n) * 4);
#endif
}
IMP_HD void load_stream(const uint8_t* p, uint32_t* w, int n) {
#ifdef __CUDA_ARCH__
    for (int i = 0; i < n; i += 4)
        asm("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
            : "=r"(w[i]), "=r"(w[i + 1]), "=r"(w[i + 2]), "=r"(w[i + 3])
            : "l"(p + 4 * i));
#else
    std::memcpy(w, p, size_t(n) * 4);
#endif
}
IMP_HD uint32_t load_u32(const uint8_t* p) {
#ifdef __CUDA_ARCH__
    return __ldg(reinterpret_cast<const unsigned int*>(p));
#else
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
#endif
}
IMP_HD void load_u64(const uint8_t* p, uint32_t* w) {
#ifdef __CUDA_ARCH__
    const uint2 v = __ldg(reinterpret_cast<const uint2*>(p));
    w[0] = v.x, w[1] = v.y;
#else
    std::memcpy(w, p, 8);
#endif
}

// The 64 quant bytes of a lane in the 256-column types: four 16-byte pieces, piece i of lane l at 512 i + 16 l, so
// each 16-byte load of a warp covers 512 contiguous bytes. Word s of the lane (k-step s) is word s % 4 of
// piece s / 4.
IMP_HD void load_pieces(const uint8_t* t, int lane, uint32_t* w, int pieces) {
#ifdef __CUDA_ARCH__
#pragma unroll
#endif
    for (int i = 0; i < pieces; ++i) load_stream(t + 512 * i + 16 * lane, w + 4 * i, 4);
}
inline uint8_t* piece_word(uint8_t* t, int lane, int word) {
    return t + 512 * (word >> 2) + 16 * lane + 4 * (word & 3);
}

// (a & b) | c in one LOP3 (the compiler otherwise splits the two constants over two instructions).
template <uint32_t B, uint32_t C>
IMP_HD uint32_t and_or(uint32_t a) {
#ifdef __CUDA_ARCH__
    uint32_t d;
    asm("lop3.b32 %0, %1, %2, %3, 0xEA;" : "=r"(d) : "r"(a), "n"(B), "n"(C));
    return d;
#else
    return (a & B) | C;
#endif
}
template <uint32_t B>
IMP_HD uint32_t and_or_r(uint32_t a, uint32_t c) {
#ifdef __CUDA_ARCH__
    uint32_t d;
    asm("lop3.b32 %0, %1, %2, %3, 0xEA;" : "=r"(d) : "r"(a), "n"(B), "r"(c));
    return d;
#else
    return (a & B) | c;
#endif
}

// A-register k of a 4-bit plane word: codes at bits 4k (element 0) and 16 + 4k (element 1), as bf16 128 + code.
IMP_HD uint32_t nib_bits(uint32_t w, int k) {
    return and_or<0x000F000Fu, 0x43004300u>(w >> (4 * k));
}
// Bits of a plane word shifted so that bit `from` lands on bit `to` (compile-time constants after unrolling).
IMP_HD uint32_t shift_to(uint32_t w, int from, int to) {
    return from >= to ? w >> (from - to) : w << (to - from);
}

// Host side of the 4-bit plane: sets the code of (s, k, h) in the lane's words at p.
inline void put_nib(uint8_t* p, int s, int k, int h, uint32_t code) {
    uint32_t w;
    std::memcpy(&w, p + 4 * s, 4);
    w |= (code & 0xF) << (4 * k + 16 * h);
    std::memcpy(p + 4 * s, &w, 4);
}
inline void set_bits(uint8_t* p, int word, int bit, uint32_t v) {
    uint32_t w;
    std::memcpy(&w, p + 4 * word, 4);
    w |= v << bit;
    std::memcpy(p + 4 * word, &w, 4);
}

// Q4_K/Q5_K scales. The 16 leading bytes of a block (d, dmin, scales[12]) as words m[0..3] become, at load,
// p[0] = d | dmin << 16 and the 6-bit scales and mins of the 8 sub-blocks as bytes: p[1] = sc0..3, p[2] = sc4..7,
// p[3] = mn0..3, p[4] = mn4..7 (FORMATS.md 1.6, get_scale_min_k4, for all sub-blocks at once).
IMP_HD void k4_unpack(const uint32_t* m, uint32_t* p) {
    p[0] = m[0];
    p[1] = m[1] & 0x3F3F3F3Fu;
    p[2] = and_or_r<0x30303030u>(m[1] >> 2, m[3] & 0x0F0F0F0Fu);
    p[3] = m[2] & 0x3F3F3F3Fu;
    p[4] = and_or_r<0x30303030u>(m[2] >> 2, (m[3] >> 4) & 0x0F0F0F0Fu);
}
// The unpacked form of one row's raw words. The load keeps the raw words and the kernels unpack them where they use
// them: an unpack right after the load would make the warp wait for that load there, before the tile it already
// holds is computed (it did: the prefetch of the next tile stalled on its own scale words).
struct K4Meta {
    uint32_t p[5];
};
IMP_HD K4Meta k4_meta(const uint32_t* m) {
    K4Meta r;
    k4_unpack(m, r.p);
    return r;
}
// mul = d * sc, add = -(dmin * mn) of sub-block j, as the reference computes d1 * q - m1.
IMP_HD RowScale k4_scale(const uint32_t* p, int j) {
    const float sc = byte_to_float(p[1 + (j >> 2)], j & 3), mn = byte_to_float(p[3 + (j >> 2)], j & 3);
    return {f16_to_float(p[0]) * sc, -(f16_to_float(p[0] >> 16) * mn)};
}

// ---- Q4_0: 64-column chunks (two blocks); quants 16 B per lane; d of rows g, g+8 for both blocks at 512 + 8 g.
struct LayoutQ4_0 {
    static constexpr int kBlock = 32, kBlockBytes = 18, kChunkCols = 64, kSteps = 4, kSubSteps = 2;
    static constexpr int kTileBytes = 576, kUnroll = 4, kOffset = 8;
    static constexpr bool kHasMin = false, kNibbles = true;
    struct Frag {
        uint32_t q[4], d[2];
    };
    IMP_HD static void load(const uint8_t* t, int lane, Frag& f) {
        load_stream(t + 16 * lane, f.q, 4);
        load_u64(t + 512 + 8 * (lane >> 2), f.d);
    }
    IMP_HD static uint32_t bits(const Frag& f, int s, int k) { return nib_bits(f.q[s], k); }
    IMP_HD static RowScale scale(const Frag& f, int sb, int half) {
        return {f16_to_float(f.d[half] >> (16 * sb)), 0.f};
    }
    static uint32_t code_of(const uint8_t* row, int64_t col) {
        const uint8_t* b = row + (col / 32) * 18 + 2;
        const int j = int(col % 32);
        return j < 16 ? b[j] & 0xF : b[j - 16] >> 4;
    }
    static void put_code(uint8_t* t, int lane, int s, int k, int h, uint32_t code) {
        put_nib(t + 16 * lane, s, k, h, code);
    }
    static void put_meta(uint8_t* t, int r16, int blk, const uint8_t* block) {
        std::memcpy(t + 512 + 8 * (r16 & 7) + 4 * (r16 >> 3) + 2 * blk, block, 2);
    }
};

// ---- Q4_1: as Q4_0; (d, m) of rows g, g+8 for both blocks at 512 + 16 g.
struct LayoutQ4_1 {
    static constexpr int kBlock = 32, kBlockBytes = 20, kChunkCols = 64, kSteps = 4, kSubSteps = 2;
    static constexpr int kTileBytes = 640, kUnroll = 4, kOffset = 0;
    static constexpr bool kHasMin = true, kNibbles = true;
    struct Frag {
        uint32_t q[4], dm[4];
    };
    IMP_HD static void load(const uint8_t* t, int lane, Frag& f) {
        load_stream(t + 16 * lane, f.q, 4);
        load_words(t + 512 + 16 * (lane >> 2), f.dm, 4);
    }
    IMP_HD static uint32_t bits(const Frag& f, int s, int k) { return nib_bits(f.q[s], k); }
    IMP_HD static RowScale scale(const Frag& f, int sb, int half) {
        const uint32_t w = f.dm[2 * half + sb];
        return {f16_to_float(w), f16_to_float(w >> 16)};
    }
    static uint32_t code_of(const uint8_t* row, int64_t col) {
        const uint8_t* b = row + (col / 32) * 20 + 4;
        const int j = int(col % 32);
        return j < 16 ? b[j] & 0xF : b[j - 16] >> 4;
    }
    static void put_code(uint8_t* t, int lane, int s, int k, int h, uint32_t code) {
        put_nib(t + 16 * lane, s, k, h, code);
    }
    static void put_meta(uint8_t* t, int r16, int blk, const uint8_t* block) {
        std::memcpy(t + 512 + 16 * (r16 & 7) + 8 * (r16 >> 3) + 4 * blk, block, 4);
    }
};

// ---- Q8_0: 32-column chunks (one block); codes q + 128 as bytes, 16 B per lane (word 2 s + (k >> 1), bytes
// 2 (k & 1) + h); d of rows g, g+8 at 512 + 4 g.
struct LayoutQ8_0 {
    static constexpr int kBlock = 32, kBlockBytes = 34, kChunkCols = 32, kSteps = 2, kSubSteps = 2;
    static constexpr int kTileBytes = 544, kUnroll = 4, kOffset = 128;
    static constexpr bool kHasMin = false, kNibbles = false;
    struct Frag {
        uint32_t q[4], d;
    };
    IMP_HD static void load(const uint8_t* t, int lane, Frag& f) {
        load_stream(t + 16 * lane, f.q, 4);
        f.d = load_u32(t + 512 + 4 * (lane >> 2));
    }
    // Codes (0..255) of A-register k, elements 0 and 1.
    IMP_HD static uint32_t word(const Frag& f, int s, int k) { return f.q[2 * s + (k >> 1)]; }
    IMP_HD static int byte_index(int k) { return 2 * (k & 1); }
    IMP_HD static RowScale scale(const Frag& f, int, int half) { return {f16_to_float(f.d >> (16 * half)), 0.f}; }
    // dp4a form: the four codes of row g + 8 r in k-step s, columns 4 c + {0, 2, 1, 3} (the staged order of x).
    IMP_HD static uint32_t dp4a_codes(const Frag& f, int s, int r) {
        return byte_perm(f.q[2 * s], f.q[2 * s + 1], r == 0 ? 0x5140u : 0x7362u);
    }
    static uint32_t code_of(const uint8_t* row, int64_t col) { return row[(col / 32) * 34 + 2 + col % 32] ^ 0x80u; }
    static void put_code(uint8_t* t, int lane, int s, int k, int h, uint32_t code) {
        t[16 * lane + 4 * (2 * s + (k >> 1)) + 2 * (k & 1) + h] = uint8_t(code);
    }
    static void put_meta(uint8_t* t, int r16, int, const uint8_t* block) {
        std::memcpy(t + 512 + 4 * (r16 & 7) + 2 * (r16 >> 3), block, 2);
    }
};

// ---- Q4_K: 256-column chunks (one super-block); quants 64 B per lane in pieces (load_pieces; word s = k-step s);
// the 16 leading bytes of each row's block (d, dmin, scales[12]) at 2048 + 16 r.
struct LayoutQ4_K {
    static constexpr int kBlock = 256, kBlockBytes = 144, kChunkCols = 256, kSteps = 16, kSubSteps = 2;
    static constexpr int kTileBytes = 2304, kUnroll = 1, kOffset = 0;
    static constexpr bool kHasMin = true, kNibbles = true;
    // m: the raw 16 leading bytes of rows g and g + 8 (unpacked where used: k4_meta).
    struct Frag {
        uint32_t q[16], m[2][4];
    };
    IMP_HD static void load(const uint8_t* t, int lane, Frag& f) {
        load_pieces(t, lane, f.q, 4);
        load_words(t + 2048 + 16 * (lane >> 2), f.m[0], 4);
        load_words(t + 2048 + 16 * (lane >> 2) + 128, f.m[1], 4);
    }
    IMP_HD static uint32_t bits(const Frag& f, int s, int k) { return nib_bits(f.q[s], k); }
    IMP_HD static RowScale scale(const Frag& f, int sb, int half) { return k4_scale(k4_meta(f.m[half]).p, sb); }
    static uint32_t code_of(const uint8_t* row, int64_t col) {
        const uint8_t* b = row + (col / 256) * 144;
        const int e = int(col % 256), c = e / 64, l = e % 32;
        const uint8_t v = b[16 + 32 * c + l];
        return (e % 64) >= 32 ? v >> 4 : v & 0xF;
    }
    static void put_code(uint8_t* t, int lane, int s, int k, int h, uint32_t code) {
        put_nib(piece_word(t, lane, s), 0, k, h, code);
    }
    static void put_meta(uint8_t* t, int r16, int, const uint8_t* block) {
        std::memcpy(t + 2048 + 16 * r16, block, 16);
    }
};

// ---- Q5_K: Q4_K plus the fifth bits at 2048 + 16 lane (word s / 4, bit 16 h + 4 (s % 4) + k); meta at 2560.
struct LayoutQ5_K {
    static constexpr int kBlock = 256, kBlockBytes = 176, kChunkCols = 256, kSteps = 16, kSubSteps = 2;
    static constexpr int kTileBytes = 2816, kUnroll = 1, kOffset = 0;
    static constexpr bool kHasMin = true, kNibbles = true;
    struct Frag {
        uint32_t q[16], qh[4], m[2][4];  // m: raw, as Q4_K
    };
    IMP_HD static void load(const uint8_t* t, int lane, Frag& f) {
        load_pieces(t, lane, f.q, 4);
        load_stream(t + 2048 + 16 * lane, f.qh, 4);
        load_words(t + 2560 + 16 * (lane >> 2), f.m[0], 4);
        load_words(t + 2560 + 16 * (lane >> 2) + 128, f.m[1], 4);
    }
    IMP_HD static uint32_t bits(const Frag& f, int s, int k) {
        return and_or_r<0x00100010u>(shift_to(f.qh[s >> 2], 4 * (s & 3) + k, 4), nib_bits(f.q[s], k));
    }
    IMP_HD static RowScale scale(const Frag& f, int sb, int half) { return k4_scale(k4_meta(f.m[half]).p, sb); }
    static uint32_t code_of(const uint8_t* row, int64_t col) {
        const uint8_t* b = row + (col / 256) * 176;
        const int e = int(col % 256), c = e / 64, l = e % 32, hi = (e % 64) >= 32;
        const uint8_t v = b[48 + 32 * c + l];
        return uint32_t(hi ? v >> 4 : v & 0xF) | (((b[16 + l] >> (2 * c + hi)) & 1u) << 4);
    }
    static void put_code(uint8_t* t, int lane, int s, int k, int h, uint32_t code) {
        put_nib(piece_word(t, lane, s), 0, k, h, code);
        set_bits(t + 2048 + 16 * lane, s >> 2, 16 * h + 4 * (s & 3) + k, (code >> 4) & 1);
    }
    static void put_meta(uint8_t* t, int r16, int, const uint8_t* block) {
        std::memcpy(t + 2560 + 16 * r16, block, 16);
    }
};

// ---- Q6_K: low nibbles as Q4_K; the high 2 bits in two pieces from 2048 (word s / 2, bits 16 h + 8 (s % 2) + 2 k);
// int8 scales of row r at 3072 + 16 r; d of rows g, g+8 at 3328 + 4 g. Scale blocks are 16 columns (one k-step).
struct LayoutQ6_K {
    static constexpr int kBlock = 256, kBlockBytes = 210, kChunkCols = 256, kSteps = 16, kSubSteps = 1;
    static constexpr int kTileBytes = 3360, kUnroll = 1, kOffset = 32;
    static constexpr bool kHasMin = false, kNibbles = true;
    struct Frag {
        uint32_t q[16], qh[8], sc[2][4], d;
    };
    IMP_HD static void load(const uint8_t* t, int lane, Frag& f) {
        load_pieces(t, lane, f.q, 4);
        load_pieces(t + 2048, lane, f.qh, 2);
        load_words(t + 3072 + 16 * (lane >> 2), f.sc[0], 4);
        load_words(t + 3072 + 16 * (lane >> 2) + 128, f.sc[1], 4);
        f.d = load_u32(t + 3328 + 4 * (lane >> 2));
    }
    IMP_HD static uint32_t bits(const Frag& f, int s, int k) {
        return and_or_r<0x00300030u>(shift_to(f.qh[s >> 1], 8 * (s & 1) + 2 * k, 4), nib_bits(f.q[s], k));
    }
    IMP_HD static RowScale scale(const Frag& f, int sb, int half) {
        // int8 scale: (byte ^ 0x80) - 128
        const float sc = byte_to_float(f.sc[half][sb >> 2] ^ 0x80808080u, sb & 3) - 128.f;
        return {f16_to_float(f.d >> (16 * half)) * sc, 0.f};
    }
    static uint32_t code_of(const uint8_t* row, int64_t col) {
        const uint8_t* b = row + (col / 256) * 210;
        const int e = int(col % 256), hh = e / 128, quarter = (e % 128) / 32, l = e % 32;
        const uint8_t lb = b[64 * hh + l + 32 * (quarter & 1)];
        const uint32_t nib = quarter >= 2 ? lb >> 4 : lb & 0xF;
        return nib | (((b[128 + 32 * hh + l] >> (2 * quarter)) & 3u) << 4);
    }
    static void put_code(uint8_t* t, int lane, int s, int k, int h, uint32_t code) {
        put_nib(piece_word(t, lane, s), 0, k, h, code);
        set_bits(piece_word(t + 2048, lane, s >> 1), 0, 16 * h + 8 * (s & 1) + 2 * k, (code >> 4) & 3);
    }
    static void put_meta(uint8_t* t, int r16, int, const uint8_t* block) {
        std::memcpy(t + 3072 + 16 * r16, block + 192, 16);
        std::memcpy(t + 3328 + 4 * (r16 & 7) + 2 * (r16 >> 3), block + 208, 2);
    }
};

// Signed values (code - kOffset) of A-register k, elements 0 and 1.
template <class L>
IMP_HD void codes(const typename L::Frag& f, int s, int k, int& q0, int& q1) {
    if constexpr (L::kNibbles) {
        const uint32_t b = L::bits(f, s, k);
        q0 = int(b & 0x7F) - L::kOffset;
        q1 = int((b >> 16) & 0x7F) - L::kOffset;
    } else {
        const uint32_t w = L::word(f, s, k) >> (8 * L::byte_index(k));
        q0 = int(w & 0xFF) - L::kOffset;
        q1 = int((w >> 8) & 0xFF) - L::kOffset;
    }
}

// Row (within the tile) and column (within the chunk) of element h of A-register k of lane `lane` in k-step s.
IMP_HD int elem_row(int lane, int k) {
    return (lane >> 2) + 8 * (k & 1);
}
IMP_HD int elem_col(int lane, int s, int k, int h) {
    return 16 * s + 4 * (lane & 3) + 2 * (k >> 1) + h;
}

}  // namespace imp::ggml::cuda
