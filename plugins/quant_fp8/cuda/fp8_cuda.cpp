// quant_fp8 CUDA: FP8 weights (fp8_cuda.h): checks the sizes, lays the canonical codes and scales out in the
// device layout (wo_layout.h) and hands them to the shared weight-only Weight / ExpertWeights (wo_weight.h).
#include "fp8_cuda.h"

#include <algorithm>
#include <cstring>

#include "imp/error.h"
#include "wo_row_runs.h"
#include "wo_weight.h"

namespace imp::fp8::cuda {
namespace {

void check(const std::string& what, int64_t rows, int64_t cols, int64_t n_scale) {
    if (rows <= 0 || cols <= 0 || rows > INT32_MAX || cols > INT32_MAX)
        throw Error("quant_fp8: " + what + ": bad shape [" + std::to_string(rows) + ", " + std::to_string(cols) + "]");
    if (n_scale != 1 && n_scale != rows)
        throw Error("quant_fp8: " + what + ": " + std::to_string(n_scale) + " weight scales for " +
                    std::to_string(rows) + " rows (want 1 or " + std::to_string(rows) + ")");
}

using Runs = wo::RowRuns<RowRun>;
Runs runs_of(const std::vector<RowRun>& r, int64_t total, const std::string& what) {
    return Runs(r, total, "quant_fp8: " + what, [](const RowRun& x) { return x.q != nullptr; });
}

// Rows [r0, r1) of matrix e (wo::FillRows): codes row by row into [rows_p, ld], the scale vector's rows; with r0 == 0
// the scales.
void fill(const wo::Layout& l, const Runs& runs, const float* scales, int64_t e, int64_t r0, int64_t r1,
          uint8_t* host) {
    int64_t row = r0;
    runs.for_rows(e * l.rows + r0, r1 - r0, [&](const RowRun& run, int64_t local) {
        std::memcpy(host + (row++) * l.ld, run.q + local * l.cols, size_t(l.cols));
    });
    if (r0 == 0) std::memcpy(host + l.post_off, scales + e * l.n_post, size_t(l.n_post) * 4);
    if (l.has_vec)
        for (int64_t r = r0; r < r1; ++r)
            reinterpret_cast<float*>(host + l.vec_off)[r] = scales[e * l.n_post + (l.n_post == 1 ? 0 : r)];
}

bool scale_vec(const Settings& s) {
    return s.prefill == Settings::Prefill::Fp8Gemm && s.fp8_per_token;
}

}  // namespace

std::unique_ptr<imp::Weight> make_weight(imp::Executor& ex, int64_t rows, int64_t cols, const std::vector<RowRun>& runs,
                                         const float* scales, int64_t n_scale, std::string type_name,
                                         const Settings& s) {
    check(type_name + " weight", rows, cols, n_scale);
    const Runs rr = runs_of(runs, rows, type_name + " weight");
    const wo::Layout l = wo::make_layout(wo::Codec::FP8, rows, cols, n_scale, false, scale_vec(s));
    const float alpha = n_scale == 1 ? scales[0] : 1.f;
    return wo::make_weight(
        ex, std::move(type_name), l,
        [&](int64_t e, int64_t r0, int64_t r1, uint8_t* h) { fill(l, rr, scales, e, r0, r1, h); },
        wo::options(s, s.prefill == Settings::Prefill::Fp8Gemm), alpha, 1.f);
}

std::unique_ptr<imp::Weight> make_weight(imp::Executor& ex, int64_t rows, int64_t cols, const uint8_t* q,
                                         const float* scales, int64_t n_scale, std::string type_name,
                                         const Settings& s) {
    return make_weight(ex, rows, cols, std::vector<RowRun>{{q, rows}}, scales, n_scale, std::move(type_name), s);
}

std::unique_ptr<imp::ExpertWeights> make_experts(imp::Executor& ex, int64_t n_expert, int64_t rows, int64_t cols,
                                                 const std::vector<RowRun>& runs, const float* scales,
                                                 int64_t n_scale_per_expert, const Settings& s) {
    const std::string what =
        "experts [" + std::to_string(n_expert) + ", " + std::to_string(rows) + ", " + std::to_string(cols) + "]";
    check(what, rows, cols, n_scale_per_expert);
    if (n_expert <= 0) throw Error("quant_fp8: experts: " + std::to_string(n_expert) + " experts");
    const Runs rr = runs_of(runs, n_expert * rows, what);
    const wo::Layout l = wo::make_layout(wo::Codec::FP8, rows, cols, n_scale_per_expert, false);
    return wo::make_experts(
        ex, "fp8 experts", l, n_expert,
        [&](int64_t e, int64_t r0, int64_t r1, uint8_t* h) { fill(l, rr, scales, e, r0, r1, h); },
        wo::options(s, false));
}

std::unique_ptr<imp::ExpertWeights> make_experts(imp::Executor& ex, int64_t n_expert, int64_t rows, int64_t cols,
                                                 const uint8_t* q, const float* scales, int64_t n_scale_per_expert,
                                                 const Settings& s) {
    check("experts [" + std::to_string(n_expert) + ", " + std::to_string(rows) + ", " + std::to_string(cols) + "]",
          rows, cols, n_scale_per_expert);
    if (n_expert <= 0) throw Error("quant_fp8: experts: " + std::to_string(n_expert) + " experts");
    return make_experts(ex, n_expert, rows, cols, std::vector<RowRun>{{q, n_expert * rows}}, scales,
                        n_scale_per_expert, s);
}

std::vector<uint8_t> host_image(int64_t n_expert, int64_t rows, int64_t cols, const std::vector<RowRun>& runs,
                                const float* scales, int64_t n_scale_per_expert) {
    check("host image", rows, cols, n_scale_per_expert);
    const Runs rr = runs_of(runs, n_expert * rows, "host image");
    const wo::Layout l = wo::make_layout(wo::Codec::FP8, rows, cols, n_scale_per_expert, false);
    std::vector<uint8_t> img(size_t(n_expert) * l.bytes, 0);
    for (int64_t e = 0; e < n_expert; ++e)
        for (int64_t r0 = 0; r0 < rows; r0 += 7)  // in row ranges, as the threaded upload fills them
            fill(l, rr, scales, e, r0, std::min(rows, r0 + 7), img.data() + uint64_t(e) * l.bytes);
    return img;
}

uint64_t device_bytes(int64_t rows, int64_t cols, int64_t n_expert, int64_t n_scale, const Settings& s) {
    const wo::Layout l = wo::make_layout(wo::Codec::FP8, rows, cols, n_scale, false, n_expert <= 1 && scale_vec(s));
    return n_expert > 0 ? uint64_t(n_expert) * l.bytes : l.bytes;
}

}  // namespace imp::fp8::cuda
