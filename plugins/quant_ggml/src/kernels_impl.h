// quant_ggml: the kernel bodies, included by kernels_generic.cpp and kernels_avx2.cpp (compiled with different
// -m flags). Everything here has internal linkage, and nothing here instantiates an inline function or template
// from a library header: a COMDAT copy built with AVX2 must never be picked by the linker for the generic build.
// Block layouts and formulas: FORMATS.md 1.6 (facts from ggml-quants.c and gguf-py quants.py). The order of the
// float operations matches gguf-py's dequantize_blocks exactly, so results are bit for bit equal.
#ifndef IMP_GGML_KERNELS_NAME
#error "define IMP_GGML_KERNELS_NAME and IMP_GGML_KERNELS_FN before including kernels_impl.h"
#endif

#include <cstdint>

#include "kernels.h"

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>
#define IMP_GGML_AVX2 1
#endif

namespace imp::ggml {
namespace {

inline uint16_t ld16(const uint8_t* p) {
    uint16_t v;
    __builtin_memcpy(&v, p, 2);
    return v;
}
inline uint32_t ld32(const uint8_t* p) {
    uint32_t v;
    __builtin_memcpy(&v, p, 4);
    return v;
}
inline float as_float(uint32_t u) {
    float f;
    __builtin_memcpy(&f, &u, 4);
    return f;
}

inline uint32_t as_bits(float f) {
    uint32_t u;
    __builtin_memcpy(&u, &f, 4);
    return u;
}

// IEEE binary16 -> binary32, exact (NaN payloads kept), branch-free so loops over it vectorize. Subnormals go
// through an exact subtraction of two normal floats (2^-14 + m 2^-24) - 2^-14, so MXCSR.DAZ/FTZ cannot flush them.
inline float h2f_soft(uint16_t h) {
    const uint32_t sign = uint32_t(h & 0x8000) << 16;
    const uint32_t em = h & 0x7fff;
    uint32_t bits = (em << 13) + (112u << 23);         // rebias the exponent: 15 -> 127
    bits = em >= 0x7c00 ? bits + (112u << 23) : bits;  // inf / NaN: exponent 255
    const uint32_t sub = as_bits(as_float(bits + (1u << 23)) - as_float(113u << 23));
    bits = em < 0x0400 ? sub : bits;  // zero / subnormal
    return as_float(bits | sign);
}

#ifdef IMP_GGML_AVX2
inline float h2f(uint16_t h) { return _cvtsh_ss(h); }
#else
inline float h2f(uint16_t h) { return h2f_soft(h); }
#endif

constexpr int8_t kIQ4NL[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};
constexpr int8_t kMXFP4[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

// ---- plain float types (a "block" is one element)

[[maybe_unused]] void dq_f32(const uint8_t* __restrict src, int64_t n, float* __restrict y) {
    __builtin_memcpy(y, src, size_t(n) * 4);
}

[[maybe_unused]] void dq_f16(const uint8_t* __restrict src, int64_t n, float* __restrict y) {
    int64_t i = 0;
#ifdef IMP_GGML_AVX2
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 2 * i))));
#endif
    for (; i < n; ++i) y[i] = h2f(ld16(src + 2 * i));
}

[[maybe_unused]] void dq_bf16(const uint8_t* __restrict src, int64_t n, float* __restrict y) {
    for (int64_t i = 0; i < n; ++i) y[i] = as_float(uint32_t(ld16(src + 2 * i)) << 16);
}

// ---- 32-element blocks

[[maybe_unused]] void dq_q4_0(const uint8_t* __restrict src, int64_t nb, float* __restrict y) {
    for (int64_t b = 0; b < nb; ++b, src += 18, y += 32) {
        const float d = h2f(ld16(src));
        const uint8_t* qs = src + 2;
        for (int j = 0; j < 16; ++j) {
            y[j] = d * float(int(qs[j] & 0xF) - 8);
            y[j + 16] = d * float(int(qs[j] >> 4) - 8);
        }
    }
}

