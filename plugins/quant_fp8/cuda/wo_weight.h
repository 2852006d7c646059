// Weight-only CUDA weights shared by quant_fp8 and quant_nvfp4: the Weight and ExpertWeights of one Layout
// (wo_layout.h) on a CUDA executor. The format libraries (fp8_cuda.cpp, nvfp4_cuda.cpp) fill each matrix of the
// layout on the host; these upload it and run the kernels. Needs no CUDA headers to include.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "imp/executor.h"
#include "imp/experts.h"
#include "imp/quant_format.h"
#include "kernel_settings.h"
#include "wo_kernels.h"
#include "wo_layout.h"

namespace imp::wo {

// Kernel choices: the formats' shared settings, and whether prefill takes the FP8 GEMM (FP8 codes, or the NVFP4
// FP8 copy) instead of bf16 tiles.
struct Options : quant_hf::KernelSettings {
    bool fp8_gemm = false;
};
// The GEMV plan the settings choose.
inline GemvPlan gemv_plan(const quant_hf::KernelSettings& s) {
    return s.gemv_async    ? GemvPlan::Async
           : s.gemv_regs2  ? GemvPlan::Regs2
           : s.gemv_stream ? GemvPlan::Stream
           : s.gemv_mma    ? GemvPlan::Mma
                           : GemvPlan::Regs;
}
inline Options options(const quant_hf::KernelSettings& s, bool fp8_gemm) {
    Options o;
    static_cast<quant_hf::KernelSettings&>(o) = s;
    o.fp8_gemm = fp8_gemm;
    return o;
}

// Fills rows [r0, r1) of one matrix of the layout in host memory (zeroed, l.bytes; expert `e` for experts, 0 for a
// weight): those rows' codes and per-row parts; the call with r0 == 0 also the matrix-wide parts. Calls for disjoint
// row ranges (of the same or other matrices) run on several threads at once.
using FillRows = std::function<void(int64_t e, int64_t r0, int64_t r1, uint8_t* host)>;

// name: the weight's type name (Weight::type(), and messages). bf16_alpha: the per-tensor factor dequant_bf16
// leaves out (NVFP4 global; FP8 per-tensor scale; else 1).
// fp8_inv_unit (NVFP4 with l.has_fp8): the FP8 copy is e4m3(e2m1 * e4m3s * fp8_inv_unit), filled on the device.
std::unique_ptr<Weight> make_weight(Executor& ex, std::string name, const Layout& l, const FillRows& fill,
                                    const Options& o, float bf16_alpha, float fp8_inv_unit);
std::unique_ptr<ExpertWeights> make_experts(Executor& ex, std::string name, const Layout& l, int64_t n_expert,
                                            const FillRows& fill, const Options& o);

// How many FP8 GEMM calls of w cuBLASLt refused (each went through bf16 tiles instead); -1 when w is not a
// weight-only CUDA weight.
int64_t fp8_refusals(const Weight& w);
// How many per-token FP8 GEMM calls of w cuBLASLt refused with outer-vector scales (each ran the unscaled FP8 GEMM
// and an epilogue instead); -1 when w is not a weight-only CUDA weight.
int64_t fp8_vec_refusals(const Weight& w);

// Fills the n_matrix matrices of the layout on the host and uploads matrix e to dev + e * l.bytes: batches of up to
// 256 MiB (at least one matrix) in a pinned staging buffer kept for the process, zeroed and filled in row ranges on
// up to 16 threads.
void upload_matrices(Executor& ex, const Layout& l, const FillRows& fill, int64_t n_matrix, uint8_t* dev);
// The device matrix of w when w is a weight-only CUDA weight whose GEMV reads it as one matrix of layout l (same
// codec, shape, row and scale strides, scale and per-matrix offsets): the ExpertMatmul::extra of an expert weight
// of layout l. Null otherwise.
const uint8_t* gemv_matrix(const Weight& w, const Layout& l);
// The CUDA handles of ex, or an imp::Error naming `what`.
const CudaHandles& cuda_handles(const Executor& ex, const std::string& what);

}  // namespace imp::wo
