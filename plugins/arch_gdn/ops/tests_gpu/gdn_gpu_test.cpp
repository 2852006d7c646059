// The GDN ops' CUDA kernels against their CPU references (label gpu; fails without a GPU), on fresh random inputs
// with realistic gates (gdn_checks.h): conv prefill and single-token update, the decode rule with several sequences,
// the chunked rule at lengths 1..1000 around multiples of 64 with several sequences in one step, GVA in both head
// orders, the gated norm, and the registered conformance checks. Tolerances: gdn_checks.cpp.
#include <catch2/catch.hpp>

#include "exec/cpu/cpu_executor.h"
#include "exec/cuda/cuda_executor.h"
#include "gdn_checks.h"
#include "gdn_kernels.h"
#include "imp/ops.h"
#include "imp/registry.h"

using namespace imp;
using namespace imp::gdn;

namespace {

Problem problem(int hk, int hv, bool tiled, std::vector<int> lens, uint64_t seed, bool A_is_log = true,
                int variant = 0) {
    Problem p;
    p.variant = variant;
    p.dims = {hk, hv, 128, 128, tiled};
    p.lens = std::move(lens);
    p.seed = seed;
    p.A_is_log = A_is_log;
    return p;
}

}  // namespace

TEST_CASE("gdn gpu: conv prefill and update equal the CPU reference", "[gdn][gpu]") {
    CpuExecutor cpu;
    CudaExecutor dev(0);
    const Problem cases[] = {
        problem(16, 32, false, {1, 300, 2, 64}, 1),       // the 35B shape, prefill beside short rows
        problem(2, 4, true, {1000}, 2, false),            // GGUF ssm_a gates, tiled heads
        problem(16, 32, false, {1, 1, 1, 1, 1, 1, 1}, 3), // decode: the in-kernel state update
        problem(3, 3, false, {1}, 4),
    };
    for (const Problem& p : cases) CHECK(compare_conv(cpu, dev, p) == "");
    // Strides that allow 16-byte accesses: prefill steps take the one-warp-per-(head, 16 rows) kernel (variant 0, a
    // sequence boundary inside a row tile, short sequences reading the conv state) or the block kernel (variant 1).
    for (int variant : {0, 1}) {
        for (Problem p : {problem(16, 32, false, {1, 300, 2, 64}, 21), problem(2, 4, true, {1000, 5, 17}, 22, false),
                          problem(3, 3, false, {3, 1, 40, 2}, 23)}) {
            p.aligned = true;
            p.conv_variant = variant;
            CHECK(compare_conv(cpu, dev, p) == "");
        }
        Problem k3 = problem(2, 4, false, {5, 1, 40, 2}, 24);
        k3.kernel = 3, k3.aligned = true, k3.conv_variant = variant;
        CHECK(compare_conv(cpu, dev, k3) == "");
    }
    // Decode steps (one row per sequence): K = 4 takes conv_decode.cu's kernel (variant 0: its loads before the PDL
    // wait), variant 1 conv.cu's block kernel; heads of 128 (one channel a thread) and 256 (two), odd strides.
    for (int variant : {0, 1})
        for (Problem p : {problem(16, 32, false, {1, 1, 1, 1, 1}, 31), problem(2, 4, true, {1, 1}, 32, false),
                          problem(3, 3, false, {1, 1, 1}, 33)}) {
            p.conv_variant = variant;
            CHECK(compare_conv(cpu, dev, p) == "");
            if (p.dims.n_k_heads == 2) {
                p.dims.head_k_dim = p.dims.head_v_dim = 256;
                CHECK(compare_conv(cpu, dev, p) == "");
            }
        }
    Problem k3 = problem(2, 4, false, {5, 1, 40}, 5);  // another conv width (prefill, then decode)
    k3.kernel = 3;
    CHECK(compare_conv(cpu, dev, k3) == "");
    k3.lens = {1, 1};
    CHECK(compare_conv(cpu, dev, k3) == "");
}

