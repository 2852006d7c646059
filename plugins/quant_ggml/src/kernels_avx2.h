// quant_ggml: AVX2 dequantization of the block types (included by kernels_impl.h in the AVX2 build only).
// Same arithmetic as the scalar code: integers converted exactly to float, then one multiply (and one add or
// subtract) per element in gguf-py's order, no FMA, so the results stay bit for bit equal.
#pragma once

namespace imp::ggml {
namespace {

inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// Where dequantized values go: the block decoders below call put(e, k, v) with 8 values for elements e..e+7
// (k = e / 8 % 4). StoreSink writes them out (dequantize); DotSink multiplies them into NT activation rows
// (the fused matvec: no round trip through memory).
struct StoreSink {
    float* y;
    void put(int64_t e, int, __m256 v) { _mm256_storeu_ps(y + e, v); }
};

template <int NT>
struct DotSink {
    static constexpr int K = NT == 1 ? 4 : 2;  // independent FMA chains per token
    const float* x;
    int64_t xs;
    __m256 acc[NT][K];
    void put(int64_t e, int k, __m256 v) {
        for (int t = 0; t < NT; ++t) acc[t][k % K] = _mm256_fmadd_ps(v, _mm256_loadu_ps(x + t * xs + e), acc[t][k % K]);
    }
};

enum class Tail { None, Add, Sub };

// Elements e..e+31 = d * float(v[i]) (+ or - m), v = 32 signed bytes; d0/m0 apply to elements 0..15, d1/m1 to
// 16..31.
template <Tail T, class S>
inline void emit32(S& s, int64_t e, __m256i v, __m256 d0, __m256 d1, __m256 m0 = __m256(), __m256 m1 = __m256()) {
    const __m128i lo = _mm256_castsi256_si128(v), hi = _mm256_extracti128_si256(v, 1);
    const __m128i parts[4] = {lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8)};
    for (int k = 0; k < 4; ++k) {
        __m256 f = _mm256_mul_ps(k < 2 ? d0 : d1, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(parts[k])));
        if constexpr (T == Tail::Add) f = _mm256_add_ps(f, k < 2 ? m0 : m1);
        if constexpr (T == Tail::Sub) f = _mm256_sub_ps(f, k < 2 ? m0 : m1);
        s.put(e + 8 * k, k, f);
    }
}

inline __m256i load256(const uint8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
inline __m128i load128(const uint8_t* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)); }

// 16 packed bytes -> 32 nibbles: low nibbles first (elements 0..15), then high nibbles (16..31).
inline __m256i nibbles_split16(const uint8_t* qs) {
    const __m128i q = load128(qs), m = _mm_set1_epi8(0x0F);
    return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(q, 4), m), _mm_and_si128(q, m));
}

// Byte j (0..31) = 0x10 when bit j of qh is set, else 0.
inline __m256i qh_bits16(uint32_t qh) {
    const __m256i shuf = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0);
    const __m256i bits = _mm256_set1_epi64x(int64_t(0x8040201008040201ull));
    const __m256i b = _mm256_and_si256(_mm256_shuffle_epi8(_mm256_set1_epi32(int(qh)), shuf), bits);
    return _mm256_and_si256(_mm256_cmpeq_epi8(b, bits), _mm256_set1_epi8(0x10));
}

// Bytes >> shift (0..7), masked to `mask`.
inline __m256i shr_mask(__m256i v, int shift, int mask) {
    return _mm256_and_si256(_mm256_srl_epi16(v, _mm_cvtsi32_si128(shift)), _mm256_set1_epi8(char(mask)));
}

template <class S>
void run_q4_0(const uint8_t* src, int64_t nb, S& sk) {
    for (int64_t b = 0, e = 0; b < nb; ++b, src += 18, e += 32) {
        const __m256 d = _mm256_set1_ps(h2f(ld16(src)));
        emit32<Tail::None>(sk, e, _mm256_sub_epi8(nibbles_split16(src + 2), _mm256_set1_epi8(8)), d, d);
    }
}

