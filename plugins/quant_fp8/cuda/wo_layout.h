// Weight-only CUDA kernels shared by quant_fp8 and quant_nvfp4 (library quant_fp8_cuda): the device layout of one
// [rows, cols] matrix and the host-side launchers (wo_kernels.cu, wo_gemv_*.cu). Needs no CUDA headers.
//
// Device layout of one matrix (experts: n_expert of them back to back, `bytes` apart; every offset 256-aligned):
//   codes  [rows_p, ld] bytes at offset 0 (rows_p = rows padded to 16 for FP8, whose GEMM wants whole 16-row
//          tiles; = rows for NVFP4). cp = cols padded (NVFP4: to 32, FP8: to 16); zero codes in all padding.
//          FP8:   ld = cp, byte c of a row = the E4M3 code of element c (as in the file).
//          NVFP4: ld = cp / 2; 16-byte chunk k of a row holds elements [32k, 32k + 32) as four 32-bit words, word j
//                 elements 32k + 8j + i (i < 8) in nibble kNibble[i] = {3, 7, 2, 6, 1, 5, 0, 4}[i] (nibble n = bits
//                 4n..4n+3): the order in which the GEMV's half2 extraction (sign bit 15 / 31, magnitude bits 12-14
//                 / 28-30, shifted by 3) yields elements (0, 1), (2, 3), (4, 5), (6, 7) as q is shifted left by 4.
//   scales NVFP4: E4M3 [rows, cp / 16] bytes at scale_off (zero in the padding).
//   post   fp32 at post_off: NVFP4: [1] the global scale; FP8: [n_post] the weight scales (n_post 1 or rows).
//   fp8    (NVFP4 with the FP8 prefill variant only) E4M3 [rows_p16, cp] at fp8_off (zero padding rows):
//          e2m1 * e4m3 / fp8_unit rounded to E4M3 (one per-tensor unit), and the fp32 fp8_scale = global *
//          fp8_unit alone at fp8_scale_off (256-aligned: cuBLASLt's FP8 GEMM refuses a scale pointer that is not
//          16-byte aligned, "not supported", for some kernels).
//   vec    (with the per-token FP8 GEMM only) fp32 [rows_p16] at vec_off: the weight's scale of each row as the
//          FP8 GEMM's outer-vector A scale (FP8: its per-row or per-tensor scale; NVFP4: the FP8 copy's scale;
//          zero in the padding rows).
#pragma once
#include <cstdint>

namespace imp::wo {

enum class Codec { FP8, NVFP4 };

struct Layout {
    Codec codec = Codec::FP8;
    int64_t rows = 0, cols = 0, cp = 0;
    int64_t rows_p = 0;         // rows of the code array
    int64_t rows_p16 = 0;       // rows padded to 16 (the FP8 GEMM's m)
    int64_t ld = 0;             // code bytes per row
    int64_t scale_ld = 0;       // NVFP4 scale bytes per row
    uint64_t scale_off = 0, post_off = 0, fp8_scale_off = 0, fp8_off = 0;
    int64_t n_post = 1;         // FP8: weight scales (1 or rows)
    bool has_fp8 = false;       // NVFP4: FP8 copy for the prefill GEMM
    bool has_vec = false;       // the per-row scale vector of the per-token FP8 GEMM
    uint64_t vec_off = 0;
    uint64_t bytes = 0;         // one matrix
};

inline uint64_t round256(uint64_t v) { return (v + 255) / 256 * 256; }

inline Layout make_layout(Codec c, int64_t rows, int64_t cols, int64_t n_post, bool fp8_copy, bool scale_vec = false) {
    Layout l;
    l.codec = c;
    l.rows = rows;
    l.cols = cols;
    l.rows_p16 = (rows + 15) / 16 * 16;
    l.rows_p = c == Codec::FP8 ? l.rows_p16 : rows;
    l.cp = c == Codec::NVFP4 ? (cols + 31) / 32 * 32 : (cols + 15) / 16 * 16;
    l.ld = c == Codec::NVFP4 ? l.cp / 2 : l.cp;
    l.scale_ld = c == Codec::NVFP4 ? l.cp / 16 : 0;
    l.scale_off = round256(uint64_t(l.rows_p * l.ld));
    l.post_off = l.scale_off + round256(uint64_t(rows * l.scale_ld));
    l.n_post = c == Codec::NVFP4 ? 1 : n_post;
    l.has_fp8 = c == Codec::NVFP4 && fp8_copy;
    l.fp8_scale_off = l.post_off + round256(uint64_t(l.n_post) * 4);
    l.fp8_off = l.fp8_scale_off + 256;
    l.bytes = l.has_fp8 ? l.fp8_off + round256(uint64_t(l.rows_p16 * l.cp)) : l.post_off + round256(uint64_t(l.n_post) * 4);
    l.has_vec = scale_vec && (c == Codec::FP8 || l.has_fp8);
    l.vec_off = l.bytes;
    if (l.has_vec) l.bytes += round256(uint64_t(l.rows_p16) * 4);
    return l;
}

// The NVFP4 nibble of element i (0..7) of a 32-bit word of the device layout.
constexpr int kNibble[8] = {3, 7, 2, 6, 1, 5, 0, 4};

// A 32-bit word of the device layout from the word of 8 canonical codes (element i in nibble i, as the file's bytes
// read little-endian: element 2j in the low nibble of byte j). kNibble sends the even elements 6, 4, 2, 0 to nibbles
// 0-3 and the odd 7, 5, 3, 1 to nibbles 4-7: byte-reverse each half's nibbles, then pack four byte-held nibbles into
// 16 bits (the load-time repack, a few operations per 8 codes instead of per code).
constexpr uint32_t nvfp4_pack4(uint32_t x) {  // the low nibbles of bytes 0..3 -> nibbles 0..3
    x = (x | (x >> 4)) & 0x00FF00FFu;
    return (x | (x >> 8)) & 0x0000FFFFu;
}
constexpr uint32_t nvfp4_bswap(uint32_t x) {
    return (x >> 24) | ((x >> 8) & 0xFF00u) | ((x << 8) & 0xFF0000u) | (x << 24);
}
constexpr uint32_t nvfp4_device_word(uint32_t canonical) {
    return nvfp4_pack4(nvfp4_bswap(canonical & 0x0F0F0F0Fu)) |
           (nvfp4_pack4(nvfp4_bswap((canonical >> 4) & 0x0F0F0F0Fu)) << 16);
}

}  // namespace imp::wo
