// `imp bench`: facts about the device a benchmark ran on, measured in the same process — its name, the CUDA driver,
// memory in use, and the copy bandwidth (a large device-to-device copy; bytes read + bytes written per second), the
// roofline for decode; on CUDA both buffers are at least 4x the L2 cache, or the probe refuses. CUDA devices are
// probed through the driver API (libcuda.so.1, loaded at run time, so the CLI needs no CUDA link); the CPU executor
// is probed with a multithreaded memcpy of 512 MiB.
// The BF16 GEMM rate (the prefill roofline) is measured with cuBLAS on the executor's own handle and stream
// (cublasGemmEx resolved at run time, so the CLI links no cuBLAS either); on the CPU it is not measured.
#pragma once
#include <cstdint>
#include <string>

#include "imp/executor.h"

namespace imp::cli {

struct DeviceFacts {
    std::string name;              // GPU name, or the CPU model name
    std::string cuda_driver;       // CUDA version the driver supports ("13.0"); empty on the CPU
    double copy_bytes_per_s = 0;   // (bytes read + bytes written) / s, median of the timed copies
    uint64_t copy_buffer_bytes = 0;   // per buffer; CUDA: at least 4x the L2 cache (else the probe refuses)
    uint64_t l2_cache_bytes = 0;      // CUDA: the device's L2 cache; CPU: 0
    uint64_t device_used_bytes = 0;   // CUDA: total - free (whole device, context included); CPU: 0
    uint64_t device_total_bytes = 0;  // CUDA: device memory; CPU: 0
};

// A BF16 x BF16 -> BF16 GEMM with fp32 accumulation, C[m x n] = W[m x k] * X[k x n]: m = the weight's output
// features, k = its input features, n = tokens (the prefill shape of one FFN matrix).
struct GemmFacts {
    int64_t m = 0, n = 0, k = 0;
    double flops_per_s = 0;  // 2*m*n*k / s, median of the timed batches; 0 = not measured (CPU executor)
    bool measured() const { return flops_per_s > 0; }
    std::string shape() const;  // "512x4096x14336" (n x k x m: tokens x input x output), "" when not measured
};

// Measures on `ex`'s device (call after the model is loaded: the probe's buffers come from what is left).
// Throws imp::Error when the device cannot be probed.
DeviceFacts probe_device(Executor& ex);

// CUDA: times the GEMM above with cuBLAS (executor's handle and stream, CUDA events, warm-up, then the median of
// several batches); throws imp::Error when cuBLAS cannot be found or fails. Other executors: returns an unmeasured
// GemmFacts (flops_per_s = 0).
GemmFacts probe_gemm_bf16(Executor& ex, int64_t m, int64_t n, int64_t k);

// Device memory in use right now (CUDA: total - free; CPU: 0).
uint64_t device_used_bytes(Executor& ex);

}  // namespace imp::cli