[[maybe_unused]] void dq_q4_1(const uint8_t* __restrict src, int64_t nb, float* __restrict y) {
    for (int64_t b = 0; b < nb; ++b, src += 20, y += 32) {
        const float d = h2f(ld16(src)), m = h2f(ld16(src + 2));
        const uint8_t* qs = src + 4;
        for (int j = 0; j < 16; ++j) {
            y[j] = d * float(qs[j] & 0xF) + m;
            y[j + 16] = d * float(qs[j] >> 4) + m;
        }
    }
}

[[maybe_unused]] void dq_q5_0(const uint8_t* __restrict src, int64_t nb, float* __restrict y) {
    for (int64_t b = 0; b < nb; ++b, src += 22, y += 32) {
        const float d = h2f(ld16(src));
        const uint32_t qh = ld32(src + 2);
        const uint8_t* qs = src + 6;
        for (int j = 0; j < 16; ++j) {
            const int lo = int((qs[j] & 0xF) | (((qh >> j) & 1) << 4));
            const int hi = int((qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4));
            y[j] = d * float(lo - 16);
            y[j + 16] = d * float(hi - 16);
        }
    }
}

[[maybe_unused]] void dq_q5_1(const uint8_t* __restrict src, int64_t nb, float* __restrict y) {
    for (int64_t b = 0; b < nb; ++b, src += 24, y += 32) {
        const float d = h2f(ld16(src)), m = h2f(ld16(src + 2));
        const uint32_t qh = ld32(src + 4);
        const uint8_t* qs = src + 8;
        for (int j = 0; j < 16; ++j) {
            const uint32_t lo = (qs[j] & 0xF) | (((qh >> j) & 1) << 4);
            const uint32_t hi = (qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4);
            y[j] = d * float(lo) + m;
            y[j + 16] = d * float(hi) + m;
        }
    }
}

[[maybe_unused]] void dq_q8_0(const uint8_t* __restrict src, int64_t nb, float* __restrict y) {
    for (int64_t b = 0; b < nb; ++b, src += 34, y += 32) {
        const float d = h2f(ld16(src));
        const int8_t* qs = reinterpret_cast<const int8_t*>(src + 2);
        for (int j = 0; j < 32; ++j) y[j] = d * float(qs[j]);
    }
}

[[maybe_unused]] void dq_iq4_nl(const uint8_t* __restrict src, int64_t nb, float* __restrict y) {
    for (int64_t b = 0; b < nb; ++b, src += 18, y += 32) {
        const float d = h2f(ld16(src));
        const uint8_t* qs = src + 2;
        for (int j = 0; j < 16; ++j) {
            y[j] = d * float(kIQ4NL[qs[j] & 0xF]);
            y[j + 16] = d * float(kIQ4NL[qs[j] >> 4]);
        }
    }
}

[[maybe_unused]] void dq_mxfp4(const uint8_t* __restrict src, int64_t nb, float* __restrict y) {
    for (int64_t b = 0; b < nb; ++b, src += 17, y += 32) {
        const uint32_t e = src[0];  // E8M0 halved: 2^(e-128); e < 2 lands on fp32 subnormals
        const float d = as_float(e < 2 ? (0x00200000u << e) : ((e - 1) << 23));
        const uint8_t* qs = src + 1;
        for (int j = 0; j < 16; ++j) {
            y[j] = d * float(kMXFP4[qs[j] & 0xF]);
            y[j + 16] = d * float(kMXFP4[qs[j] >> 4]);
        }
    }
}

// ---- 256-element super-blocks