template <class S>
void run_q4_1(const uint8_t* src, int64_t nb, S& sk) {
    for (int64_t b = 0, e = 0; b < nb; ++b, src += 20, e += 32) {
        const __m256 d = _mm256_set1_ps(h2f(ld16(src))), m = _mm256_set1_ps(h2f(ld16(src + 2)));
        emit32<Tail::Add>(sk, e, nibbles_split16(src + 4), d, d, m, m);
    }
}

template <class S>
void run_q5_0(const uint8_t* src, int64_t nb, S& sk) {
    for (int64_t b = 0, e = 0; b < nb; ++b, src += 22, e += 32) {
        const __m256 d = _mm256_set1_ps(h2f(ld16(src)));
        const __m256i q = _mm256_or_si256(nibbles_split16(src + 6), qh_bits16(ld32(src + 2)));
        emit32<Tail::None>(sk, e, _mm256_sub_epi8(q, _mm256_set1_epi8(16)), d, d);
    }
}

template <class S>
void run_q5_1(const uint8_t* src, int64_t nb, S& sk) {
    for (int64_t b = 0, e = 0; b < nb; ++b, src += 24, e += 32) {
        const __m256 d = _mm256_set1_ps(h2f(ld16(src))), m = _mm256_set1_ps(h2f(ld16(src + 2)));
        emit32<Tail::Add>(sk, e, _mm256_or_si256(nibbles_split16(src + 8), qh_bits16(ld32(src + 4))), d, d, m, m);
    }
}

template <class S>
void run_q8_0(const uint8_t* src, int64_t nb, S& sk) {
    for (int64_t b = 0, e = 0; b < nb; ++b, src += 34, e += 32) {
        const __m256 d = _mm256_set1_ps(h2f(ld16(src)));
        emit32<Tail::None>(sk, e, load256(src + 2), d, d);
    }
}

inline __m256i iq4_lookup(__m256i idx) {
    const __m128i t = _mm_loadu_si128(reinterpret_cast<const __m128i*>(kIQ4NL));
    return _mm256_shuffle_epi8(_mm256_set_m128i(t, t), idx);
}

template <class S>
void run_iq4_nl(const uint8_t* src, int64_t nb, S& sk) {
    for (int64_t b = 0, e = 0; b < nb; ++b, src += 18, e += 32) {
        const __m256 d = _mm256_set1_ps(h2f(ld16(src)));
        emit32<Tail::None>(sk, e, iq4_lookup(nibbles_split16(src + 2)), d, d);
    }
}

template <class S>
void run_iq4_xs(const uint8_t* src, int64_t nb, S& sk) {
    for (int64_t b = 0, e = 0; b < nb; ++b, src += 136, e += 256) {
        const float d = h2f(ld16(src));
        const uint32_t scales_h = ld16(src + 2);
        for (int ib = 0; ib < 8; ++ib) {
            const uint32_t lo = (src[4 + ib / 2] >> (4 * (ib % 2))) & 0xF;
            const uint32_t hi = (scales_h >> (2 * ib)) & 3;
            const __m256 dl = _mm256_set1_ps(d * float(int(lo | (hi << 4)) - 32));
            emit32<Tail::None>(sk, e + 32 * ib, iq4_lookup(nibbles_split16(src + 8 + 16 * ib)), dl, dl);
        }
    }
}

template <class S>
void run_q2_k(const uint8_t* src, int64_t nb, S& sk) {
    for (int64_t b = 0, e = 0; b < nb; ++b, src += 84, e += 256) {
        const float d = h2f(ld16(src + 80)), dmin = h2f(ld16(src + 82));
        for (int h = 0; h < 2; ++h) {
            const __m256i q = load256(src + 16 + 32 * h);
            for (int s = 0; s < 4; ++s) {
                const uint8_t sc0 = src[8 * h + 2 * s], sc1 = src[8 * h + 2 * s + 1];
                emit32<Tail::Sub>(sk, e + 128 * h + 32 * s, shr_mask(q, 2 * s, 3), _mm256_set1_ps(d * float(sc0 & 0xF)),
                                  _mm256_set1_ps(d * float(sc1 & 0xF)), _mm256_set1_ps(dmin * float(sc0 >> 4)),
                                  _mm256_set1_ps(dmin * float(sc1 >> 4)));
            }
        }
    }
}

