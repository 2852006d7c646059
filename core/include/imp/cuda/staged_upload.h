// imp SDK, CUDA: weight upload through a pinned staging buffer (load time). The host fills one batch while the
// previous batch's copy to the GPU runs: two halves of one buffer kept for the process, grown to the largest request,
// or pageable host memory when the driver cannot pin that much (then each copy returns once it has read the batch).
// One upload at a time: a lock is held from construction to destruction.
//
//   StagedUpload up(handles, batch_bytes, n_batches);
//   for (each batch) { uint8_t* h = up.host(); /* fill h */ up.send(device_dst, bytes); }
//   up.finish();
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "imp/cuda/check.h"
#include "imp/error.h"
#include "imp/executor.h"

namespace imp::cuda {

class StagedUpload {
public:
    // batch_bytes: the most one send() copies; n_batches: how many sends follow (one: a single half).
    StagedUpload(const CudaHandles& h, uint64_t batch_bytes, int64_t n_batches)
        : lock_(buffer().mu), stream_(static_cast<cudaStream_t>(h.stream)), batch_(batch_bytes) {
        IMP_CUDA_CHECK(cudaSetDevice(h.device));
        const bool two = n_batches > 1;
        uint8_t* base = buffer().get(batch_bytes * (two ? 2 : 1));
        half_[0] = base;
        half_[1] = base + (two ? batch_bytes : 0);
        for (auto& e : done_) IMP_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
    }
    StagedUpload(const StagedUpload&) = delete;
    StagedUpload& operator=(const StagedUpload&) = delete;
    ~StagedUpload() {
        (void)cudaStreamSynchronize(stream_);  // no copy may still read the buffer once the lock is released
        for (auto& e : done_)
            if (e) (void)cudaEventDestroy(e);
    }

    // The half to fill next (batch_bytes); waits until its previous copy finished.
    uint8_t* host() {
        IMP_CUDA_CHECK(cudaEventSynchronize(done_[k_]));  // an event never recorded returns at once
        return half_[k_];
    }
    // Copies the first `bytes` of host() to dst on the executor's stream (asynchronous) and switches halves.
    void send(void* dst, uint64_t bytes) {
        if (bytes > batch_)
            throw Error("cuda: staged upload of " + std::to_string(bytes) + " bytes, batches hold " +
                        std::to_string(batch_));
        IMP_CUDA_CHECK(cudaMemcpyAsync(dst, half_[k_], bytes, cudaMemcpyHostToDevice, stream_));
        IMP_CUDA_CHECK(cudaEventRecord(done_[k_], stream_));
        k_ ^= 1;
    }
    // Waits for every copy; throws on a CUDA error.
    void finish() { IMP_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

private:
    struct Buffer {
        std::mutex mu;
        uint8_t* data = nullptr;
        uint64_t bytes = 0;
        std::vector<uint8_t> pageable;
        uint8_t* get(uint64_t want) {
            if (bytes >= want) return data;
            if (data && pageable.empty()) IMP_CUDA_CHECK(cudaFreeHost(data));
            data = nullptr;
            bytes = 0;
            std::vector<uint8_t>().swap(pageable);
            if (cudaHostAlloc(reinterpret_cast<void**>(&data), want, cudaHostAllocDefault) != cudaSuccess) {
                (void)cudaGetLastError();  // not sticky: clear it
                pageable.resize(want);
                data = pageable.data();
            }
            bytes = want;
            return data;
        }
    };
    static Buffer& buffer() {
        static Buffer b;
        return b;
    }

    std::unique_lock<std::mutex> lock_;
    cudaStream_t stream_;
    uint64_t batch_;
    uint8_t* half_[2] = {nullptr, nullptr};
    cudaEvent_t done_[2] = {nullptr, nullptr};
    int k_ = 0;
};

}  // namespace imp::cuda
