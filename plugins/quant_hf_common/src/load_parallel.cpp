// Host work of a weight upload spread over threads (load_parallel.h).
#include "load_parallel.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <exception>
#include <mutex>
#include <thread>

namespace imp::quant_hf {

void parallel_items(int64_t n, const std::function<void(int64_t)>& fn) {
    const int64_t threads = std::min<int64_t>({n, 16, int64_t(std::max(1u, std::thread::hardware_concurrency()))});
    if (threads <= 1) {
        for (int64_t i = 0; i < n; ++i) fn(i);
        return;
    }
    std::atomic<int64_t> next{0};
    std::exception_ptr err;
    std::mutex err_mu;
    auto work = [&] {
        for (int64_t i; (i = next.fetch_add(1)) < n;) {
            try {
                fn(i);
            } catch (...) {
                std::lock_guard<std::mutex> lk(err_mu);
                if (!err) err = std::current_exception();
            }
        }
    };
    std::vector<std::thread> pool;
    for (int64_t t = 1; t < threads; ++t) pool.emplace_back(work);
    work();
    for (auto& t : pool) t.join();
    if (err) std::rethrow_exception(err);
}

void concat_bytes(const std::vector<std::pair<const uint8_t*, uint64_t>>& pieces, HostBytes& out) {
    constexpr uint64_t kItem = 4ull << 20;
    struct Item {
        size_t piece;
        uint64_t from, bytes, to;
    };
    std::vector<Item> items;
    uint64_t total = 0;
    for (size_t i = 0; i < pieces.size(); ++i) {
        for (uint64_t o = 0; o < pieces[i].second; o += kItem)
            items.push_back({i, o, std::min(kItem, pieces[i].second - o), total + o});
        total += pieces[i].second;
    }
    out.allocate(total);
    uint8_t* dst = out.data();
    parallel_items(int64_t(items.size()), [&](int64_t k) {
        const Item& it = items[size_t(k)];
        std::memcpy(dst + it.to, pieces[it.piece].first + it.from, size_t(it.bytes));
    });
}

}  // namespace imp::quant_hf
