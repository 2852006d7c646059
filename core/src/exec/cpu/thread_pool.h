// A persistent pool of worker threads for CpuExecutor::parallel_for. Workers spin briefly between jobs (decode
// issues hundreds of small jobs per token) and then sleep on a condition variable.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace imp {

class ThreadPool {
public:
    explicit ThreadPool(int n_threads);  // total threads including the caller of run()
    ~ThreadPool();
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;

    int size() const { return int(workers_.size()) + 1; }
    // fn(begin, end) over [0, n) in chunks of at least `grain`; returns when every chunk is done, then rethrows
    // the first exception a chunk threw.
    void run(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

private:
    void worker_loop();
    bool run_chunks();  // takes and runs chunks of the current job; false when none was left

    std::vector<std::thread> workers_;
    std::mutex run_mu_;  // one job at a time; a second caller runs inline

    // state_: job generation in the high 32 bits, next chunk index in the low 32 bits.
    std::atomic<uint64_t> state_{0};
    std::atomic<int64_t> done_{0};
    const std::function<void(int64_t, int64_t)>* fn_ = nullptr;
    int64_t n_ = 0, chunk_ = 0;
    std::atomic<int64_t> n_chunks_{0};

    std::mutex error_mu_;
    std::exception_ptr error_;  // first exception thrown by a chunk, rethrown by run()

    std::mutex sleep_mu_;
    std::condition_variable sleep_cv_;
    int sleepers_ = 0;
    std::atomic<bool> stop_{false};
};

}  // namespace imp