// The decode rule of each problem against the CPU recurrence: plain, then with the gated norm in the same kernel,
// with 8 (variant 0), 16 and 32 warps per v-head, in one CTA per head or a cluster of 2, 4, 8 splitting its columns.
// (Three test cases, so that each stays within a sanitizer run's time.)
namespace {
void decode_rule_cases(CpuExecutor& cpu, CudaExecutor& dev, const std::vector<Problem>& cases) {
    for (Problem p : cases) {
        CHECK(compare_rule(cpu, dev, p, true) == "");
        p.gated_norm = true;
        for (const int warps : {0, 16, 32})
            for (const int ctas : {1, 2, 4, 8}) {
                p.variant = warps;
                p.decode_ctas = ctas;
                CHECK(compare_rule(cpu, dev, p, true) == "");
            }
    }
}
}  // namespace

TEST_CASE("gdn gpu: decode rule equals the CPU recurrence (the 35B's 16/32 heads, 1 and 8 sequences)", "[gdn][gpu]") {
    CpuExecutor cpu;
    CudaExecutor dev(0);
    decode_rule_cases(cpu, dev, {problem(16, 32, false, {1}, 11), problem(16, 32, false, std::vector<int>(8, 1), 12)});
}

TEST_CASE("gdn gpu: decode rule equals the CPU recurrence (GVA 2/8 over 33 sequences, 4/4 heads)", "[gdn][gpu]") {
    CpuExecutor cpu;
    CudaExecutor dev(0);
    decode_rule_cases(cpu, dev, {problem(2, 8, true, std::vector<int>(33, 1), 13),
                                 problem(4, 4, false, std::vector<int>(3, 1), 14)});
}

TEST_CASE("gdn gpu: decode rule equals the CPU recurrence (key widths 64 and 256, value widths 32 and 256)", "[gdn][gpu]") {
    CpuExecutor cpu;
    CudaExecutor dev(0);
    // The other key widths the kernel takes (dk 64, 256: 2 and 8 keys per lane), with and without the norm.
    for (const int dk : {64, 256}) {
        Problem p = problem(2, 4, false, std::vector<int>(3, 1), 15 + dk);
        p.dims.head_k_dim = dk;
        INFO("head_k_dim " << dk);
        CHECK(compare_rule(cpu, dev, p, true) == "");
        p.gated_norm = true;
        for (const int warps : {0, 16, 32})
            for (const int ctas : {1, 4}) {
                p.variant = warps;
                p.decode_ctas = ctas;
                CHECK(compare_rule(cpu, dev, p, true) == "");
            }
    }
    // A head narrower than one round of the cluster's columns (dv 32: CTA 0's 8 warps take all of it, the other
    // CTAs idle) and a head wider than it (dv 256 with 8 warps x 2 CTAs: 64 columns a round, four rounds), and a bad
    // cluster size.
    for (const int dv : {32, 256}) {
        Problem p = problem(2, 4, false, std::vector<int>(2, 1), 40 + dv);
        p.dims.head_v_dim = dv;
        p.gated_norm = true;
        INFO("head_v_dim " << dv);
        for (const int ctas : {2, 4}) {
            p.decode_ctas = ctas;
            CHECK(compare_rule(cpu, dev, p, true) == "");
        }
        p.decode_ctas = 3;
        CHECK_THROWS_WITH(compare_rule(cpu, dev, p, true), Catch::Contains("decode_ctas 3"));
    }
}

TEST_CASE("gdn gpu: decode step (conv + rule + norm in one kernel) equals the CPU ops", "[gdn][gpu]") {
    CpuExecutor cpu;
    CudaExecutor dev(0);
    uint64_t seed = 60;
    // The 35B shape at batch 1 and 8, tiled GVA of ratio 4, Hk == Hv, with every warp count and the cluster shapes
    // that fit 8 CTAs (v-heads per k-head x decode_ctas).
    const Problem cases[] = {
        problem(16, 32, false, {1}, 0),
        problem(16, 32, false, std::vector<int>(8, 1), 0),
        problem(2, 8, true, std::vector<int>(5, 1), 0),
        problem(3, 3, false, std::vector<int>(3, 1), 0, false),
    };
    for (Problem p : cases)
        for (const int warps : {0, 16, 32})
            for (const int ctas : {1, 2, 4, 8}) {
                if (ctas * p.dims.n_v_heads / p.dims.n_k_heads > 8) continue;
                p.variant = warps, p.decode_ctas = ctas, p.seed = seed++;
                CHECK(compare_decode_step(cpu, dev, p) == "");
            }
    // Other key and value widths with every warp count (dk 64, 256; dv 20: narrower than a round of columns and not
    // a multiple of 4; dv 256), conv width 3.
    for (const auto& [dk, dv] : {std::pair{64, 128}, {256, 128}, {128, 20}, {128, 256}})
        for (const int warps : {0, 16, 32})
            for (const int ctas : {1, 2}) {
                Problem p = problem(2, 4, false, std::vector<int>(3, 1), seed++);
                p.dims.head_k_dim = dk, p.dims.head_v_dim = dv, p.decode_ctas = ctas, p.variant = warps;
                INFO("dk " << dk << " dv " << dv << " warps " << warps);
                CHECK(compare_decode_step(cpu, dev, p) == "");
            }
    Problem k3 = problem(2, 4, false, std::vector<int>(4, 1), seed++);
    k3.kernel = 3;
    CHECK(compare_decode_step(cpu, dev, k3) == "");
    // Over the cluster limit: 4 v-heads per k-head x 4 CTAs.
    Problem big = problem(2, 8, false, std::vector<int>(2, 1), seed++);
    big.decode_ctas = 4;
    CHECK_THROWS_WITH(compare_decode_step(cpu, dev, big), Catch::Contains("16 CTAs per cluster, above 8"));
}