template <class S>
void run_q3_k(const uint8_t* src, int64_t nb, S& sk) {
    for (int64_t b = 0, e = 0; b < nb; ++b, src += 110, e += 256) {
        const uint8_t* sb = src + 96;
        const float d = h2f(ld16(src + 108));
        float dl[16];
        for (int i = 0; i < 16; ++i) {
            const uint32_t lo = (i < 8 ? sb[i] : sb[i - 8] >> 4) & 0xF;
            const uint32_t hi = (sb[8 + i % 4] >> (2 * (i / 4))) & 3;
            dl[i] = d * float(int(lo | (hi << 4)) - 32);
        }
        const __m256i hmask = load256(src);
        for (int h = 0; h < 2; ++h) {
            const __m256i q = load256(src + 32 + 32 * h);
            for (int s = 0; s < 4; ++s) {
                const int j = 4 * h + s;
                // 4 where the hmask bit is clear, else 0
                const __m256i sub =
                    _mm256_andnot_si256(_mm256_slli_epi16(shr_mask(hmask, j, 1), 2), _mm256_set1_epi8(4));
                emit32<Tail::None>(sk, e + 32 * j, _mm256_sub_epi8(shr_mask(q, 2 * s, 3), sub),
                                   _mm256_set1_ps(dl[2 * j]), _mm256_set1_ps(dl[2 * j + 1]));
            }
        }
    }
}

template <bool Q5, class S>
void run_q45_k(const uint8_t* src, int64_t nb, S& sk) {
    constexpr int kBytes = Q5 ? 176 : 144, kQs = Q5 ? 48 : 16;
    for (int64_t b = 0, e = 0; b < nb; ++b, src += kBytes, e += 256) {
        const float d = h2f(ld16(src)), dmin = h2f(ld16(src + 2));
        const uint8_t* scales = src + 4;
        __m256i qh = _mm256_setzero_si256();
        if constexpr (Q5) qh = load256(src + 16);
        for (int c = 0; c < 4; ++c) {
            uint32_t sc0, m0, sc1, m1;
            scale_min_k4(2 * c, scales, sc0, m0);
            scale_min_k4(2 * c + 1, scales, sc1, m1);
            const __m256i q = load256(src + kQs + 32 * c);
            __m256i lo = shr_mask(q, 0, 0xF), hi = shr_mask(q, 4, 0xF);
            if constexpr (Q5) {
                lo = _mm256_or_si256(lo, _mm256_slli_epi16(shr_mask(qh, 2 * c, 1), 4));
                hi = _mm256_or_si256(hi, _mm256_slli_epi16(shr_mask(qh, 2 * c + 1, 1), 4));
            }
            const __m256 d0 = _mm256_set1_ps(d * float(sc0)), dm0 = _mm256_set1_ps(dmin * float(m0));
            const __m256 d1 = _mm256_set1_ps(d * float(sc1)), dm1 = _mm256_set1_ps(dmin * float(m1));
            emit32<Tail::Sub>(sk, e + 64 * c, lo, d0, d0, dm0, dm0);
            emit32<Tail::Sub>(sk, e + 64 * c + 32, hi, d1, d1, dm1, dm1);
        }
    }
}

template <class S>
void run_q4_k(const uint8_t* src, int64_t nb, S& sk) {
    run_q45_k<false>(src, nb, sk);
}
template <class S>
void run_q5_k(const uint8_t* src, int64_t nb, S& sk) {
    run_q45_k<true>(src, nb, sk);
}

