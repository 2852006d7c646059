// Host work of a weight upload spread over threads (load time only): independent items, and the byte ranges of a
// weight's file pieces copied back to back.
#pragma once
#include <cstdint>
#include <functional>
#include <utility>
#include <vector>

namespace imp::quant_hf {

// Runs fn(i) for every i in [0, n) on up to 16 threads (fewer when the machine has fewer cores); the first exception
// an item throws is rethrown after all threads finished.
void parallel_items(int64_t n, const std::function<void(int64_t)>& fn);

// out = the pieces' bytes back to back (resized to their total), pieces copied in parallel.
void concat_bytes(const std::vector<std::pair<const uint8_t*, uint64_t>>& pieces, std::vector<uint8_t>& out);

}  // namespace imp::quant_hf
