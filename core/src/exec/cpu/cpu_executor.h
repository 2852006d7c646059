// The CPU executor: host memory, a persistent thread pool, and the reference implementation of every common op
// (the CUDA kernels are tested against these). All math accumulates in fp32.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "imp/executor.h"

namespace imp {

class ThreadPool;

// Not final: tests derive from it to inject failures (e.g. an op that throws during a graph capture).
class CpuExecutor : public Executor {
public:
    // threads: worker count including the calling thread; 0 = std::thread::hardware_concurrency().
    explicit CpuExecutor(int threads = 0);
    ~CpuExecutor() override;
    CpuExecutor(const CpuExecutor&) = delete;
    CpuExecutor& operator=(const CpuExecutor&) = delete;

    DeviceKind kind() const override { return DeviceKind::CPU; }
    std::string name() const override;
    int threads() const;

    // 64-byte aligned, zero-filled; throws imp::Error naming the tag and size when the host is out of memory.
    void* alloc(size_t bytes, const char* tag) override;
    void upload(void* dst, const void* src, size_t bytes) override;
    void download(void* dst, const void* src, size_t bytes) override;
    size_t bytes_allocated() const override;
    uint64_t available_bytes() const override;  // MemAvailable from /proc/meminfo
    // Runs on the pool (the calling thread takes part). A call made from inside a pool task runs inline.
    void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) override;

    void rms_norm(const float* x, const float* w, float* y, int64_t rows, int64_t n, float eps) override;
    void rope(float* x, int64_t row_stride, const int32_t* positions, int64_t n_tokens, int n_heads,
              const RopeParams& p) override;
    // KV element types supported on the CPU: F32, F16, BF16, F8_E4M3 (rounding to nearest even on store).
    void kv_store(const KVCacheView& kv, const float* k, int64_t k_stride, const float* v, int64_t v_stride,
                  const int32_t* slot_mapping, int64_t n_tokens) override;
    void attention(const float* q, int64_t q_stride, const KVCacheView& kv, float* out, const AttentionParams& p,
                   const StepBatch& b) override;
    void swiglu(const float* gate, int64_t gate_stride, const float* up, int64_t up_stride, float* out,
                int64_t n_rows, int64_t n) override;
    // The composition rms_norm (per head) -> rope -> kv_store; k is left normalized and rotated in place.
    void rope_kv_store(float* q, int64_t q_stride, float* k, int64_t k_stride, const float* v, int64_t v_stride,
                       const float* q_norm, const float* k_norm, float norm_eps, const StepBatch& b,
                       int n_head, int n_kv_head, const RopeParams& rope, const KVCacheView& kv) override;
    void add(float* x, const float* y, int64_t n) override;
    void sample(const float* logits, int64_t logits_stride, int64_t n_rows, int64_t n_vocab, const SampleRow* rows,
                const int32_t* recent, int32_t* out) override;
    void copy(void* dst, const void* src, size_t bytes) override;
    void fill_zero(void* dst, size_t bytes) override;
    void reserve_workspace(size_t bytes) override;
    void* workspace() override { return workspace_; }
    size_t workspace_bytes() const override { return workspace_bytes_; }

private:
    std::unique_ptr<ThreadPool> pool_;
    mutable std::mutex mem_mu_;
    std::vector<void*> blocks_;
    size_t allocated_ = 0;
    void* workspace_ = nullptr;
    size_t workspace_bytes_ = 0;
};

}  // namespace imp