template <class S>
void run_q6_k(const uint8_t* src, int64_t nb, S& sk) {
    for (int64_t b = 0, e = 0; b < nb; ++b, src += 210, e += 256) {
        const int8_t* sc = reinterpret_cast<const int8_t*>(src + 192);
        const float d = h2f(ld16(src + 208));
        for (int h = 0; h < 2; ++h) {
            const __m256i qh = load256(src + 128 + 32 * h);
            const __m256i ql0 = load256(src + 64 * h), ql1 = load256(src + 64 * h + 32);
            for (int s = 0; s < 4; ++s) {
                const __m256i lo4 = shr_mask(s & 1 ? ql1 : ql0, 4 * (s >> 1), 0xF);
                const __m256i hi2 = _mm256_slli_epi16(shr_mask(qh, 2 * s, 3), 4);
                const __m256i q = _mm256_sub_epi8(_mm256_or_si256(lo4, hi2), _mm256_set1_epi8(32));
                const int is = 8 * h + 2 * s;
                emit32<Tail::None>(sk, e + 128 * h + 32 * s, q, _mm256_set1_ps(d * float(sc[is])),
                                   _mm256_set1_ps(d * float(sc[is + 1])));
            }
        }
    }
}

// y[t * ys] = sum_c W[c] x[t * xs + c] for t < nt (1..4), W = nb blocks decoded by `run`.
template <int NT, class Run>
void dot_fused_n(const float* x, int64_t xs, float* y, int64_t ys, Run&& run) {
    DotSink<NT> sk{x, xs, {}};
    for (auto& a : sk.acc)
        for (auto& v : a) v = _mm256_setzero_ps();
    run(sk);
    for (int t = 0; t < NT; ++t) {
        __m256 s = sk.acc[t][0];
        for (int k = 1; k < DotSink<NT>::K; ++k) s = _mm256_add_ps(s, sk.acc[t][k]);
        y[t * ys] = hsum(s);
    }
}

template <class Run>
void dot_fused(const float* x, int64_t xs, int nt, float* y, int64_t ys, Run&& run) {
    switch (nt) {
        case 1: dot_fused_n<1>(x, xs, y, ys, run); break;
        case 2: dot_fused_n<2>(x, xs, y, ys, run); break;
        case 3: dot_fused_n<3>(x, xs, y, ys, run); break;
        default: dot_fused_n<4>(x, xs, y, ys, run); break;
    }
}

// dqv_<type>: dequantize; dotq_<type>: fused dequantize + dot with up to 4 activation rows.
#define IMP_GGML_AVX2_TYPE(name)                                                                               \
    void dqv_##name(const uint8_t* src, int64_t nb, float* y) {                                                \
        StoreSink sk{y};                                                                                       \
        run_##name(src, nb, sk);                                                                               \
    }                                                                                                          \
    void dotq_##name(const uint8_t* w, int64_t nb, const float* x, int64_t xs, int nt, float* y, int64_t ys) { \
        dot_fused(x, xs, nt, y, ys, [&](auto& sk) { run_##name(w, nb, sk); });                                 \
    }
IMP_GGML_AVX2_TYPE(q4_0)
IMP_GGML_AVX2_TYPE(q4_1)
IMP_GGML_AVX2_TYPE(q5_0)
IMP_GGML_AVX2_TYPE(q5_1)
IMP_GGML_AVX2_TYPE(q8_0)
IMP_GGML_AVX2_TYPE(iq4_nl)
IMP_GGML_AVX2_TYPE(iq4_xs)
IMP_GGML_AVX2_TYPE(q2_k)
IMP_GGML_AVX2_TYPE(q3_k)
IMP_GGML_AVX2_TYPE(q4_k)
IMP_GGML_AVX2_TYPE(q5_k)
IMP_GGML_AVX2_TYPE(q6_k)
#undef IMP_GGML_AVX2_TYPE

}  // namespace
}  // namespace imp::ggml