// 6-bit scale and min of sub-block j of Q4_K / Q5_K (12 packed bytes).
inline void scale_min_k4(int j, const uint8_t* s, uint32_t& sc, uint32_t& mn) {
    if (j < 4) {
        sc = s[j] & 63;
        mn = s[j + 4] & 63;
    } else {
        sc = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
        mn = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

[[maybe_unused]] void dq_q2_k(const uint8_t* __restrict src, int64_t nb, float* __restrict y) {
    for (int64_t b = 0; b < nb; ++b, src += 84, y += 256) {
        const uint8_t* scales = src;
        const uint8_t* qs = src + 16;
        const float d = h2f(ld16(src + 80)), dmin = h2f(ld16(src + 82));
        for (int h = 0; h < 2; ++h)
            for (int s = 0; s < 4; ++s)
                for (int g = 0; g < 2; ++g) {
                    const uint8_t sc = scales[8 * h + 2 * s + g];
                    const float dl = d * float(sc & 0xF), ml = dmin * float(sc >> 4);
                    const uint8_t* q = qs + 32 * h + 16 * g;
                    float* o = y + 128 * h + 32 * s + 16 * g;
                    for (int l = 0; l < 16; ++l) o[l] = dl * float((q[l] >> (2 * s)) & 3) - ml;
                }
    }
}

[[maybe_unused]] void dq_q3_k(const uint8_t* __restrict src, int64_t nb, float* __restrict y) {
    for (int64_t b = 0; b < nb; ++b, src += 110, y += 256) {
        const uint8_t* hmask = src;
        const uint8_t* qs = src + 32;
        const uint8_t* sb = src + 96;
        const float d = h2f(ld16(src + 108));
        float dl[16];
        for (int i = 0; i < 16; ++i) {
            const uint32_t lo = (i < 8 ? sb[i] : sb[i - 8] >> 4) & 0xF;
            const uint32_t hi = (sb[8 + i % 4] >> (2 * (i / 4))) & 3;
            dl[i] = d * float(int(lo | (hi << 4)) - 32);
        }
        for (int h = 0; h < 2; ++h)
            for (int s = 0; s < 4; ++s) {
                const int j = 4 * h + s;  // 32-element stripe: hmask bit j
                float* o = y + 32 * j;
                for (int g = 0; g < 2; ++g) {  // two 16-element groups, one scale each
                    const float sc = dl[2 * j + g];
                    for (int k = 16 * g; k < 16 * g + 16; ++k) {
                        const int low = (qs[32 * h + k] >> (2 * s)) & 3;
                        const int q = low - (((hmask[k] >> j) & 1) ? 0 : 4);
                        o[k] = sc * float(q);
                    }
                }
            }
    }
}

[[maybe_unused]] void dq_q4_k(const uint8_t* __restrict src, int64_t nb, float* __restrict y) {
    for (int64_t b = 0; b < nb; ++b, src += 144, y += 256) {
        const float d = h2f(ld16(src)), dmin = h2f(ld16(src + 2));
        const uint8_t* scales = src + 4;
        const uint8_t* qs = src + 16;
        for (int c = 0; c < 4; ++c) {
            uint32_t sc0, m0, sc1, m1;
            scale_min_k4(2 * c, scales, sc0, m0);
            scale_min_k4(2 * c + 1, scales, sc1, m1);
            const float d0 = d * float(sc0), dm0 = dmin * float(m0);
            const float d1 = d * float(sc1), dm1 = dmin * float(m1);
            const uint8_t* q = qs + 32 * c;
            float* o = y + 64 * c;
            for (int l = 0; l < 32; ++l) {
                o[l] = d0 * float(q[l] & 0xF) - dm0;
                o[l + 32] = d1 * float(q[l] >> 4) - dm1;
            }
        }
    }
}

[[maybe_unused]] void dq_q5_k(const uint8_t* __restrict src, int64_t nb, float* __restrict y) {
    for (int64_t b = 0; b < nb; ++b, src += 176, y += 256) {
        const float d = h2f(ld16(src)), dmin = h2f(ld16(src + 2));
        const uint8_t* scales = src + 4;
        const uint8_t* qh = src + 16;
        const uint8_t* qs = src + 48;
        for (int c = 0; c < 4; ++c) {
            uint32_t sc0, m0, sc1, m1;
            scale_min_k4(2 * c, scales, sc0, m0);
            scale_min_k4(2 * c + 1, scales, sc1, m1);
            const float d0 = d * float(sc0), dm0 = dmin * float(m0);
            const float d1 = d * float(sc1), dm1 = dmin * float(m1);
            const uint8_t* q = qs + 32 * c;
            float* o = y + 64 * c;
            for (int l = 0; l < 32; ++l) {
                const uint32_t lo = (q[l] & 0xF) | (((qh[l] >> (2 * c)) & 1) << 4);
                const uint32_t hi = (q[l] >> 4) | (((qh[l] >> (2 * c + 1)) & 1) << 4);
                o[l] = d0 * float(lo) - dm0;
                o[l + 32] = d1 * float(hi) - dm1;
            }
        }
    }
}

[[maybe_unused]] void dq_q6_k(const uint8_t* __restrict src, int64_t nb, float* __restrict y) {
    for (int64_t b = 0; b < nb; ++b, src += 210, y += 256) {
        const uint8_t* ql = src;
        const uint8_t* qh = src + 128;
        const int8_t* sc = reinterpret_cast<const int8_t*>(src + 192);
        const float d = h2f(ld16(src + 208));
        float dl[16];
        for (int i = 0; i < 16; ++i) dl[i] = d * float(sc[i]);
        for (int h = 0; h < 2; ++h)
            for (int s = 0; s < 4; ++s) {
                const uint8_t* l4 = ql + 64 * h + 32 * (s & 1);
                const uint8_t* h2 = qh + 32 * h;
                const int shl = 4 * (s >> 1), shh = 2 * s;
                float* o = y + 128 * h + 32 * s;
                const float* dd = dl + 8 * h + 2 * s;
                for (int g = 0; g < 2; ++g) {  // two 16-element groups, one scale each
                    const float sc = dd[g];
                    for (int l = 16 * g; l < 16 * g + 16; ++l) {
                        const int q = int(((l4[l] >> shl) & 0xF) | (((h2[l] >> shh) & 3) << 4)) - 32;
                        o[l] = sc * float(q);
                    }
                }
            }
    }
}

[[maybe_unused]] void dq_iq4_xs(const uint8_t* __restrict src, int64_t nb, float* __restrict y) {
    for (int64_t b = 0; b < nb; ++b, src += 136, y += 256) {
        const float d = h2f(ld16(src));
        const uint32_t scales_h = ld16(src + 2);
        const uint8_t* scales_l = src + 4;
        const uint8_t* qs = src + 8;
        for (int ib = 0; ib < 8; ++ib) {
            const uint32_t lo = (scales_l[ib / 2] >> (4 * (ib % 2))) & 0xF;
            const uint32_t hi = (scales_h >> (2 * ib)) & 3;
            const float dl = d * float(int(lo | (hi << 4)) - 32);
            const uint8_t* q = qs + 16 * ib;
            float* o = y + 32 * ib;
            for (int k = 0; k < 16; ++k) {
                o[k] = dl * float(kIQ4NL[q[k] & 0xF]);
                o[k + 16] = dl * float(kIQ4NL[q[k] >> 4]);
            }
        }
    }
}

}  // namespace
}  // namespace imp::ggml

