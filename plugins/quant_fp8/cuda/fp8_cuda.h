// quant_fp8 CUDA: FP8 E4M3 weight-only weights on a CUDA executor (library quant_fp8_cuda). Needs no CUDA headers.
//
// Input (host, canonical): q uint8 E4M3 [rows, cols] row-major; fp32 scales, n_scale = 1 (per tensor) or rows (per
// output row): w[r, c] = e4m3(q[r, c]) * scale[r or 0]. Experts: [n_expert, rows, cols] codes and n_scale scales
// per expert, back to back.
// Device layout (wo_layout.h): the codes as they are, rows padded to 16 and columns to 16 with zero codes, then the
// fp32 scales. Decode (1-8 tokens): the weight-only GEMV (wo_gemv.cu); prefill: Settings::prefill.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "imp/executor.h"
#include "imp/experts.h"
#include "imp/quant_format.h"
#include "kernel_settings.h"

namespace imp::fp8::cuda {

// The prefill path; the other choices are the shared ones (fast_accum, experts_grouped, gemv_kw, gemv_async,
// tile_rows: kernel_settings.h).
struct Settings : quant_hf::KernelSettings {
    enum class Prefill {
        Fp8Gemm,      // activations to E4M3 per tensor (dynamic amax), cuBLASLt FP8 GEMM (a shape cuBLASLt refuses
                      // goes through bf16 tiles)
        DequantBf16,  // weights dequantized to bf16 tiles, cuBLASLt BF16 GEMM (default until Fp8Gemm is measured)
    };
    Prefill prefill = Prefill::DequantBf16;
};

// Canonical E4M3 rows where they already are (e.g. the file's tensors: no copy): consecutive logical rows (experts:
// row e * rows + r) in order, `rows` rows of cols bytes.
struct RowRun {
    const uint8_t* q = nullptr;
    int64_t rows = 0;
};

// type_name: what Weight::type() reports ("NVFP4", "FP8_E4M3"). Throws imp::Error naming it and the shape for bad
// sizes, runs that do not hold exactly the weight's rows, or an executor without CUDA handles.
std::unique_ptr<imp::Weight> make_weight(imp::Executor& ex, int64_t rows, int64_t cols, const std::vector<RowRun>& runs,
                                         const float* scales, int64_t n_scale, std::string type_name,
                                         const Settings& s = {});
std::unique_ptr<imp::Weight> make_weight(imp::Executor& ex, int64_t rows, int64_t cols, const uint8_t* q,
                                         const float* scales, int64_t n_scale, std::string type_name,
                                         const Settings& s = {});
std::unique_ptr<imp::ExpertWeights> make_experts(imp::Executor& ex, int64_t n_expert, int64_t rows, int64_t cols,
                                                 const std::vector<RowRun>& runs, const float* scales,
                                                 int64_t n_scale_per_expert, const Settings& s = {});
std::unique_ptr<imp::ExpertWeights> make_experts(imp::Executor& ex, int64_t n_expert, int64_t rows, int64_t cols,
                                                 const uint8_t* q, const float* scales, int64_t n_scale_per_expert,
                                                 const Settings& s = {});
// The host image of the device layout make_experts (n_expert >= 1) uploads for these runs: n_expert matrices of
// wo::make_layout(FP8, rows, cols, n_scale_per_expert) bytes each (tests: it runs on any machine).
std::vector<uint8_t> host_image(int64_t n_expert, int64_t rows, int64_t cols, const std::vector<RowRun>& runs,
                                const float* scales, int64_t n_scale_per_expert);
// Device bytes make_weight (n_expert 0 or 1) or make_experts (n_expert > 1; a stack of one expert counts as a
// weight) allocates.
uint64_t device_bytes(int64_t rows, int64_t cols, int64_t n_expert, int64_t n_scale, const Settings& s = {});

}  // namespace imp::fp8::cuda
