// Prefill attention timings, fp32 kernel vs tensor-core kernel in one run (hidden: run with "[.bench]"): a whole
// prompt of n tokens from position 0 (causal), 8B shape (32 heads, 8 KV heads, head_dim 128), BF16 and F16 KV
// caches in 16-position blocks under a shuffled block table; head_dim 64 for comparison. Prints the time per call
// and the causal attention rate (4 * head_dim * n_head * sum over tokens of the attended length), for the fp32
// kernel, the tensor-core kernel as dispatched, and the tensor-core kernel with 4 and with 8 warps per CTA.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <numeric>

#include "exec/cuda/attention_mma.h"
#include "exec/cuda/step_test_util.h"

using namespace imp;
using namespace imp::cuda_test;

TEST_CASE("cuda bench: prefill attention, fp32 vs tensor-core kernel", "[.bench]") {
    std::mt19937 rng(1);
    CudaExecutor& ex = gpu();
    std::printf("device: %s\n", ex.name().c_str());
    const bool tc_default = gpu().attention_options().tensor_cores;
    struct Shape {
        DType dtype;
        int n_head, n_kv, hd;
    };
    const Shape shapes[] = {{DType::BF16, 32, 8, 128}, {DType::F16, 32, 8, 128}, {DType::BF16, 32, 8, 64}};
    for (const Shape& sh : shapes)
        for (int64_t n : {int64_t(512), int64_t(4096)}) {
            const int64_t width = int64_t(sh.n_kv) * sh.hd, qn = int64_t(sh.n_head) * sh.hd;
            const Step st = make_step({{0, int32_t(n)}}, 0, rng);  // one sequence, shuffled blocks
            const StepBatch b = st.batch(true);
            KVCacheView kv;
            kv.dtype = sh.dtype;
            kv.n_blocks = st.n_blocks;
            kv.n_kv_heads = sh.n_kv;
            kv.head_dim = sh.hd;
            kv.block_size = 16;
            kv.k = ex.alloc(size_t(st.n_blocks * 16 * width * 2), "bench K");
            kv.v = ex.alloc(size_t(st.n_blocks * 16 * width * 2), "bench V");
            float* dk = to_dev(rand_vec(rng, size_t(n * width), -2.f, 2.f));
            float* dv = to_dev(rand_vec(rng, size_t(n * width), -2.f, 2.f));
            ex.kv_store(kv, dk, width, dv, width, b.slot_mapping, n);
            float* q = to_dev(rand_vec(rng, size_t(n * qn), -3.f, 3.f));
            float* out = to_dev(std::vector<float>(size_t(n * qn)));
            AttentionParams p;
            p.n_head = sh.n_head;
            p.n_kv_head = sh.n_kv;
            p.head_dim = sh.hd;
            p.scale = 1.f / std::sqrt(float(sh.hd));
            const double flops = 4.0 * sh.hd * sh.n_head * (double(n) * double(n + 1) / 2);
            const int reps = n > 1024 ? 5 : 30;
            // fp32 kernel, tensor cores (default CTA size), 4 warps, 8 warps
            double us[4];
            std::vector<float> res[4];
            for (int v = 0; v < 4; ++v) {
                gpu().attention_options().tensor_cores = v > 0;
                gpu().attention_options().mma_warps = v == 2 ? 4 : v == 3 ? 8 : 0;
                us[v] = time_us([&] { ex.attention(q, qn, kv, out, p, b); }, reps);
                res[v] = from_dev(out, size_t(n * qn));
            }
            gpu().attention_options().tensor_cores = tc_default;
            gpu().attention_options().mma_warps = 0;
            std::printf("prefill attention %s %d/%dx%d, %4ld tokens: fp32 %8.1f us (%5.1f TFLOP/s); tensor cores "
                        "%8.1f us (%6.1f TFLOP/s, x%.2f), 4 warps %8.1f us, 8 warps %8.1f us; max rel diff %.1e\n",
                        dtype_name(sh.dtype), sh.n_head, sh.n_kv, sh.hd, long(n), us[0], flops / us[0] * 1e-6, us[1],
                        flops / us[1] * 1e-6, us[0] / us[1], us[2], us[3], max_rel_err(res[1], res[0]));
        }
}