#ifdef IMP_GGML_AVX2
#include "kernels_avx2.h"
#define IMP_GGML_DQ(name) dqv_##name
#define IMP_GGML_DOTQ(name) dotq_##name
#else
#define IMP_GGML_DQ(name) dq_##name
#define IMP_GGML_DOTQ(name) nullptr
#endif

namespace imp::ggml {
namespace {

// ---- dot products of up to 4 rows with one activation row

#ifdef IMP_GGML_AVX2
template <int NR>
void dot_rows_n(const float* w, int64_t ws, const float* x, int64_t n, float* y) {
    __m256 a[NR], b[NR];
    for (int r = 0; r < NR; ++r) a[r] = b[r] = _mm256_setzero_ps();
    int64_t c = 0;
    for (; c + 16 <= n; c += 16) {
        const __m256 x0 = _mm256_loadu_ps(x + c), x1 = _mm256_loadu_ps(x + c + 8);
        for (int r = 0; r < NR; ++r) {
            a[r] = _mm256_fmadd_ps(_mm256_loadu_ps(w + r * ws + c), x0, a[r]);
            b[r] = _mm256_fmadd_ps(_mm256_loadu_ps(w + r * ws + c + 8), x1, b[r]);
        }
    }
    for (; c + 8 <= n; c += 8) {
        const __m256 x0 = _mm256_loadu_ps(x + c);
        for (int r = 0; r < NR; ++r) a[r] = _mm256_fmadd_ps(_mm256_loadu_ps(w + r * ws + c), x0, a[r]);
    }
    for (int r = 0; r < NR; ++r) {
        float s = hsum(_mm256_add_ps(a[r], b[r]));
        for (int64_t k = c; k < n; ++k) s += w[r * ws + k] * x[k];
        y[r] = s;
    }
}
#else
template <int NR>
void dot_rows_n(const float* w, int64_t ws, const float* x, int64_t n, float* y) {
    float acc[NR][8] = {};
    int64_t c = 0;
    for (; c + 8 <= n; c += 8)
        for (int r = 0; r < NR; ++r)
            for (int k = 0; k < 8; ++k) acc[r][k] += w[r * ws + c + k] * x[c + k];
    for (int r = 0; r < NR; ++r) {
        float s =
            ((acc[r][0] + acc[r][4]) + (acc[r][1] + acc[r][5])) + ((acc[r][2] + acc[r][6]) + (acc[r][3] + acc[r][7]));
        for (int64_t k = c; k < n; ++k) s += w[r * ws + k] * x[k];
        y[r] = s;
    }
}
#endif

void dot_rows(const float* w, int64_t ws, int nr, const float* x, int64_t n, float* y) {
    switch (nr) {
        case 4: dot_rows_n<4>(w, ws, x, n, y); break;
        case 3: dot_rows_n<3>(w, ws, x, n, y); break;
        case 2: dot_rows_n<2>(w, ws, x, n, y); break;
        default: dot_rows_n<1>(w, ws, x, n, y); break;
    }
}

}  // namespace

const Kernels& IMP_GGML_KERNELS_FN() {
    // Order: the Type enum.
    static const Kernels k = {
        IMP_GGML_KERNELS_NAME,
        {dq_f32, dq_f16, dq_bf16, IMP_GGML_DQ(q4_0), IMP_GGML_DQ(q4_1), IMP_GGML_DQ(q5_0), IMP_GGML_DQ(q5_1),
         IMP_GGML_DQ(q8_0), IMP_GGML_DQ(q2_k), IMP_GGML_DQ(q3_k), IMP_GGML_DQ(q4_k), IMP_GGML_DQ(q5_k),
         IMP_GGML_DQ(q6_k), IMP_GGML_DQ(iq4_nl), IMP_GGML_DQ(iq4_xs), dq_mxfp4},
        dot_rows,
        {nullptr, nullptr, nullptr, IMP_GGML_DOTQ(q4_0), IMP_GGML_DOTQ(q4_1), IMP_GGML_DOTQ(q5_0), IMP_GGML_DOTQ(q5_1),
         IMP_GGML_DOTQ(q8_0), IMP_GGML_DOTQ(q2_k), IMP_GGML_DOTQ(q3_k), IMP_GGML_DOTQ(q4_k), IMP_GGML_DOTQ(q5_k),
         IMP_GGML_DOTQ(q6_k), IMP_GGML_DOTQ(iq4_nl), IMP_GGML_DOTQ(iq4_xs), nullptr}};
    return k;
}

}  // namespace imp::ggml
