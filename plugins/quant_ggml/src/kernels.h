// quant_ggml: CPU kernels. The same source (kernels_impl.h) is compiled twice: for baseline x86-64 and for
// AVX2+FMA+F16C, chosen at run time. Dequantization is exact (bit for bit the ggml / gguf-py reference): both
// builds use -ffp-contract=off, so `d * q + m` is never fused.
#pragma once
#include <cstdint>
#include <vector>

#include "ggml_types.h"

namespace imp::ggml {

// Dequantizes `nblocks` blocks (for F32/F16/BF16 a block is one element) starting at src into dst.
using DequantFn = void (*)(const uint8_t* src, int64_t nblocks, float* dst);
// y[r] = sum_c w[r * w_stride + c] * x[c] for r < nr (1 <= nr <= 4), fp32 accumulation.
using DotRowsFn = void (*)(const float* w, int64_t w_stride, int nr, const float* x, int64_t n, float* y);

// Fused dequantize + dot of one row of `nblocks` blocks with nt (1..4) activation rows:
// y[t * y_stride] = sum_c W[c] x[t * x_stride + c]. Same dequantized values as DequantFn, fp32 FMA accumulation.
using DotQFn = void (*)(const uint8_t* w, int64_t nblocks, const float* x, int64_t x_stride, int nt, float* y,
                        int64_t y_stride);

struct Kernels {
    const char* name;
    DequantFn dequant[kTypeCount];
    DotRowsFn dot_rows;
    DotQFn dot_q[kTypeCount];  // null where a build has none (then: dequantize rows, dot_rows)
};

const Kernels& kernels_generic();
const Kernels& kernels_avx2();
// Every kernel set this CPU can run (generic first).
std::vector<const Kernels*> kernels_available();
// The fastest kernel set this CPU can run ([plugin.quant_ggml] cpu_kernels picks another: ggml_settings.h).
const Kernels& kernels_best();

}  // namespace imp::ggml
