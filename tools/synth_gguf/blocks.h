// synth-gguf: random weight data written straight in the storage format, with sane scales (|w| <= ~0.05, fp16
// scales in the normal range, never NaN/Inf) so a model built from it runs without overflow.
#pragma once
#include <cstdint>
#include <vector>

namespace synth {

// wyrand: small, fast, good enough for weights.
struct Rng {
    uint64_t s;
    explicit Rng(uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull) {}
    uint64_t next() {
        s += 0xA0761D6478BD642Full;
        const __uint128_t m = __uint128_t(s) * (s ^ 0xE7037ED1A0B428DBull);
        return uint64_t(m >> 64) ^ uint64_t(m);
    }
};

uint16_t to_fp16(float f);  // round to nearest even; normal range only is needed here
float from_fp16(uint16_t h);

// Fills `n_elems` elements (a multiple of the type's block) of ggml type `type` at out.
void fill_weights(uint32_t type, uint8_t* out, int64_t n_elems, Rng& rng);
// F32 RMSNorm weights around 1.
void fill_norm(float* out, int64_t n, Rng& rng);

}  // namespace synth
