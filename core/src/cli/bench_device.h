// `imp bench`: facts about the device a benchmark ran on, measured in the same process — its name, the CUDA driver,
// memory in use, and the copy bandwidth (a large device-to-device copy; bytes read + bytes written per second), the
// roofline for decode. CUDA devices are probed through the driver API (libcuda.so.1, loaded at run time, so the CLI
// needs no CUDA link); the CPU executor is probed with a multithreaded memcpy of 512 MiB.
#pragma once
#include <cstdint>
#include <string>

#include "imp/executor.h"

namespace imp::cli {

struct DeviceFacts {
    std::string name;              // GPU name, or the CPU model name
    std::string cuda_driver;       // CUDA version the driver supports ("13.0"); empty on the CPU
    double copy_bytes_per_s = 0;   // (bytes read + bytes written) / s, median of the timed copies
    uint64_t copy_buffer_bytes = 0;
    uint64_t device_used_bytes = 0;   // CUDA: total - free (whole device, context included); CPU: 0
    uint64_t device_total_bytes = 0;  // CUDA: device memory; CPU: 0
};

// Measures on `ex`'s device (call after the model is loaded: the probe's buffers come from what is left).
// Throws imp::Error when the device cannot be probed.
DeviceFacts probe_device(Executor& ex);

// Device memory in use right now (CUDA: total - free; CPU: 0).
uint64_t device_used_bytes(Executor& ex);

}  // namespace imp::cli
