// The host-memory budget of reading a model (model/host_budget.h): the cap, the machine's free memory, the sizes.
#include <catch2/catch.hpp>

#include "imp/error.h"
#include "model/host_budget.h"

TEST_CASE("host budget: over imp's cap or the free memory is one error naming the file and both sizes",
          "[model][budget]") {
    using imp::check_host_budget;
    CHECK_NOTHROW(check_host_budget("f.gguf", "reading x", 100, 1000, 200));
    CHECK_THROWS_WITH(check_host_budget("f.gguf", "reading x", 3ull << 30, 1ull << 30, UINT64_MAX),
                      "f.gguf: reading x needs 3.00 GiB (3221225472 bytes) of host memory, more than imp's limit of "
                      "1.00 GiB");
    CHECK_THROWS_WITH(check_host_budget("f.gguf", "reading x", 300ull << 20, 1ull << 30, 200ull << 20),
                      "f.gguf: reading x needs 300.0 MiB (314572800 bytes) of host memory, more than the 200.0 MiB "
                      "free on this machine");
    // Without a given free size the machine's own is used: nothing real has an exabyte free.
    CHECK_THROWS_WITH(check_host_budget("f.gguf", "reading x", 1ull << 60, UINT64_MAX),
                      Catch::Contains("free on this machine"));
    CHECK(imp::host_memory_free() > 0);
    CHECK(imp::host_memory_held() > 0);
    CHECK(imp::human_bytes(512) == "512 bytes");
}
