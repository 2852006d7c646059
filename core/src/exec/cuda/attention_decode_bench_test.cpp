// Decode attention timings, split-KV path vs one-kernel decode (attention_decode.cuh, 8- and 4-warp CTAs) in one
// run (hidden: run with "[.bench]"): one token at position ctx - 1, 8B shape (32 heads, 8 KV heads, head_dim 128,
// BF16 KV in 16-position blocks under a shuffled block table), capacity 1024 for ctx <= 1024, else ctx. Prints per
// path the time per call issued back to back on the executor's stream, and per call of a captured graph of 32
// calls (a decode step's attention calls without launch overhead), the KV rate of the graph time, the speedup over
// split-KV, and the largest relative difference to the split-KV output.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <numeric>

#include "exec/cuda/attention_decode.h"
#include "exec/cuda/cuda_test_util.h"

using namespace imp;
using namespace imp::cuda_test;

TEST_CASE("cuda bench: decode attention, split-KV vs one-kernel decode", "[.bench]") {
    std::mt19937 rng(1);
    CudaExecutor& ex = gpu();
    std::printf("device: %s\n", ex.name().c_str());
    const bool old_default = cuda_kernels::attention_decode_old();
    const int n_head = 32, n_kv = 8, hd = 128;
    const int64_t width = int64_t(n_kv) * hd, qn = int64_t(n_head) * hd;
    constexpr int kCalls = 32;
    for (int64_t ctx : {64, 128, 512, 1024, 4096, 32768}) {
        const int64_t cap = std::max<int64_t>(ctx, 1024);
        KVCacheView kv;
        kv.dtype = DType::BF16;
        kv.capacity = cap;
        kv.n_kv_heads = n_kv;
        kv.head_dim = hd;
        kv.block_size = 16;
        kv.k = ex.alloc(size_t(cap * width * 2), "bench K");
        kv.v = ex.alloc(size_t(cap * width * 2), "bench V");
        std::vector<int32_t> table(size_t(cap / 16));
        std::iota(table.begin(), table.end(), 0);
        std::shuffle(table.begin(), table.end(), rng);
        kv.block_table = to_dev(table);
        std::vector<int32_t> pos(static_cast<size_t>(cap));
        std::iota(pos.begin(), pos.end(), 0);
        int32_t* dpos = to_dev(pos);
        float* dk = to_dev(rand_vec(rng, size_t(cap * width), -2.f, 2.f));
        float* dv = to_dev(rand_vec(rng, size_t(cap * width), -2.f, 2.f));
        ex.kv_store(kv, dk, width, dv, width, dpos, cap);
        float* q = to_dev(rand_vec(rng, size_t(qn), -3.f, 3.f));
        float* out = to_dev(std::vector<float>(size_t(qn)));
        AttentionParams p;
        p.n_head = n_head;
        p.n_kv_head = n_kv;
        p.head_dim = hd;
        p.scale = 1.f / std::sqrt(float(hd));
        p.n_tokens = 1;
        p.positions = dpos + (ctx - 1);
        double direct[3], graphed[3];
        std::vector<float> res[3];
        for (int v = 0; v < 3; ++v) {  // 0: split-KV, 1: one-kernel decode with 8 warps, 2: with 4 warps
            cuda_kernels::attention_set_decode_old(v == 0);
            cuda_kernels::attention_set_decode_warps(v == 2 ? 4 : 8);
            direct[v] = time_us([&] { ex.attention(q, qn, kv, out, p); }, 500);
            res[v] = from_dev(out, size_t(qn));
            ex.capture_begin();
            for (int i = 0; i < kCalls; ++i) ex.attention(q, qn, kv, out, p);
            const int graph = ex.capture_end();
            graphed[v] = time_us([&] { ex.replay(graph); }, 50) / kCalls;
        }
        cuda_kernels::attention_set_decode_old(old_default);
        cuda_kernels::attention_set_decode_warps(0);
        const double bytes = double(ctx) * width * 2 * 2;
        std::printf("decode attention bf16 32/8x128 ctx %6ld (cap %6ld): split-KV %7.2f us, graph %7.2f us (%5.0f GB/s)"
                    " | one-kernel 8 warps %7.2f us, graph %7.2f us (%5.0f GB/s, x%.2f) | 4 warps %7.2f us, graph "
                    "%7.2f us (x%.2f) | max rel diff 8w %.1e 4w %.1e\n",
                    long(ctx), long(cap), direct[0], graphed[0], bytes / graphed[0] * 1e-3, direct[1], graphed[1],
                    bytes / graphed[1] * 1e-3, graphed[0] / graphed[1], direct[2], graphed[2],
                    graphed[0] / graphed[2], rel_max_err(res[1], res[0]), rel_max_err(res[2], res[0]));
    }
}
