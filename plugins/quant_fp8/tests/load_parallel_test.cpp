// quant_hf_common's load helpers (load_parallel.h), which the FP8 and NVFP4 uploads use: every item runs exactly
// once, an item's exception reaches the caller, and concat_bytes equals the serial concatenation of fresh random
// pieces (empty ones included).
#include <catch2/catch.hpp>

#include <atomic>
#include <cstring>
#include <random>
#include <stdexcept>
#include <vector>

#include "load_parallel.h"

using namespace imp::quant_hf;

TEST_CASE("load_parallel: parallel_items runs each item once and rethrows", "[load]") {
    for (int64_t n : {0, 1, 7, 1000}) {
        std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
        parallel_items(n, [&](int64_t i) { hits[size_t(i)].fetch_add(1); });
        for (int64_t i = 0; i < n; ++i) CHECK(hits[size_t(i)].load() == 1);
    }
    CHECK_THROWS_WITH(parallel_items(100, [](int64_t i) {
                          if (i == 37) throw std::runtime_error("item 37");
                      }),
                      "item 37");
}

TEST_CASE("load_parallel: concat_bytes equals the serial concatenation", "[load]") {
    std::mt19937 rng(std::random_device{}());
    std::vector<std::vector<uint8_t>> data;
    for (int i = 0; i < 300; ++i) {
        data.emplace_back(size_t(rng() % 5000 == 0 ? 0 : rng() % 3000));
        for (auto& b : data.back()) b = uint8_t(rng());
    }
    data[5].clear();
    data[7].resize(9u << 20);  // over two 4 MiB copy items
    for (auto& b : data[7]) b = uint8_t(rng());
    std::vector<std::pair<const uint8_t*, uint64_t>> pieces;
    std::vector<uint8_t> want;
    for (const auto& d : data) {
        pieces.emplace_back(d.data(), d.size());
        want.insert(want.end(), d.begin(), d.end());
    }
    HostBytes got;
    got.allocate(17);  // replaced, not appended to
    concat_bytes(pieces, got);
    REQUIRE(got.size() == want.size());
    CHECK(std::memcmp(got.data(), want.data(), want.size()) == 0);
}
