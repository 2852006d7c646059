// bench.ablate's entries: which kernel nodes a pattern "PART[@COND]..." names (cuda_graphs::kernel_matches, host
// code: no GPU needed), and the one-line error of a malformed condition.
#include <catch2/catch.hpp>

#include "exec/cuda/graph_kernels.h"
#include "imp/error.h"

using imp::cuda_graphs::kernel_matches;
using imp::cuda_graphs::KernelNode;

namespace {
KernelNode node(const char* name, unsigned x, unsigned y, unsigned z = 1) {
    KernelNode k;
    k.name = name;
    k.grid[0] = x, k.grid[1] = y, k.grid[2] = z;
    return k;
}
}  // namespace

TEST_CASE("bench.ablate: a pattern names kernels by name part and grid conditions", "[bench]") {
    const KernelNode dense = node("_ZN3imp2wo14wo_gemv_kernelILi1EEEvNS0_2KPE", 256, 1);
    const KernelNode experts = node("_ZN3imp2wo14wo_gemv_kernelILi1EEEvNS0_2KPE", 32, 8);
    const KernelNode norm = node("_ZN3imp12cuda_kernels15rms_norm_kernelILb1EEEvPKfS3_Pflf", 1, 1);
    CHECK(kernel_matches(dense, "wo_gemv_kernel"));
    CHECK(kernel_matches(experts, "wo_gemv_kernel"));
    CHECK_FALSE(kernel_matches(norm, "wo_gemv_kernel"));
    CHECK(kernel_matches(experts, "wo_gemv_kernel@y>1"));
    CHECK_FALSE(kernel_matches(dense, "wo_gemv_kernel@y>1"));
    CHECK(kernel_matches(dense, "wo_gemv_kernel@y=1@x>100"));
    CHECK_FALSE(kernel_matches(dense, "wo_gemv_kernel@y=1@x<100"));
    CHECK(kernel_matches(norm, "@x<2"));  // any name
    CHECK(kernel_matches(dense, "@z=1"));
    for (const char* bad : {"gemv@w>1", "gemv@y", "gemv@y>", "gemv@y!1", "gemv@y>-1", "gemv@y>1x", "gemv@"}) {
        INFO(bad);
        CHECK_THROWS_WITH(kernel_matches(norm, bad),  // whether or not the name part matches
                          Catch::Contains(std::string("bench.ablate '") + bad + "': condition") &&
                              Catch::Contains("is not a grid dimension (x, y, z), a comparison (<, =, >) and a number"));
    }
}