TEST_CASE("gdn gpu: chunked rule equals the CPU reference at lengths 1..1000", "[gdn][gpu]") {
    CpuExecutor cpu;
    CudaExecutor dev(0);
    uint64_t seed = 100;
    // Variants (RuleArgs::variant): 1 fused kernel; 2, 3 prep + state kernels with 64 / 32 value columns per block;
    // 4 the prep kernel on mma.sync + the state kernel of 3; 5, 6 both kernels on mma.sync (32 / 64 columns).
    for (int variant : {1, 2, 3, 4, 5, 6}) {
        for (int len : {1, 2, 17, 63, 64, 65, 127, 128, 129, 200, 511, 1000})
            CHECK(compare_rule(cpu, dev, problem(2, 4, false, {len}, seed++, true, variant), false) == "");
        // Several sequences of mixed lengths in one step (decode rows among prefill rows), GVA both orders, 35B heads.
        CHECK(compare_rule(cpu, dev, problem(2, 4, true, {65, 1, 300, 7, 128}, seed++, true, variant), false) == "");
        CHECK(compare_rule(cpu, dev, problem(16, 32, false, {257, 1, 64}, seed++, true, variant), false) == "");
        CHECK(compare_rule(cpu, dev, problem(3, 3, false, {100, 1000}, seed++, true, variant), false) == "");
    }
    // Auto (0) with a workspace: the split path with the block width chosen from the grid size.
    CHECK(compare_rule(cpu, dev, problem(16, 32, false, {700}, seed++, true, 0), false) == "");
}

TEST_CASE("gdn gpu: gated norm equals the CPU reference", "[gdn][gpu]") {
    CpuExecutor cpu;
    CudaExecutor dev(0);
    CHECK(compare_gated_norm(cpu, dev, 1, 32, 128, 1) == "");
    CHECK(compare_gated_norm(cpu, dev, 517, 32, 128, 2) == "");
    CHECK(compare_gated_norm(cpu, dev, 9, 5, 64, 3) == "");
    // Strides that allow 16-byte accesses: the one-warp-per-(row, head) kernel (variant 0) and the block kernel (1).
    for (int variant : {0, 1}) {
        CHECK(compare_gated_norm(cpu, dev, 1, 32, 128, 4, variant, true) == "");
        CHECK(compare_gated_norm(cpu, dev, 517, 32, 128, 5, variant, true) == "");
        CHECK(compare_gated_norm(cpu, dev, 9, 5, 64, 6, variant, true) == "");
        CHECK(compare_gated_norm(cpu, dev, 3, 2, 256, 7, variant, true) == "");
    }
}

TEST_CASE("gdn gpu: the registered conformance checks pass", "[gdn][gpu]") {
    Registry reg;
    register_gdn_ops(reg);
    CpuExecutor cpu;
    CudaExecutor dev(0);
    const auto results = run_op_checks(reg, cpu, dev, 2026, 12);  // 12 seeds: decode with and without the norm x 3
                                                                   // warp counts; the decode step's cluster shapes
    REQUIRE(results.size() == 5);
    for (const auto& r : results) {
        INFO(r.op << ": " << r.message);
        CHECK(r.status == OpCheckResult::Status::Pass);
    }
}
