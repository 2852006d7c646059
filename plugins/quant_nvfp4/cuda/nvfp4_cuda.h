// quant_nvfp4 CUDA: NVFP4 weight-only weights on a CUDA executor (library quant_nvfp4_cuda). Needs no CUDA headers.
//
// Input (host, canonical, as nvfp4_ref.h): codes uint8 [rows, cols / 2] (element 2i in the low nibble, 2i + 1 in
// the high one; E2M1, bit 3 the sign), scales uint8 E4M3 [rows, cols / 16], fp32 global:
// w = e2m1(code) * e4m3(scale) * global; cols % 16 == 0. Experts: [n_expert, rows, ...] codes and scales back to
// back, one global per expert.
// Device layout (quant_fp8/cuda/wo_layout.h): codes repacked to 16-byte chunks of 32 elements whose nibbles sit
// where the GEMV's half2 extraction wants them, columns padded to 32 with zero codes; the E4M3 scales as they are
// (padded likewise); the global; with Settings::Prefill::Fp8AtLoad also an FP8 E4M3 copy of the weight for the FP8
// tensor cores. Decode (1-8 tokens): the weight-only GEMV (dequantized in registers); prefill: Settings::prefill.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "imp/executor.h"
#include "imp/experts.h"
#include "imp/quant_format.h"
#include "kernel_settings.h"

namespace imp::nvfp4::cuda {

// The prefill path; the other choices are the shared ones (fast_accum, experts_grouped, gemv_kw, gemv_async,
// tile_rows: kernel_settings.h).
struct Settings : quant_hf::KernelSettings {
    enum class Prefill {
        // Weights dequantized (exactly: e2m1 * e4m3 fits bf16) to bf16 tiles in the workspace, cuBLASLt BF16 GEMM
        // with the global as alpha. The default: exact weights, no extra memory.
        DequantBf16,
        // At load, the weight is also converted to FP8 E4M3 with one per-tensor unit (max |e2m1 * e4m3| / 448;
        // E4M3 keeps 4 significant bits of the up to 6 of e2m1 * e4m3, so this rounds) into 1 byte per weight more
        // of device memory; prefill quantizes the activations per tensor and runs cuBLASLt's FP8 GEMM.
        Fp8AtLoad,
    };
    Prefill prefill = Prefill::DequantBf16;
};

// Canonical rows where they already are (e.g. the file's tensors: no copy): consecutive logical rows (experts: row
// e * rows + r) in order, `rows` of them with codes [rows, cols / 2] and scales [rows, cols / 16].
struct RowRun {
    const uint8_t* codes = nullptr;
    const uint8_t* scales = nullptr;
    int64_t rows = 0;
};

// type_name: what Weight::type() reports ("NVFP4", "FP8_E4M3"). Throws imp::Error naming it and the shape for bad
// sizes, runs that do not hold exactly the weight's rows, or an executor without CUDA handles.
std::unique_ptr<imp::Weight> make_weight(imp::Executor& ex, int64_t rows, int64_t cols, const std::vector<RowRun>& runs,
                                         float global, std::string type_name, const Settings& s = {});
std::unique_ptr<imp::Weight> make_weight(imp::Executor& ex, int64_t rows, int64_t cols, const uint8_t* codes,
                                         const uint8_t* scales, float global, std::string type_name,
                                         const Settings& s = {});
// Expert weights: Settings::prefill does not apply (no FP8 copy).
std::unique_ptr<imp::ExpertWeights> make_experts(imp::Executor& ex, int64_t n_expert, int64_t rows, int64_t cols,
                                                 const std::vector<RowRun>& runs, const float* globals,
                                                 const Settings& s = {});
std::unique_ptr<imp::ExpertWeights> make_experts(imp::Executor& ex, int64_t n_expert, int64_t rows, int64_t cols,
                                                 const uint8_t* codes, const uint8_t* scales, const float* globals,
                                                 const Settings& s = {});
// The host image of the device layout make_experts (n_expert >= 1) uploads for these runs: n_expert matrices of
// wo::make_layout(NVFP4, rows, cols) bytes each (tests: it runs on any machine).
std::vector<uint8_t> host_image(int64_t n_expert, int64_t rows, int64_t cols, const std::vector<RowRun>& runs,
                                const float* globals);
// Device bytes make_weight (n_expert 0 or 1) or make_experts (n_expert > 1; a stack of one expert counts as a
// weight) allocates.
uint64_t device_bytes(int64_t rows, int64_t cols, int64_t n_expert, const Settings& s = {});

}  // namespace imp::nvfp4::cuda
