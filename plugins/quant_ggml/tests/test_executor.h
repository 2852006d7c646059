// quant_ggml tests: a minimal CPU imp::Executor (aligned host memory, upload = memcpy, a small persistent thread
// pool for parallel_for). Only what a QuantFormat uses; the common ops throw. Used until the core's CpuExecutor
// lands, and by the bench. FakeGpuExecutor reports DeviceKind::CUDA, to check the "not supported" errors.
#pragma once
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "imp/executor.h"

namespace imp::ggml::test {

class TestExecutor : public Executor {
public:
    explicit TestExecutor(int threads = 1) : n_threads_(std::max(1, threads)) {
        for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this] { worker(); });
    }
    ~TestExecutor() override {
        {
            std::lock_guard<std::mutex> lk(mu_);
            stop_ = true;
        }
        cv_.notify_all();
        for (auto& t : workers_) t.join();
        for (void* p : blocks_) ::operator delete(p, std::align_val_t(64));
    }

    DeviceKind kind() const override { return DeviceKind::CPU; }
    std::string name() const override { return "cpu"; }
    void* alloc(size_t bytes, const char*) override {
        void* p = ::operator new(std::max<size_t>(bytes, 1), std::align_val_t(64));
        blocks_.push_back(p);
        allocated_ += bytes;
        return p;
    }
    void upload(void* dst, const void* src, size_t bytes) override { std::memcpy(dst, src, bytes); }
    void download(void* dst, const void* src, size_t bytes) override { std::memcpy(dst, src, bytes); }
    size_t bytes_allocated() const override { return allocated_; }

    // Splits [0, n) into at most n_threads chunks of at least `grain`; the calling thread takes the first.
    void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) override {
        if (n <= 0) return;
        grain = std::max<int64_t>(1, grain);
        const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(n_threads_, n / grain));
        if (chunks == 1) {
            fn(0, n);
            return;
        }
        auto job = std::make_shared<Job>();
        job->fn = &fn;
        job->n = n;
        job->chunks = chunks;
        job->next.store(1);
        job->pending = int(chunks - 1);
        {
            std::lock_guard<std::mutex> lk(mu_);
            job_ = job;
            ++generation_;
        }
        cv_.notify_all();
        fn(0, n / chunks);
        std::unique_lock<std::mutex> lk(mu_);
        done_cv_.wait(lk, [&] { return job->pending == 0; });
        job_.reset();
    }

    void rms_norm(const float*, const float*, float*, int64_t, int64_t, float) override { unused(); }
    void rope(float*, int64_t, const int32_t*, int64_t, int, const RopeParams&) override { unused(); }
    void kv_store(const KVCacheView&, const float*, int64_t, const float*, int64_t, const int32_t*, int64_t) override {
        unused();
    }
    void attention(const float*, int64_t, const KVCacheView&, float*, const AttentionParams&,
                   const StepBatch&) override { unused(); }
    void swiglu(const float*, int64_t, const float*, int64_t, float*, int64_t, int64_t) override { unused(); }
    void rope_kv_store(float*, int64_t, float*, int64_t, const float*, int64_t, const float*, const float*, float,
                       const StepBatch&, int, int, const RopeParams&, const KVCacheView&) override {
        unused();
    }
    void add(float*, const float*, int64_t) override { unused(); }
    void sample(const float*, int64_t, int64_t, int64_t, const SampleRow*, const int32_t*, int32_t*) override {
        unused();
    }
    void reserve_workspace(size_t bytes) override { ws_.resize(bytes); }
    uint64_t available_bytes() const override { return UINT64_MAX; }
    void* workspace() override { return ws_.data(); }
    size_t workspace_bytes() const override { return ws_.size(); }

private:
    std::vector<uint8_t> ws_;
    [[noreturn]] static void unused() { throw std::logic_error("TestExecutor: op not used by quant_ggml tests"); }

    // One parallel_for call. A worker that wakes late finds the counter exhausted and does nothing.
    struct Job {
        const std::function<void(int64_t, int64_t)>* fn = nullptr;
        int64_t n = 0, chunks = 0;
        std::atomic<int64_t> next{0};
        int pending = 0;  // guarded by mu_
    };

    void worker() {
        uint64_t seen = 0;
        for (;;) {
            std::shared_ptr<Job> job;
            {
                std::unique_lock<std::mutex> lk(mu_);
                cv_.wait(lk, [&] { return stop_ || generation_ != seen; });
                if (stop_) return;
                seen = generation_;
                job = job_;
            }
            if (!job) continue;
            for (int64_t c; (c = job->next.fetch_add(1)) < job->chunks;) {
                (*job->fn)(job->n * c / job->chunks, job->n * (c + 1) / job->chunks);
                std::lock_guard<std::mutex> g(mu_);
                if (--job->pending == 0) done_cv_.notify_all();
            }
        }
    }

    int n_threads_;
    std::vector<std::thread> workers_;
    std::mutex mu_;
    std::condition_variable cv_, done_cv_;
    bool stop_ = false;
    uint64_t generation_ = 0;
    std::shared_ptr<Job> job_;
    std::vector<void*> blocks_;
    size_t allocated_ = 0;
};

class FakeGpuExecutor final : public TestExecutor {
public:
    DeviceKind kind() const override { return DeviceKind::CUDA; }
    std::string name() const override { return "cuda:0"; }
};

}  // namespace imp::ggml::test
