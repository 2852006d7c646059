// Host work of a weight upload spread over threads (load time only): independent items, and the byte ranges of a
// weight's file pieces copied back to back.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <utility>
#include <vector>

namespace imp::quant_hf {

// Runs fn(i) for every i in [0, n) on up to 16 threads (fewer when the machine has fewer cores); the first exception
// an item throws is rethrown after all threads finished.
void parallel_items(int64_t n, const std::function<void(int64_t)>& fn);

// A host byte buffer that is not zero-filled when allocated (its pages are first touched by whoever writes them).
class HostBytes {
public:
    uint8_t* data() { return data_.get(); }
    const uint8_t* data() const { return data_.get(); }
    uint64_t size() const { return size_; }
    void allocate(uint64_t n) {  // contents undefined; the old contents are dropped
        data_.reset(n ? new uint8_t[n] : nullptr);
        size_ = n;
    }

private:
    std::unique_ptr<uint8_t[]> data_;
    uint64_t size_ = 0;
};

// out = the pieces' bytes back to back (allocated to their total), copied in parallel in items of at most 4 MiB, so
// the buffer's pages are also first touched (and zeroed by the kernel) on every thread, not on one.
void concat_bytes(const std::vector<std::pair<const uint8_t*, uint64_t>>& pieces, HostBytes& out);

}  // namespace imp::quant_hf
