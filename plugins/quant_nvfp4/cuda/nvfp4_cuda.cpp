// quant_nvfp4 CUDA: NVFP4 weights (nvfp4_cuda.h): checks the sizes, repacks the canonical codes into the device
// layout's nibble order (wo_layout.h), copies the scales and the global, picks the FP8 copy's unit, and hands the
// matrices to the shared weight-only Weight / ExpertWeights (quant_fp8/cuda/wo_weight.h).
#include "nvfp4_cuda.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "imp/error.h"
#include "nvfp4_ref.h"
#include "wo_row_runs.h"
#include "wo_weight.h"

namespace imp::nvfp4::cuda {
namespace {

void check(const std::string& what, int64_t rows, int64_t cols) {
    if (rows <= 0 || cols <= 0 || rows > INT32_MAX || cols > INT32_MAX)
        throw Error("quant_nvfp4: " + what + ": bad shape [" + std::to_string(rows) + ", " + std::to_string(cols) +
                    "]");
    if (cols % 16 != 0)
        throw Error("quant_nvfp4: " + what + ": " + std::to_string(cols) +
                    " columns, not a multiple of 16 (the NVFP4 block)");
}

using Runs = wo::RowRuns<RowRun>;
Runs runs_of(const std::vector<RowRun>& r, int64_t total, const std::string& what) {
    return Runs(r, total, "quant_nvfp4: " + what, [](const RowRun& x) { return x.codes && x.scales; });
}

// Rows [r0, r1) of matrix e into host (zeroed, l.bytes; wo::FillRows): repacked codes (wo::nvfp4_device_word),
// scales and the scale vector's rows; with r0 == 0 the global (and the FP8 copy's scale global * unit in its own
// slot).
void fill(const wo::Layout& l, const Runs& runs, const float* globals, float unit, int64_t e, int64_t r0, int64_t r1,
          uint8_t* host) {
    const int64_t cb = l.cols / 2, sb = l.cols / 16;  // cols: a multiple of 16 (check), so whole words
    int64_t row = r0;
    runs.for_rows(e * l.rows + r0, r1 - r0, [&](const RowRun& run, int64_t local) {
        const uint8_t* src = run.codes + local * cb;
        uint8_t* dst = host + row * l.ld;
        for (int64_t w = 0; w < cb / 4; ++w) {  // word w of the row = word (w % 4) of chunk w / 4
            uint32_t v;
            std::memcpy(&v, src + 4 * w, 4);
            v = wo::nvfp4_device_word(v);
            std::memcpy(dst + 4 * w, &v, 4);
        }
        std::memcpy(host + l.scale_off + row * l.scale_ld, run.scales + local * sb, size_t(sb));
        ++row;
    });
    if (r0 == 0) {
        *reinterpret_cast<float*>(host + l.post_off) = globals[e];
        if (l.has_fp8) *reinterpret_cast<float*>(host + l.fp8_scale_off) = globals[e] * unit;
    }
    if (l.has_vec)
        for (int64_t r = r0; r < r1; ++r) reinterpret_cast<float*>(host + l.vec_off)[r] = globals[e] * unit;
}

// The FP8 copy's unit: max |e2m1 * e4m3| / 448 = 6 * max e4m3(scale) / 448 (1 when every scale is 0 or NaN).
float fp8_unit(const Runs& runs, int64_t cols) {
    float m = 0.f;
    for (const RowRun& r : runs.runs())
        for (int64_t i = 0; i < r.rows * (cols / 16); ++i) {
            const float v = std::fabs(e4m3_to_float(r.scales[i]));
            if (std::isfinite(v)) m = std::max(m, v);
        }
    return m > 0.f ? m * 6.f / 448.f : 1.f;
}

}  // namespace

std::unique_ptr<imp::Weight> make_weight(imp::Executor& ex, int64_t rows, int64_t cols, const std::vector<RowRun>& runs,
                                         float global, std::string type_name, const Settings& s) {
    check(type_name + " weight", rows, cols);
    const Runs rr = runs_of(runs, rows, type_name + " weight");
    const bool fp8 = s.prefill == Settings::Prefill::Fp8AtLoad;
    const wo::Layout l = wo::make_layout(wo::Codec::NVFP4, rows, cols, 1, fp8, fp8 && s.fp8_per_token);
    const float unit = fp8 ? fp8_unit(rr, cols) : 1.f;
    return wo::make_weight(
        ex, std::move(type_name), l,
        [&](int64_t e, int64_t r0, int64_t r1, uint8_t* h) { fill(l, rr, &global, unit, e, r0, r1, h); },
        wo::options(s, fp8), global, 1.f / unit);
}

std::unique_ptr<imp::Weight> make_weight(imp::Executor& ex, int64_t rows, int64_t cols, const uint8_t* codes,
                                         const uint8_t* scales, float global, std::string type_name,
                                         const Settings& s) {
    return make_weight(ex, rows, cols, std::vector<RowRun>{{codes, scales, rows}}, global, std::move(type_name), s);
}

std::unique_ptr<imp::ExpertWeights> make_experts(imp::Executor& ex, int64_t n_expert, int64_t rows, int64_t cols,
                                                 const std::vector<RowRun>& runs, const float* globals,
                                                 const Settings& s) {
    const std::string what = "experts [" + std::to_string(n_expert) + ", " + std::to_string(rows) + ", " +
                             std::to_string(cols) + "]";
    check(what, rows, cols);
    if (n_expert <= 0) throw Error("quant_nvfp4: experts: " + std::to_string(n_expert) + " experts");
    const Runs rr = runs_of(runs, n_expert * rows, what);
    const wo::Layout l = wo::make_layout(wo::Codec::NVFP4, rows, cols, 1, false);
    return wo::make_experts(
        ex, "nvfp4 experts", l, n_expert,
        [&](int64_t e, int64_t r0, int64_t r1, uint8_t* h) { fill(l, rr, globals, 1.f, e, r0, r1, h); },
        wo::options(s, false));
}

std::unique_ptr<imp::ExpertWeights> make_experts(imp::Executor& ex, int64_t n_expert, int64_t rows, int64_t cols,
                                                 const uint8_t* codes, const uint8_t* scales, const float* globals,
                                                 const Settings& s) {
    if (n_expert <= 0) throw Error("quant_nvfp4: experts: " + std::to_string(n_expert) + " experts");
    return make_experts(ex, n_expert, rows, cols, std::vector<RowRun>{{codes, scales, n_expert * rows}}, globals, s);
}

std::vector<uint8_t> host_image(int64_t n_expert, int64_t rows, int64_t cols, const std::vector<RowRun>& runs,
                                const float* globals) {
    check("host image", rows, cols);
    const Runs rr = runs_of(runs, n_expert * rows, "host image");
    const wo::Layout l = wo::make_layout(wo::Codec::NVFP4, rows, cols, 1, false);
    std::vector<uint8_t> img(size_t(n_expert) * l.bytes, 0);
    for (int64_t e = 0; e < n_expert; ++e)
        for (int64_t r0 = 0; r0 < rows; r0 += 7)  // in row ranges, as the threaded upload fills them
            fill(l, rr, globals, 1.f, e, r0, std::min(rows, r0 + 7), img.data() + uint64_t(e) * l.bytes);
    return img;
}

uint64_t device_bytes(int64_t rows, int64_t cols, int64_t n_expert, const Settings& s) {
    const bool fp8 = n_expert <= 1 && s.prefill == Settings::Prefill::Fp8AtLoad;
    const wo::Layout l = wo::make_layout(wo::Codec::NVFP4, rows, cols, 1, fp8, fp8 && s.fp8_per_token);
    return n_expert > 0 ? uint64_t(n_expert) * l.bytes : l.bytes;
}

}  // namespace imp::nvfp4::cuda
