#include "exec/cpu/thread_pool.h"

#include <algorithm>

namespace imp {

namespace {
thread_local bool t_in_pool = false;

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
}

constexpr int kSpinIters = 4000;
}  // namespace

ThreadPool::ThreadPool(int n_threads) {
    for (int i = 1; i < n_threads; ++i) workers_.emplace_back([this] { worker_loop(); });
}

ThreadPool::~ThreadPool() {
    {
        std::lock_guard<std::mutex> lk(sleep_mu_);
        stop_ = true;
        state_.store(((((state_.load() >> 32) + 1) & 0xffffffffu) << 32) | 0xffffffffu);  // new gen, closed
    }
    sleep_cv_.notify_all();
    for (auto& t : workers_) t.join();
}

bool ThreadPool::run_chunks() {
    bool did = false;
    uint64_t s = state_.load(std::memory_order_acquire);
    for (;;) {
        // The job parameters may only be read after a successful CAS on the current state (see run()).
        const uint64_t idx = s & 0xffffffffu;
        if (idx >= uint64_t(n_chunks_.load(std::memory_order_relaxed))) return did;
        if (!state_.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel, std::memory_order_acquire)) continue;
        const int64_t b = int64_t(idx) * chunk_;
        const int64_t e = std::min(n_, b + chunk_);
        try {
            (*fn_)(b, e);
        } catch (...) {
            std::lock_guard<std::mutex> lk(error_mu_);
            if (!error_) error_ = std::current_exception();
        }
        did = true;
        done_.fetch_add(1, std::memory_order_acq_rel);
        s = state_.load(std::memory_order_acquire);
    }
}

void ThreadPool::worker_loop() {
    t_in_pool = true;
    uint64_t seen_gen = 0;
    for (;;) {
        uint64_t gen = state_.load(std::memory_order_acquire) >> 32;
        for (int i = 0; i < kSpinIters && gen == seen_gen; ++i) {
            cpu_relax();
            gen = state_.load(std::memory_order_acquire) >> 32;
        }
        if (gen == seen_gen) {
            std::unique_lock<std::mutex> lk(sleep_mu_);
            ++sleepers_;
            sleep_cv_.wait(lk, [&] { return stop_ || (state_.load(std::memory_order_acquire) >> 32) != seen_gen; });
            --sleepers_;
            if (stop_) return;
            gen = state_.load(std::memory_order_acquire) >> 32;
        }
        if (stop_.load(std::memory_order_acquire)) return;
        seen_gen = gen;
        run_chunks();
    }
}

void ThreadPool::run(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
    if (n <= 0) return;
    grain = std::max<int64_t>(grain, 1);
    const int64_t threads = size();
    // A few chunks per thread so that a thread slowed by other processes does not hold everyone up.
    int64_t chunk = std::max(grain, (n + threads * 4 - 1) / (threads * 4));
    chunk = std::max(chunk, (n + 0x7fffffff - 1) / 0x7fffffff);
    const int64_t n_chunks = (n + chunk - 1) / chunk;
    if (threads == 1 || n_chunks == 1 || t_in_pool) {
        fn(0, n);
        return;
    }
    std::unique_lock<std::mutex> job(run_mu_, std::try_to_lock);
    if (!job.owns_lock()) {
        fn(0, n);
        return;
    }
    // Every chunk of the previous job is done. Close the counter (same generation, index 0xffffffff: no CAS on a
    // stale state can succeed and nothing can be taken), replace the parameters, then open generation + 1.
    const uint64_t old_gen = state_.load(std::memory_order_relaxed) >> 32;
    const uint64_t gen = (old_gen + 1) & 0xffffffffu;
    state_.store((old_gen << 32) | 0xffffffffu, std::memory_order_release);
    fn_ = &fn;
    n_ = n;
    chunk_ = chunk;
    n_chunks_.store(n_chunks, std::memory_order_relaxed);
    done_.store(0, std::memory_order_relaxed);
    bool wake;
    {
        std::lock_guard<std::mutex> lk(sleep_mu_);
        state_.store(gen << 32, std::memory_order_release);
        wake = sleepers_ > 0;
    }
    if (wake) sleep_cv_.notify_all();
    t_in_pool = true;
    run_chunks();
    t_in_pool = false;
    for (int i = 0; done_.load(std::memory_order_acquire) < n_chunks; ++i) {
        if (i < kSpinIters) cpu_relax();
        else std::this_thread::yield();
    }
    if (error_) {
        std::exception_ptr e;
        std::swap(e, error_);
        std::rethrow_exception(e);
    }
}

}  // namespace imp
